"""``keras.Model``'s summary, files and JSON: ``summary``, ``save``, ``save_weights``,
``load_weights``, ``to_json`` (a mixin of ``Model``, ``keras/model.py``; the formats live in
``keras/saving.py`` and ``keras/serialization.py``). Under torchrun only one process writes.
"""

from __future__ import annotations

from typing import Any

from bigmodel.engine.progress import print_message
from bigmodel.keras import distributed_fit

__all__ = ["ModelFilesMixin"]


class ModelFilesMixin:
    """Summary, saving, loading and JSON of a ``keras.Model``."""

    def summary(self, line_length: int | None = None, positions: Any = None,
                print_fn: Any = None, expand_nested: bool = False, show_trainable: bool = False,
                layer_range: Any = None) -> None:
        """Print the Keras table of layers, output shapes and parameter counts."""
        from bigmodel.keras.summary import render_summary

        text = render_summary(self, show_trainable=show_trainable)
        # Keras's default: standard output, or logging when interactive logging is off
        (print_fn or print_message)(text)

    def save(self, filepath: Any, overwrite: bool = True, **kwargs: Any) -> None:
        """Save architecture, weights and compile settings: ``.keras`` writes a real Keras 3
        archive, ``.safetensors`` bigmodel's single file; other names are refused."""
        from bigmodel.keras.saving import save_model

        distributed_fit.write_once(self, lambda: save_model(self, filepath, overwrite=overwrite))

    def save_weights(self, filepath: Any, overwrite: bool = True) -> None:
        from bigmodel.keras.saving import save_weights

        distributed_fit.write_once(self, lambda: save_weights(self, filepath, overwrite=overwrite))

    def load_weights(self, filepath: Any) -> None:
        from bigmodel.keras.saving import load_weights

        load_weights(self, filepath)

    def to_json(self, **kwargs: Any) -> str:
        """The architecture as Keras 3 JSON (``keras.models.model_from_json`` reads it back)."""
        import json

        from bigmodel.keras.serialization import layer_to_keras

        return json.dumps(layer_to_keras(self), **kwargs)
