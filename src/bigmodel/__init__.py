"""bigmodel: deep-learning models on PyTorch, with a Keras-style and a plain-PyTorch API."""

from bigmodel.errors import BigModelError

__version__ = "0.1.0"

__all__ = ["BigModelError", "__version__"]
