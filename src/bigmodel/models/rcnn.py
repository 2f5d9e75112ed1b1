"""Recurrent convolutional networks: RCNN-K for images (Liang & Hu, CVPR 2015) and the recurrent
convolutional text classifier (Lai, Xu, Liu & Zhao, AAAI 2015).

RCNN-K (``K`` feature maps everywhere; sizes for a 28×28 image)::

    input (B, C, 28, 28)
    conv1   5×5 'same', K maps, ReLU + norm        -> (B, K, 28, 28)
    pool1   max 3×3 stride 2 (pool_size=3)         -> (B, K, 13, 13)
    rcl1    RecurrentConv2d(K, K, 3, steps=T)      -> (B, K, 13, 13)
    dropout
    rcl2                                           -> (B, K, 13, 13)
    pool2   max 3×3 stride 2, dropout              -> (B, K, 6, 6)
    rcl3, dropout, rcl4                            -> (B, K, 6, 6)     <- forward_features
    global max pooling                             -> (B, K)
    classifier  Linear(K, num_classes)             -> logits           <- forward_head

Parameters for 3-channel inputs and 10 classes (the paper's CIFAR-10 models): RCNN-96 672,202,
RCNN-128 1,191,178, RCNN-160 1,857,610 (the paper: 0.67 M, 1.19 M, 1.86 M). ``rcnn-32`` is a small
variant (75 k parameters) that trains on a CPU.

``pool_size=2`` (``rcnn-cpu``: K = 64, per-step batch norm, 299,658 parameters for 1 channel) pools
with non-overlapping 2×2 windows, stride 2, instead of the paper's overlapping 3×3 ones: a 28×28
image gives 14×14 maps for rcl1/rcl2 and 7×7 for rcl3/rcl4 (nothing dropped at the borders), the
layout the Fashion-MNIST CPU recipe ``configs/fashion_rcnn_cpu.yaml`` trains. The models return
logits; the softmax lives in the loss.

TextRCNN: for each word ``w_i`` a left context ``c_l(w_i)`` (the forward recurrent state after
``w_{i-1}``; a learned vector for the first word) and a right context ``c_r(w_i)`` (the backward state
after ``w_{i+1}``; a learned vector for the last word) surround the word embedding::

    x_i = [c_l(w_i); e(w_i); c_r(w_i)]     y_i = tanh(W2 x_i + b2)     y = max_i y_i     logits = W4 y

The bidirectional recurrence is ``torch.nn.GRU`` (or ``LSTM`` / tanh ``RNN``, the paper's choice),
run on packed sequences so padding never enters a state or the max.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from bigmodel.errors import ConfigError, DataError, InputTypeError, ShapeError, describe
from bigmodel.models.registry import register_model
from bigmodel.models.word_vectors import copy_embeddings, copy_vectors
from bigmodel.nn.graph_mode import capturing_graph
from bigmodel.nn.rcl import NORMS, RecurrentConv2d, default_lrn_size, odd_pair
from bigmodel.nn.recurrent_kernels import fused_padded
from bigmodel.utils import checks

__all__ = ["RCNN", "TextRCNN", "rcnn_feature_size"]

_POOL_SIZES = (2, 3)  # 3: the paper's overlapping 3×3 windows; 2: non-overlapping 2×2 windows
_POOL_STRIDE = 2


def _pooled(size: int, pool_size: int) -> int:
    return (size - pool_size) // _POOL_STRIDE + 1


def rcnn_feature_size(size: int, pool_size: int = 3) -> int:
    """Side of the last RCL's feature map for an input side ``size`` (< 1: too small) when both
    poolings use ``pool_size``×``pool_size`` windows with stride 2."""
    first = _pooled(size, pool_size)
    return _pooled(first, pool_size) if first >= pool_size else 0


def _min_side(pool_size: int) -> int:
    """The smallest input side that passes both poolings (7 for 3×3 windows, 4 for 2×2)."""
    return next(side for side in range(1, 64) if rcnn_feature_size(side, pool_size) >= 1)


class RCNN(nn.Module):
    """RCNN-K: a convolution, four recurrent convolutional layers, global max pooling, a classifier.

    Args:
        in_channels: image channels.
        num_classes: output logits.
        width: ``K``, feature maps of every layer.
        steps: ``T``, recurrent iterations of each RCL (0 makes it a feed-forward CNN).
        norm: ``"lrn"`` (paper), ``"batch"`` or ``None`` after every convolution.
        dropout_rate: dropout between the RCLs and before the classifier.
        first_kernel_size: the first convolution's kernel (odd).
        kernel_size: the RCLs' feed-forward and recurrent kernels (odd).
        pool_size: window of both max poolings, stride 2: ``3`` (the paper's overlapping 3×3
            pooling, 28 -> 13 -> 6) or ``2`` (non-overlapping 2×2, 28 -> 14 -> 7).

    Any image that passes the two poolings is accepted (global max pooling): at least 7×7 for
    ``pool_size=3``, 4×4 for ``pool_size=2``.

    Raises:
        ConfigError: a bad size, an even kernel, ``steps < 0``, an unknown ``norm`` or
            ``pool_size``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 96, steps: int = 3,
                 norm: str | None = "lrn", dropout_rate: float = 0.2, first_kernel_size: int = 5,
                 kernel_size: int = 3, pool_size: int = 3) -> None:
        super().__init__()
        owner = "RCNN"
        self.in_channels = checks.positive_int(owner, "in_channels", in_channels)
        self.num_classes = checks.positive_int(owner, "num_classes", num_classes)
        self.width = checks.positive_int(owner, "width", width)
        if norm not in NORMS:
            raise ConfigError(f"{owner}: 'norm' must be one of 'lrn', 'batch', None; "
                              f"received {norm!r}")
        self.norm = norm
        self.dropout_rate = checks.rate(owner, "dropout_rate", dropout_rate)
        for name, value in (("first_kernel_size", first_kernel_size),
                            ("kernel_size", kernel_size)):
            checks.positive_int(owner, name, value)  # square kernels: one int each
            odd_pair(value, name, owner)
        self.first_kernel_size = first_kernel_size
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise ConfigError(f"{owner}: 'steps' must be an int >= 0 (0 = no recurrence); "
                              f"received {steps!r}")
        if not isinstance(pool_size, int) or isinstance(pool_size, bool) \
                or pool_size not in _POOL_SIZES:
            raise ConfigError(f"{owner}: 'pool_size' must be 3 (the paper's overlapping 3×3 "
                              f"pooling) or 2 (non-overlapping 2×2); received {pool_size!r}")
        self.kernel_size = kernel_size
        self.pool_size = pool_size
        self.steps = steps
        self.num_features = width

        self.conv1 = nn.Conv2d(in_channels, width, first_kernel_size,
                               padding=first_kernel_size // 2)
        self.norm1 = nn.BatchNorm2d(width) if norm == "batch" else None
        self.rcls = nn.ModuleList(
            RecurrentConv2d(width, width, kernel_size, steps=steps, norm=norm) for _ in range(4))
        self.dropout = nn.Dropout(self.dropout_rate)
        self.classifier = nn.Linear(width, num_classes)
        for module in (self.conv1, self.classifier):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)

    def _to_nchw(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise InputTypeError(f"RCNN expects a floating-point tensor (scale images to [0, 1] "
                                 f"first); received {describe(x)}")
        channels = self.in_channels
        if x.ndim == 3 and channels == 1:
            x = x.unsqueeze(1)
        elif x.ndim == 4 and x.shape[1] != channels and x.shape[3] == channels:
            x = x.permute(0, 3, 1, 2)  # channels-last -> NCHW view
        if x.ndim != 4 or x.shape[1] != channels:
            raise ShapeError(f"RCNN expects images (B, {channels}, H, W) or (B, H, W, {channels})"
                             f"{' or (B, H, W)' if channels == 1 else ''}; received {describe(x)}")
        height, width = x.shape[2], x.shape[3]
        pool = self.pool_size
        if rcnn_feature_size(height, pool) < 1 or rcnn_feature_size(width, pool) < 1:
            raise ShapeError(f"RCNN: an input of {height}×{width} pixels is smaller than the two "
                             f"{pool}×{pool} stride-2 poolings allow; each side must be at least "
                             f"{_min_side(pool)}")
        return x

    def _first(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv1(x)
        if self.norm == "batch":
            return F.relu(self.norm1(z))
        z = F.relu(z)
        if self.norm == "lrn":
            z = F.local_response_norm(z, default_lrn_size(self.width), 1e-3, 0.75, k=1.0)
        return z

    # -- classifier surface -----------------------------------------------------------------------

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` / ``(B, H, W, C)`` / ``(B, H, W)`` -> the last RCL's map
        ``(B, K, H', W')`` (``(B, K, 6, 6)`` for 28×28; ``(B, K, 7, 7)`` with ``pool_size=2``), the
        layer Grad-CAM looks at.

        Raises:
            InputTypeError: not a floating-point tensor.
            ShapeError: wrong channels, or a side smaller than 7 pixels.
        """
        x = self._to_nchw(x)
        x = F.max_pool2d(self._first(x), self.pool_size, _POOL_STRIDE)  # (B, K, 13 | 14, ...)
        x = self.dropout(self.rcls[0](x))
        x = F.max_pool2d(self.rcls[1](x), self.pool_size, _POOL_STRIDE)  # (B, K, 6 | 7, ...)
        x = self.dropout(self.rcls[2](self.dropout(x)))
        return self.rcls[3](x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global max pooling of ``(B, K, H', W')`` -> ``(B, K)``, then logits ``(B, num_classes)``."""
        pooled = features.amax(dim=(2, 3))  # (B, K)
        if pre_logits:
            return pooled
        return self.classifier(self.dropout(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)``."""
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialized one of ``num_classes`` outputs."""
        checks.positive_int("reset_classifier", "num_classes", num_classes)
        old = self.classifier
        self.classifier = nn.Linear(self.width, num_classes, device=old.weight.device,
                                    dtype=old.weight.dtype)
        nn.init.xavier_uniform_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)
        self.num_classes = num_classes

    def get_config(self) -> dict:
        return {"in_channels": self.in_channels, "num_classes": self.num_classes,
                "width": self.width, "steps": self.steps, "norm": self.norm,
                "dropout_rate": self.dropout_rate, "first_kernel_size": self.first_kernel_size,
                "kernel_size": self.kernel_size, "pool_size": self.pool_size}


_RNN_TYPES = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}


class TextRCNN(nn.Module):
    """Recurrent convolutional text classifier (Lai et al., 2015).

    Args:
        vocab_size: rows of the embedding table (ids ``0 .. vocab_size - 1``).
        num_classes: output logits.
        embedding_dim: ``|e|``.
        context_size: size of each of the left and right contexts (the recurrent state).
        hidden_size: size of the tanh projection ``y_i`` (the features that are max-pooled).
        rnn_type: ``"gru"`` (default), ``"lstm"`` or ``"rnn"`` (tanh; the paper's recurrence).
        dropout_rate: dropout on the embeddings and on the pooled features.
        pad_id: the padding id; sequences are padded at the end.
        embeddings: word vectors for the embedding table (Lai et al. start from skip-gram
            vectors): a ``(vocab_size, embedding_dim)`` tensor / array. None: random init.
            Pretrained vectors by name (``"minilm-wordpiece"``) are read from their files by the
            factories (``create_model("text-rcnn", embeddings=...)``, :func:`text_rcnn`), never by
            the class.
        freeze_embeddings: keep the embedding table fixed during training.

    Input: token ids ``(B, L)`` (integer), each row holding at least one token before its padding.

    The name of the source is not part of :meth:`get_config`: the vectors live in the weights,
    so a saved model is rebuilt without the source. ``embeddings_source`` remembers it.

    Raises:
        ConfigError: a bad size, an unknown ``rnn_type``, or a table whose shape differs from
            ``(vocab_size, embedding_dim)``.
        ConfigError: ``embeddings`` is a name (the factories load named vectors).
        InputTypeError / DataError: a table that is not array-like, or holds NaN / inf.
    """

    def __init__(self, vocab_size: int = 10000, num_classes: int = 6, embedding_dim: int = 64,
                 context_size: int = 64, hidden_size: int = 128, rnn_type: str = "gru",
                 dropout_rate: float = 0.2, pad_id: int = 0, embeddings=None,
                 freeze_embeddings: bool = False) -> None:
        super().__init__()
        owner = "TextRCNN"
        self.vocab_size = checks.positive_int(owner, "vocab_size", vocab_size)
        self.num_classes = checks.positive_int(owner, "num_classes", num_classes)
        self.embedding_dim = checks.positive_int(owner, "embedding_dim", embedding_dim)
        self.context_size = checks.positive_int(owner, "context_size", context_size)
        self.hidden_size = checks.positive_int(owner, "hidden_size", hidden_size)
        if rnn_type not in _RNN_TYPES:
            raise ConfigError(f"{owner}: 'rnn_type' must be one of {', '.join(_RNN_TYPES)}; "
                              f"received {rnn_type!r}")
        if not isinstance(pad_id, int) or isinstance(pad_id, bool) or not 0 <= pad_id < vocab_size:
            raise ConfigError(f"{owner}: 'pad_id' must be an id in [0, {vocab_size}); "
                              f"received {pad_id!r}")
        self.rnn_type = rnn_type
        self.dropout_rate = checks.rate(owner, "dropout_rate", dropout_rate)
        self.pad_id = pad_id
        self.num_features = hidden_size

        if not isinstance(freeze_embeddings, bool):
            raise ConfigError(f"{owner}: 'freeze_embeddings' must be a bool; received "
                              f"{freeze_embeddings!r}")
        self.freeze_embeddings = freeze_embeddings
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.embeddings_source = None
        if isinstance(embeddings, str):
            raise ConfigError(f"{owner}: 'embeddings' must be a table of vectors; received the "
                              f"name {embeddings!r}: build with create_model('text-rcnn', "
                              f"embeddings={embeddings!r}), whose factory reads them")
        if embeddings is not None:
            copy_vectors(self.embedding, embeddings, owner)
            self.embeddings_source = "tensor"
        self.embedding.weight.requires_grad_(not freeze_embeddings)
        self.rnn = _RNN_TYPES[rnn_type](embedding_dim, context_size, batch_first=True,
                                        bidirectional=True)
        # c_l(w_1) and c_r(w_n): the contexts of the first and last word are parameters.
        self.left_start = nn.Parameter(torch.zeros(context_size))
        self.right_end = nn.Parameter(torch.zeros(context_size))
        self.projection = nn.Linear(2 * context_size + embedding_dim, hidden_size)
        self.dropout = nn.Dropout(self.dropout_rate)
        self.classifier = nn.Linear(hidden_size, num_classes)

    def _lengths(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(ids, torch.Tensor) or ids.is_floating_point() or ids.is_complex() \
                or ids.dtype == torch.bool:
            raise InputTypeError(f"TextRCNN expects integer token ids (B, L); received "
                                 f"{describe(ids)}")
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ShapeError(f"TextRCNN expects token ids of shape (B, L) with L >= 1; received "
                             f"{describe(ids)}")
        mask = ids != self.pad_id  # (B, L)
        lengths = mask.sum(dim=1)
        if capturing_graph():  # a graph cannot hold value checks; the shape checks above stay
            return mask, lengths
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= self.vocab_size:
            raise DataError(f"TextRCNN: token ids must lie in [0, {self.vocab_size}); received ids "
                            f"from {low} to {high}")
        empty = (lengths == 0).nonzero().flatten()
        if len(empty):
            raise DataError(f"TextRCNN: row(s) {empty[:5].tolist()} hold only padding (empty "
                            "texts); every text needs at least one token")
        positions = torch.arange(ids.shape[1], device=ids.device)
        if not torch.equal(mask, positions < lengths[:, None]):
            raise DataError(f"TextRCNN: padding (id {self.pad_id}) must come after the tokens "
                            "of each row (right padding), with no padding id inside a text")
        return mask, lengths

    def forward_features(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids ``(B, L)`` -> max-pooled features ``y`` of shape ``(B, hidden_size)``.

        Raises:
            InputTypeError: not an integer tensor.
            ShapeError: not 2-D.
            DataError: ids out of range, an empty row, or padding inside a text.
        """
        mask, lengths = self._lengths(ids)
        batch, length = ids.shape
        embedded = self.dropout(self.embedding(ids))  # (B, L, E)
        states = self._context_states(embedded, lengths)  # (B, L, 2H)
        forward_states, backward_states = states.split(self.context_size, dim=-1)
        # c_l(w_i) = forward state after w_{i-1}; c_r(w_i) = backward state after w_{i+1}.
        left = torch.cat([self.left_start.expand(batch, 1, -1), forward_states[:, :-1]], dim=1)
        right = torch.cat([backward_states[:, 1:], backward_states.new_zeros(batch, 1,
                                                                              self.context_size)],
                          dim=1)
        last = (torch.arange(length, device=ids.device) == (lengths[:, None] - 1))[..., None]
        right = torch.where(last, self.right_end.expand(batch, length, -1), right)
        hidden = torch.tanh(self.projection(torch.cat([left, embedded, right], dim=-1)))  # (B, L, D)
        hidden = hidden.masked_fill(~mask[..., None], float("-inf"))
        return hidden.amax(dim=1)  # (B, D)

    def _context_states(self, embedded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Both directions' states per word, zero past each length: packed in eager mode, or the
        branch-free equivalent (same values) while a graph is captured for export."""
        if capturing_graph():
            cell = {"gru": "gru", "lstm": "lstm", "rnn": "simple"}[self.rnn_type]
            zeros = embedded.new_zeros(2, embedded.shape[0], self.context_size)
            state = (zeros, zeros) if cell == "lstm" else zeros
            states, _, _ = fused_padded(cell, embedded, lengths, self.rnn._flat_weights, state,
                                        bidirectional=True)
            return states
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        states, _ = self.rnn(packed)
        states, _ = pad_packed_sequence(states, batch_first=True,
                                        total_length=embedded.shape[1])
        return states

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``(B, hidden_size)`` -> logits ``(B, num_classes)`` (or the features when ``pre_logits``)."""
        if pre_logits:
            return features
        return self.classifier(self.dropout(features))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` for right-padded token ids ``(B, L)``."""
        return self.forward_head(self.forward_features(ids))

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialized one of ``num_classes`` outputs."""
        checks.positive_int("reset_classifier", "num_classes", num_classes)
        old = self.classifier
        self.classifier = nn.Linear(self.hidden_size, num_classes, device=old.weight.device,
                                    dtype=old.weight.dtype)
        self.num_classes = num_classes

    def get_config(self) -> dict:
        return {"vocab_size": self.vocab_size, "num_classes": self.num_classes,
                "embedding_dim": self.embedding_dim, "context_size": self.context_size,
                "hidden_size": self.hidden_size, "rnn_type": self.rnn_type,
                "dropout_rate": self.dropout_rate, "pad_id": self.pad_id, "embeddings": None,
                # the live state: transfer.unfreeze(model, "embedding") is saved as unfrozen
                "freeze_embeddings": not self.embedding.weight.requires_grad}


# -- registry -------------------------------------------------------------------------------------


def _image_batch(batch: int) -> torch.Tensor:
    return torch.rand(batch, 1, 28, 28)


def _rcnn(width: int, in_channels: int, num_classes: int, steps: int, norm: str | None,
          dropout_rate: float, first_kernel_size: int, kernel_size: int,
          pool_size: int = 3) -> RCNN:
    return RCNN(in_channels=in_channels, num_classes=num_classes, width=width, steps=steps,
                norm=norm, dropout_rate=dropout_rate, first_kernel_size=first_kernel_size,
                kernel_size=kernel_size, pool_size=pool_size)


@register_model("rcnn-96", example_input=_image_batch)
def rcnn_96(in_channels: int = 1, num_classes: int = 10, width: int = 96, steps: int = 3,
            norm: str | None = "lrn", dropout_rate: float = 0.2, first_kernel_size: int = 5,
            kernel_size: int = 3,
            pool_size: int = 3) -> RCNN:
    """RCNN-96 (the paper's 0.67 M-parameter model for 3-channel inputs)."""
    return _rcnn(width, in_channels, num_classes, steps, norm, dropout_rate, first_kernel_size,
                 kernel_size, pool_size)


@register_model("rcnn-128", example_input=_image_batch)
def rcnn_128(in_channels: int = 1, num_classes: int = 10, width: int = 128, steps: int = 3,
             norm: str | None = "lrn", dropout_rate: float = 0.2, first_kernel_size: int = 5,
             kernel_size: int = 3,
             pool_size: int = 3) -> RCNN:
    """RCNN-128 (1.19 M parameters for 3-channel inputs)."""
    return _rcnn(width, in_channels, num_classes, steps, norm, dropout_rate, first_kernel_size,
                 kernel_size, pool_size)


@register_model("rcnn-160", example_input=_image_batch)
def rcnn_160(in_channels: int = 1, num_classes: int = 10, width: int = 160, steps: int = 3,
             norm: str | None = "lrn", dropout_rate: float = 0.2, first_kernel_size: int = 5,
             kernel_size: int = 3,
             pool_size: int = 3) -> RCNN:
    """RCNN-160 (1.86 M parameters for 3-channel inputs)."""
    return _rcnn(width, in_channels, num_classes, steps, norm, dropout_rate, first_kernel_size,
                 kernel_size, pool_size)


@register_model("rcnn-32", example_input=_image_batch)
def rcnn_32(in_channels: int = 1, num_classes: int = 10, width: int = 32, steps: int = 3,
            norm: str | None = "lrn", dropout_rate: float = 0.2, first_kernel_size: int = 5,
            kernel_size: int = 3,
            pool_size: int = 3) -> RCNN:
    """A small RCNN for CPU training (75 k parameters for 1-channel inputs)."""
    return _rcnn(width, in_channels, num_classes, steps, norm, dropout_rate, first_kernel_size,
                 kernel_size, pool_size)


@register_model("rcnn-cpu", example_input=_image_batch)
def rcnn_cpu(in_channels: int = 1, num_classes: int = 10, width: int = 64, steps: int = 3,
             norm: str | None = "batch", dropout_rate: float = 0.2, first_kernel_size: int = 5,
             kernel_size: int = 3, pool_size: int = 2) -> RCNN:
    """RCNN-64 sized for CPU training on 28×28 images: 2×2 poolings (RCLs at 14×14 and 7×7),
    batch norm per unfolded step; 299,658 parameters for 1-channel inputs and 10 classes."""
    return _rcnn(width, in_channels, num_classes, steps, norm, dropout_rate, first_kernel_size,
                 kernel_size, pool_size)


@register_model("text-rcnn", example_input=lambda batch: torch.randint(1, 10000, (batch, 12)))
def text_rcnn(vocab_size: int = 10000, num_classes: int = 6, embedding_dim: int = 64,
              context_size: int = 64, hidden_size: int = 128, rnn_type: str = "gru",
              dropout_rate: float = 0.2, pad_id: int = 0, embeddings: str | None = None,
              freeze_embeddings: bool = False) -> TextRCNN:
    """The recurrent convolutional text classifier of Lai et al. (2015); ``embeddings`` names
    pretrained word vectors (``bigmodel.models.word_vectors``), read into its embedding table
    here (a table of vectors is passed to the class as it is)."""
    named = embeddings if isinstance(embeddings, str) else None
    model = TextRCNN(vocab_size=vocab_size, num_classes=num_classes, embedding_dim=embedding_dim,
                     context_size=context_size, hidden_size=hidden_size, rnn_type=rnn_type,
                     dropout_rate=dropout_rate, pad_id=pad_id,
                     embeddings=None if named else embeddings, freeze_embeddings=freeze_embeddings)
    if named is not None:
        model.embeddings_source = copy_embeddings(model.embedding, named, "TextRCNN")
    return model
