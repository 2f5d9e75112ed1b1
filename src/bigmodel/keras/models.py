"""``keras.models``: model classes and loading."""

from bigmodel.keras.functional import Functional
from bigmodel.keras.model import Model
from bigmodel.keras.saving import load_model
from bigmodel.keras.sequential import Sequential

__all__ = ["Functional", "Model", "Sequential", "load_model"]
