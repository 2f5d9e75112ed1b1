"""``keras.models``: model classes, loading, cloning."""

from bigmodel.keras.functional import Functional
from bigmodel.keras.model import Model
from bigmodel.keras.saving import load_model, save_model
from bigmodel.keras.sequential import Sequential
from bigmodel.keras.serialization import clone_model, model_from_json
from bigmodel.keras.unsupported import unsupported_attribute

__all__ = ["Functional", "Model", "Sequential", "clone_model", "load_model", "model_from_json",
           "save_model"]


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.models", name)
