"""Recurrent models in plain PyTorch: a sequence classifier, a sequence tagger and a many-to-many
regressor, on the fused Keras-layout layers of :mod:`bigmodel.nn.recurrent`.

Registered names (``bigmodel.models.create_model``):

    seed-rnn        the seed RNN program: images as sequences of rows, two LSTM(128), Dense(10):
                    213,258 parameters for 28x28 images, exactly Keras's count
    rnn-classifier  features (B, T, F) or token ids (B, T) -> one label per sequence
    rnn-tagger      token ids (B, T) or features -> one label per step (B, T, num_tags)
    rnn-regressor   features (B, T, F) -> values per step (B, T, output_size)

Every model takes ``forward(x, lengths=None)``: ``lengths`` ``(B,)`` marks right padding of a
feature batch; with token ids, id 0 is padding and the lengths come from it. Each padded sequence
gives what it gives alone. All models share the small surface ``forward_features`` /
``forward_head`` / ``get_config`` (classifiers and the tagger also ``num_classes`` and
``reset_classifier``), so explanation, transfer and compression code need no special cases::

    classifier  x -> encoder -> last hidden state (B, D*H)          -> head -> (B, num_classes)
    tagger      x -> encoder -> hidden state per step (B, T, D*H)    -> head -> (B, T, num_tags)
    regressor   x -> encoder -> hidden state per step (B, T, D*H)    -> head -> (B, T, output_size)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from bigmodel.errors import ConfigError, InputTypeError, ShapeError, describe
from bigmodel.models.registry import register_model
from bigmodel.nn.graph_mode import capturing_graph
from bigmodel.nn.recurrent import GRU, LSTM, SimpleRNN, check_lengths
from bigmodel.utils import checks

_CELLS = {"lstm": LSTM, "gru": GRU, "simple": SimpleRNN}


def _keras_dense_init(linear: nn.Linear) -> nn.Linear:
    nn.init.xavier_uniform_(linear.weight)  # Keras Dense: Glorot-uniform kernel, zero bias
    nn.init.zeros_(linear.bias)
    return linear


class _Encoder(nn.Module):
    """Token embedding (optional) + recurrent stack; turns inputs into hidden states."""

    def __init__(self, owner: str, input_size: int, hidden_size: int, num_layers: int, cell: str,
                 bidirectional: bool, dropout_rate: float, vocab_size: int, embedding_dim: int,
                 weight_init: str) -> None:
        super().__init__()
        if cell not in _CELLS:
            raise ConfigError(f"{owner}: 'cell' must be one of {', '.join(_CELLS)}; received "
                              f"{cell!r}")
        checks.rate(owner, "dropout_rate", dropout_rate)
        checks.positive_int(owner, "hidden_size", hidden_size)
        checks.positive_int(owner, "num_layers", num_layers)
        self.owner = owner
        self.vocab_size = checks.positive_int(owner, "vocab_size", vocab_size, allow_zero=True)
        if self.vocab_size:
            checks.positive_int(owner, "embedding_dim", embedding_dim)
            self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
            nn.init.uniform_(self.embedding.weight, -0.05, 0.05)  # Keras's default
            with torch.no_grad():
                self.embedding.weight[0].zero_()
            rnn_input = embedding_dim
        else:
            self.embedding = None
            rnn_input = checks.positive_int(owner, "input_size", input_size)
        self.input_size = rnn_input
        self.rnn = _CELLS[cell](rnn_input, hidden_size, num_layers=num_layers,
                                bidirectional=bidirectional, dropout=float(dropout_rate),
                                weight_init=weight_init)
        self.output_size = hidden_size * (2 if bidirectional else 1)

    def forward(self, x: torch.Tensor, lengths: Any = None) -> tuple[torch.Tensor, Any]:
        if not isinstance(x, torch.Tensor):
            raise InputTypeError(f"{self.owner} expects a torch.Tensor; received {describe(x)}")
        if self.embedding is not None:
            if x.dim() != 2 or x.is_floating_point():
                raise ShapeError(f"{self.owner} expects token ids (B, T) of integers (0 = "
                                 f"padding); received {describe(x)}")
            if lengths is None:
                lengths = check_lengths(self.owner, (x != 0).sum(1), x.shape[0], x.shape[1],
                                        x.device)
                mask = x != 0
                if not capturing_graph() and bool((mask[:, 1:] & ~mask[:, :-1]).any()):
                    raise ShapeError(f"{self.owner}: token id 0 is padding and must only "
                                     "follow the tokens of a sequence (right padding)")
            x = self.embedding(x.long())
        elif x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ShapeError(f"{self.owner} expects sequences (B, T, {self.input_size}); "
                             f"received {describe(x)}")
        if lengths is not None:
            lengths = check_lengths(self.owner, lengths, x.shape[0], x.shape[1], x.device)
        return self.rnn(x, lengths=lengths)


class SequenceClassifier(nn.Module):
    """Recurrent encoder and a linear head: one label per sequence.

    Args:
        input_size: features per step (ignored with ``vocab_size`` or ``image_size``).
        num_classes: output logits.
        hidden_size, num_layers, cell (``"lstm"``/``"gru"``/``"simple"``), bidirectional: the
            encoder.
        dropout_rate: between recurrent layers and before the head (training only).
        vocab_size: > 0 for token-id inputs (id 0 = padding) through an embedding of
            ``embedding_dim``.
        image_size: ``H`` or ``(H, W)``: accept images ``(B, H, W)``, ``(B, C, H, W)`` or
            ``(B, H, W, C)`` as ``H`` steps of ``W * C`` features (rows, top to bottom).
        in_channels: image channels ``C``.
        weight_init: ``"keras"`` (Glorot / orthogonal / forget bias 1) or ``"torch_default"``.

    Raises:
        ConfigError: an argument out of range.
    """

    def __init__(self, input_size: int = 28, num_classes: int = 10, hidden_size: int = 128,
                 num_layers: int = 2, cell: str = "lstm", bidirectional: bool = False,
                 dropout_rate: float = 0.0, vocab_size: int = 0, embedding_dim: int = 64,
                 image_size: int | Sequence[int] | None = None, in_channels: int = 1,
                 weight_init: str = "keras") -> None:
        super().__init__()
        owner = type(self).__name__
        self.num_classes = checks.positive_int(owner, "num_classes", num_classes)
        self.in_channels = checks.positive_int(owner, "in_channels", in_channels)
        if image_size is None:
            self.image_size = None
        else:
            pair = [image_size, image_size] if isinstance(image_size, int) else list(image_size)
            if len(pair) != 2:
                raise ConfigError(f"{owner}: 'image_size' must be an int or [H, W]; received "
                                  f"{image_size!r}")
            self.image_size = [checks.positive_int(owner, "image_size", v) for v in pair]
            input_size = pair[1] * in_channels  # one row of pixels per step
        self.dropout_rate = float(dropout_rate)
        self.cell = cell
        self.weight_init = weight_init
        self.encoder = _Encoder(owner, input_size, hidden_size, num_layers, cell, bidirectional,
                                dropout_rate, vocab_size, embedding_dim, weight_init)
        self.dropout = nn.Dropout(self.dropout_rate)
        self.num_features = self.encoder.output_size
        self.classifier = _keras_dense_init(nn.Linear(self.num_features, num_classes))

    def _rows(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> ``(B, H, W * C)`` sequences of rows; other inputs unchanged."""
        if self.image_size is None or not isinstance(x, torch.Tensor):
            return x
        height, width = self.image_size
        channels = self.in_channels
        if x.dim() == 4 and tuple(x.shape[1:]) == (channels, height, width):
            x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        if x.dim() == 4 and tuple(x.shape[1:]) == (height, width, channels):
            return x.reshape(x.shape[0], height, width * channels)
        if x.dim() == 3 and tuple(x.shape[1:]) == (height, width * channels):
            return x
        raise ShapeError(f"{type(self).__name__} expects images (B, {height}, {width}) / "
                         f"(B, {channels}, {height}, {width}) / (B, {height}, {width}, {channels})"
                         f"; received {describe(x)}")

    def forward_features(self, x: torch.Tensor, lengths: Any = None) -> torch.Tensor:
        """The top layer's final hidden state ``(B, D * hidden_size)`` (both directions)."""
        x = self._rows(x)
        if x.is_floating_point() is False and self.encoder.embedding is None:
            x = x.float()
        _, state = self.encoder(x, lengths)
        h_n = state[0] if isinstance(state, tuple) else state  # (L*D, B, H)
        directions = 2 if self.encoder.rnn.bidirectional else 1
        return torch.cat(list(h_n[-directions:]), dim=-1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Logits ``(B, num_classes)`` from :meth:`forward_features` (``pre_logits``: features)."""
        features = self.dropout(features)
        return features if pre_logits else self.classifier(features)

    def forward(self, x: torch.Tensor, lengths: Any = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, lengths))

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        """A freshly initialized head with ``num_classes`` outputs."""
        checks.positive_int("reset_classifier", "num_classes", num_classes)
        old = self.classifier.weight
        self.classifier = _keras_dense_init(nn.Linear(self.num_features, num_classes,
                                                      device=old.device, dtype=old.dtype))
        self.num_classes = num_classes

    def get_config(self) -> dict[str, Any]:
        rnn = self.encoder.rnn
        return {"input_size": self.encoder.input_size, "num_classes": self.num_classes,
                "hidden_size": rnn.hidden_size, "num_layers": rnn.num_layers, "cell": self.cell,
                "bidirectional": rnn.bidirectional, "dropout_rate": self.dropout_rate,
                "vocab_size": self.encoder.vocab_size,
                "embedding_dim": self.encoder.input_size if self.encoder.vocab_size else 64,
                "image_size": self.image_size, "in_channels": self.in_channels,
                "weight_init": self.weight_init}


class _PerStep(nn.Module):
    """Encoder + a linear head on every step: shared by the tagger and the regressor."""

    def __init__(self, out_features: int, input_size: int, hidden_size: int, num_layers: int,
                 cell: str, bidirectional: bool, dropout_rate: float, vocab_size: int,
                 embedding_dim: int, weight_init: str) -> None:
        super().__init__()
        owner = type(self).__name__
        checks.positive_int(owner, "output size", out_features)
        self.cell = cell
        self.dropout_rate = float(dropout_rate)
        self.weight_init = weight_init
        self.encoder = _Encoder(owner, input_size, hidden_size, num_layers, cell, bidirectional,
                                dropout_rate, vocab_size, embedding_dim, weight_init)
        self.dropout = nn.Dropout(self.dropout_rate)
        self.num_features = self.encoder.output_size
        self.head = _keras_dense_init(nn.Linear(self.num_features, out_features))

    def forward_features(self, x: torch.Tensor, lengths: Any = None) -> torch.Tensor:
        """Hidden states ``(B, T, D * hidden_size)``; zero at padded steps."""
        outputs, _ = self.encoder(x, lengths)
        return outputs

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        features = self.dropout(features)
        return features if pre_logits else self.head(features)

    def forward(self, x: torch.Tensor, lengths: Any = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, lengths))

    def _reset_head(self, out_features: int) -> None:
        checks.positive_int(type(self).__name__, "output size", out_features)
        old = self.head.weight
        self.head = _keras_dense_init(nn.Linear(self.num_features, out_features,
                                                device=old.device, dtype=old.dtype))

    def _encoder_config(self) -> dict[str, Any]:
        rnn = self.encoder.rnn
        return {"input_size": self.encoder.input_size if not self.encoder.vocab_size else 0,
                "hidden_size": rnn.hidden_size, "num_layers": rnn.num_layers, "cell": self.cell,
                "bidirectional": rnn.bidirectional, "dropout_rate": self.dropout_rate,
                "vocab_size": self.encoder.vocab_size,
                "embedding_dim": self.encoder.input_size if self.encoder.vocab_size else 64,
                "weight_init": self.weight_init}


class SequenceTagger(_PerStep):
    """One label per step (e.g. part-of-speech tags): logits ``(B, T, num_tags)``.

    Args:
        num_tags: labels per step (``num_classes`` of the classifier surface).
        vocab_size: > 0 for token ids (id 0 = padding); 0 for feature inputs of ``input_size``.
        Others as :class:`SequenceClassifier` (``bidirectional`` defaults to True: a tag may depend
        on the words after it).
    """

    def __init__(self, num_tags: int = 10, vocab_size: int = 1000, embedding_dim: int = 64,
                 input_size: int = 0, hidden_size: int = 128, num_layers: int = 1,
                 cell: str = "lstm", bidirectional: bool = True, dropout_rate: float = 0.0,
                 weight_init: str = "keras") -> None:
        super().__init__(num_tags, input_size, hidden_size, num_layers, cell, bidirectional,
                         dropout_rate, vocab_size, embedding_dim, weight_init)
        self.num_classes = num_tags

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self._reset_head(num_classes)
        self.num_classes = num_classes

    def get_config(self) -> dict[str, Any]:
        return {"num_tags": self.num_classes, **self._encoder_config()}


class SequenceRegressor(_PerStep):
    """Many-to-many regression: values ``(B, T, output_size)`` for sequences ``(B, T, input_size)``.

    Args:
        input_size: features per step.
        output_size: values predicted per step.
        Others as :class:`SequenceClassifier`.
    """

    def __init__(self, input_size: int = 1, output_size: int = 1, hidden_size: int = 64,
                 num_layers: int = 1, cell: str = "lstm", bidirectional: bool = False,
                 dropout_rate: float = 0.0, weight_init: str = "keras") -> None:
        super().__init__(output_size, input_size, hidden_size, num_layers, cell, bidirectional,
                         dropout_rate, 0, 64, weight_init)
        self.output_size = output_size

    def reset_head(self, output_size: int) -> None:
        """A freshly initialized head with ``output_size`` values per step."""
        self._reset_head(output_size)
        self.output_size = output_size

    def get_config(self) -> dict[str, Any]:
        config = self._encoder_config()
        for key in ("vocab_size", "embedding_dim"):
            config.pop(key)
        return {**config, "output_size": self.output_size}


# -------------------------------------------------------------------------------- registry
@register_model("seed-rnn", example_input=lambda batch: torch.rand(batch, 28, 28))
def seed_rnn(num_classes: int = 10, image_size: int | list[int] = 28, in_channels: int = 1,
             hidden_size: int = 128, num_layers: int = 2, cell: str = "lstm",
             bidirectional: bool = False, dropout_rate: float = 0.0,
             weight_init: str = "keras") -> SequenceClassifier:
    """The seed RNN program: image rows as steps, LSTM(128) x 2, Dense(num_classes) logits."""
    return SequenceClassifier(num_classes=num_classes, hidden_size=hidden_size,
                              num_layers=num_layers, cell=cell, bidirectional=bidirectional,
                              dropout_rate=dropout_rate, image_size=image_size,
                              in_channels=in_channels, weight_init=weight_init)


@register_model("rnn-classifier", example_input=lambda batch: torch.randn(batch, 12, 16))
def rnn_classifier(input_size: int = 16, num_classes: int = 2, hidden_size: int = 64,
                   num_layers: int = 1, cell: str = "lstm", bidirectional: bool = False,
                   dropout_rate: float = 0.0, vocab_size: int = 0, embedding_dim: int = 64,
                   weight_init: str = "keras") -> SequenceClassifier:
    """A sequence classifier on features (B, T, input_size) or token ids (vocab_size > 0)."""
    return SequenceClassifier(input_size=input_size, num_classes=num_classes,
                              hidden_size=hidden_size, num_layers=num_layers, cell=cell,
                              bidirectional=bidirectional, dropout_rate=dropout_rate,
                              vocab_size=vocab_size, embedding_dim=embedding_dim,
                              weight_init=weight_init)


@register_model("rnn-tagger", example_input=lambda batch: torch.randint(1, 1000, (batch, 12)))
def rnn_tagger(num_tags: int = 10, vocab_size: int = 1000, embedding_dim: int = 64,
               input_size: int = 0, hidden_size: int = 128, num_layers: int = 1,
               cell: str = "lstm", bidirectional: bool = True, dropout_rate: float = 0.0,
               weight_init: str = "keras") -> SequenceTagger:
    """A bidirectional sequence tagger: one of ``num_tags`` labels per token."""
    return SequenceTagger(num_tags=num_tags, vocab_size=vocab_size, embedding_dim=embedding_dim,
                          input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                          cell=cell, bidirectional=bidirectional, dropout_rate=dropout_rate,
                          weight_init=weight_init)


@register_model("rnn-regressor", example_input=lambda batch: torch.randn(batch, 20, 1))
def rnn_regressor(input_size: int = 1, output_size: int = 1, hidden_size: int = 64,
                  num_layers: int = 1, cell: str = "lstm", bidirectional: bool = False,
                  dropout_rate: float = 0.0, weight_init: str = "keras") -> SequenceRegressor:
    """Many-to-many regression: ``output_size`` values per step."""
    return SequenceRegressor(input_size=input_size, output_size=output_size,
                             hidden_size=hidden_size, num_layers=num_layers, cell=cell,
                             bidirectional=bidirectional, dropout_rate=dropout_rate,
                             weight_init=weight_init)
