"""Boston housing prices (506 rows, 13 features), as ``keras.datasets.boston_housing``."""

from __future__ import annotations

from bigmodel.keras.datasets.housing import Splits, load_housing

__all__ = ["load_data"]

FILE_HASH = "f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5"


def load_data(path: str = "boston_housing.npz", test_split: float = 0.2,
              seed: int = 113) -> Splits:
    """``((x_train, y_train), (x_test, y_test))`` as Keras 3 splits them (see
    :func:`bigmodel.keras.datasets.housing.load_housing` for the errors)."""
    return load_housing("boston_housing.npz", path, FILE_HASH, test_split, seed)
