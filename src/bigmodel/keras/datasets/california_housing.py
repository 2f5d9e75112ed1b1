"""California housing prices (20,640 rows, 8 features), as ``keras.datasets.california_housing``."""

from __future__ import annotations

from bigmodel.keras.datasets.housing import Splits, load_housing

__all__ = ["load_data"]

FILE_HASH = "1a2e3a52e0398de6463aebe6f4a8da34fb21fbb6b934cf88c3425e766f2a1a6f"


def load_data(version: str = "large", path: str = "california_housing.npz",
              test_split: float = 0.2, seed: int = 113) -> Splits:
    """``((x_train, y_train), (x_test, y_test))`` as Keras 3 splits them; ``version="small"``
    keeps the first 600 rows (see :func:`bigmodel.keras.datasets.housing.load_housing`)."""
    return load_housing("california_housing.npz", path, FILE_HASH, test_split, seed, version)
