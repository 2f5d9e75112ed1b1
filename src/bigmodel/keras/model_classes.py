"""The Keras model classes by kind (``"Model"``, ``"Functional"``, ``"Sequential"``), registered
by the modules that define them.

``Model`` saves itself through ``keras/saving.py``, and the file formats below it
(``config_export``, ``config_import``, ``keras_weights``) build and recognise ``Sequential`` and
``Functional`` models, which subclass ``Model``. Finding the classes here instead of importing
them keeps the imports one-way: ``functional``/``sequential`` -> ``model`` -> ``saving`` -> ... ->
``model_classes``. ``keras.Model(inputs, outputs)`` finds ``Functional`` here too.
"""

from __future__ import annotations

__all__ = ["model_class", "register_model_class"]

KINDS = ("Model", "Functional", "Sequential")
_CLASSES: dict[str, type] = {}


def register_model_class(kind: str, cls: type) -> type:
    """Record ``cls`` as the class of ``kind`` (one of ``KINDS``); returns ``cls``."""
    if kind not in KINDS:
        raise ValueError(f"model kind must be one of {', '.join(KINDS)}; received {kind!r}")
    _CLASSES[kind] = cls
    return cls


def model_class(kind: str) -> type:
    """The class registered for ``kind``; ``bigmodel.keras`` registers all three on import."""
    try:
        return _CLASSES[kind]
    except KeyError:
        raise LookupError(f"no Keras model class registered for {kind!r} (import bigmodel.keras)"
                          ) from None
