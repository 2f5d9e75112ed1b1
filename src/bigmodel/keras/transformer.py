"""The encoder-decoder Transformer with Keras's ``compile/fit/evaluate/predict``.

The model itself (layers, ``forward``, ``translate``/``generate``, ``save``/``load``) is the plain
PyTorch module :class:`bigmodel.models.transformer.TransformerModel`, which knows nothing of
training; this class adds the Keras training surface of
:class:`~bigmodel.keras.seq2seq_training.Seq2SeqTrainingMixin` (teacher forcing, padding-aware
loss and metrics, the engine's ``Trainer``). A Keras user's program, such as
``seed-examples/seed_transformer.py``, imports this one::

    from bigmodel.keras.transformer import TransformerModel

    model = TransformerModel(num_heads=8, num_layers=6, d_model=512, dff=2048)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.fit(train_data, train_labels, epochs=5, batch_size=32)

Both classes write the same files (registry name ``"transformer"``): a model saved by either is
loaded by either (``TransformerModel.load`` returns an instance of the class it is called on).
"""

from __future__ import annotations

from bigmodel.keras.seq2seq_training import Seq2SeqTrainingMixin
from bigmodel.models import transformer as plain

__all__ = ["TransformerModel"]


class TransformerModel(Seq2SeqTrainingMixin, plain.TransformerModel):
    """:class:`bigmodel.models.transformer.TransformerModel` (same arguments) with Keras-style
    ``compile``/``fit``/``evaluate``/``predict`` (see :mod:`bigmodel.keras.seq2seq_training`)."""
