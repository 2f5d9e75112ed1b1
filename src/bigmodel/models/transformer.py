"""The encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al., 2017).

Layout (``B`` batch, ``S`` source length, ``T`` target length, ``d`` = ``d_model``)::

    source ids (B, S) --embed * sqrt(d) + sinusoidal positions, dropout(rate)--> (B, S, d)
        encoder: num_layers x [self-attention, feed-forward]           -> memory (B, S, d)
    target ids (B, T) --embed * sqrt(d) + positions, dropout(rate)--> (B, T, d)
        decoder: num_layers x [causal self-attn, cross-attn to memory, feed-forward] -> (B, T, d)
        output projection (tied to the target embedding by default)   -> logits (B, T, vocab)

Post-norm as in the paper (``norm_first=False``), pre-norm as an option. Token id 0 is padding (it is
masked out of every attention and of the loss), 1 is BOS and 2 is EOS unless told otherwise.

The constructor accepts every argument of ``seed-examples/seed_transformer.py``:

- ``num_heads``, ``num_layers``, ``d_model``, ``dff``: the paper's ``h``, ``N``, ``d_model``, ``d_ff``.
- ``rate``: the paper's ``P_drop``, dropout on the sum of embeddings and positions and on every
  sublayer's output before the residual addition.
- ``dropout_rate``: dropout on the attention probabilities (inside each attention).
- ``embed_weights_initializer``: the embedding tables (and so the tied output projection).
- ``embed_bias_initializer``: the bias of the output (vocabulary) projection.
- ``kernel_initializer`` / ``bias_initializer``: weights / biases of every attention and
  feed-forward linear layer. Initializer names are listed in :mod:`bigmodel.nn.init`;
  ``"random_truncated_normal_with_mean"`` is Normal(mean 0, stddev 0.02) truncated at two
  standard deviations.
- ``is_training``: the module starts in training mode (True) or evaluation mode (False).

Vocabulary sizes may be left ``None``: they are then taken from the data at the first ``fit`` /
call (largest id + 1), which is what lets the seed program run unchanged. Pass them to fix the
vocabulary explicitly. ``translate`` / ``generate`` decode greedily or with beam search.

This module is the model alone (plain PyTorch; it knows nothing of training). The Keras-style
``compile/fit/evaluate/predict`` (teacher forcing done for you) are
:class:`bigmodel.keras.transformer.TransformerModel`, a subclass with the same arguments; the
recipes' ``seq2seq`` task trains this one with the engine's ``Trainer``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bigmodel.errors import CheckpointError, ConfigError, DataError, NotBuiltError, ShapeError
from bigmodel.models.decoding import beam_search, greedy_search
from bigmodel.models.registry import register_model
from bigmodel.models.tokens import as_token_ids, embed_tokens
from bigmodel.nn.graph_mode import capturing_graph
from bigmodel.nn.init import check_initializer, initialize
from bigmodel.nn.positional import SinusoidalPositionalEncoding
from bigmodel.nn.transformer import TransformerDecoder, TransformerEncoder
from bigmodel.utils import checks

__all__ = ["TransformerModel", "transformer"]

_SEED_INIT = "random_truncated_normal_with_mean"


class TransformerModel(nn.Module):
    """Encoder-decoder Transformer (see the module docstring for every argument).

    Args (beyond the seed program's):
        input_vocab_size / target_vocab_size: vocabulary sizes; ``None`` = from the first data.
        max_length: longest source or target sequence (positions), BOS included.
        share_embeddings: one table for source and target tokens (needs equal vocabularies).
        tie_output: the output projection reuses the target embedding matrix (paper, 3.4).
        norm_first: pre-norm layers instead of the paper's post-norm.
        activation: feed-forward activation (``relu`` as in the paper, ``gelu``, ...).
        layer_norm_epsilon: LayerNorm epsilon.
        pad_id / bos_id / eos_id: special token ids.

    Raises:
        ConfigError: ``d_model`` not divisible by ``num_heads``, a size that is not a positive
            int, a dropout outside ``[0, 1)``, clashing special ids, or unequal vocabularies with
            ``share_embeddings``. UnknownNameError: an unknown initializer name.
    """

    def __init__(self, num_heads: int = 8, num_layers: int = 6, d_model: int = 512,
                 dff: int = 2048, rate: float = 0.1,
                 embed_weights_initializer: str = _SEED_INIT,
                 embed_bias_initializer: str = "zeros", kernel_initializer: str = _SEED_INIT,
                 bias_initializer: str = "zeros", dropout_rate: float = 0.1,
                 is_training: bool = True, input_vocab_size: int | None = None,
                 target_vocab_size: int | None = None, max_length: int = 512,
                 share_embeddings: bool = False, tie_output: bool = True, norm_first: bool = False,
                 activation: str = "relu", layer_norm_epsilon: float = 1e-6, pad_id: int = 0,
                 bos_id: int = 1, eos_id: int = 2) -> None:
        super().__init__()
        for name, value in (("num_heads", num_heads), ("num_layers", num_layers),
                            ("d_model", d_model), ("dff", dff), ("max_length", max_length)):
            checks.positive_int("TransformerModel", name, value)
        if d_model % num_heads:
            raise ConfigError(f"TransformerModel: d_model must be divisible by num_heads; received "
                              f"d_model={d_model}, num_heads={num_heads}")
        for name, value in (("rate", rate), ("dropout_rate", dropout_rate)):
            checks.rate("TransformerModel", name, value)
        if len({pad_id, bos_id, eos_id}) != 3 or min(pad_id, bos_id, eos_id) < 0:
            raise ConfigError(f"TransformerModel: pad_id, bos_id and eos_id must be distinct "
                              f"non-negative ids; received {pad_id}, {bos_id}, {eos_id}")
        self.initializers = {
            argument: check_initializer(value, argument, "TransformerModel")
            for argument, value in (("embed_weights_initializer", embed_weights_initializer),
                                    ("embed_bias_initializer", embed_bias_initializer),
                                    ("kernel_initializer", kernel_initializer),
                                    ("bias_initializer", bias_initializer))}
        self._given = dict(embed_weights_initializer=embed_weights_initializer,
                           embed_bias_initializer=embed_bias_initializer,
                           kernel_initializer=kernel_initializer, bias_initializer=bias_initializer)
        self.num_heads, self.num_layers, self.d_model, self.dff = num_heads, num_layers, d_model, dff
        self.rate, self.dropout_rate = float(rate), float(dropout_rate)
        self.max_length = max_length
        self.share_embeddings, self.tie_output = bool(share_embeddings), bool(tie_output)
        self.norm_first, self.activation = bool(norm_first), activation
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        layer_kwargs = dict(dropout=rate, attention_dropout=dropout_rate, activation=activation,
                            norm_first=norm_first, layer_norm_eps=layer_norm_epsilon)
        self.encoder = TransformerEncoder(num_layers, d_model, num_heads, dff, **layer_kwargs)
        self.decoder = TransformerDecoder(num_layers, d_model, num_heads, dff, **layer_kwargs)
        self.positional = SinusoidalPositionalEncoding(d_model, max_length)
        self.embedding_dropout = nn.Dropout(rate)
        self._init_linear_layers()
        self.input_vocab_size = self.target_vocab_size = None
        self.source_embedding: nn.Embedding | None = None
        self.target_embedding: nn.Embedding | None = None
        self.output_projection: nn.Linear | None = None
        if input_vocab_size is not None or target_vocab_size is not None:
            if input_vocab_size is None or target_vocab_size is None:
                if not share_embeddings:
                    raise ConfigError("TransformerModel: give both input_vocab_size and "
                                      "target_vocab_size, or neither (taken from the data)")
                input_vocab_size = target_vocab_size = input_vocab_size or target_vocab_size
            self.build(input_vocab_size, target_vocab_size)
        self.train(bool(is_training))

    # ------------------------------------------------------------------------------ building
    def _init_linear_layers(self) -> None:
        for module in (self.encoder, self.decoder):
            for sub in module.modules():
                if isinstance(sub, nn.Linear):
                    initialize(sub.weight, self.initializers["kernel_initializer"],
                               sub.in_features, sub.out_features)
                    if sub.bias is not None:
                        initialize(sub.bias, self.initializers["bias_initializer"],
                                   sub.out_features, sub.out_features)

    @property
    def built(self) -> bool:
        return self.output_projection is not None

    def build(self, input_vocab_size: int, target_vocab_size: int) -> None:
        """Create the embeddings and the output projection for the given vocabulary sizes.

        Raises:
            ConfigError: sizes that are not positive ints, too small to hold the special ids, or
                unequal with ``share_embeddings``.
        """
        if self.built:
            raise ConfigError("TransformerModel: the vocabularies are already built "
                              f"({self.input_vocab_size}, {self.target_vocab_size})")
        checks.positive_int("TransformerModel", "input_vocab_size", input_vocab_size)
        checks.positive_int("TransformerModel", "target_vocab_size", target_vocab_size)
        smallest = max(self.pad_id, self.bos_id, self.eos_id) + 1
        if min(input_vocab_size, target_vocab_size) < smallest:
            raise ConfigError(f"TransformerModel: vocabularies must hold the special ids (size >= "
                              f"{smallest}); received {input_vocab_size}, {target_vocab_size}")
        if self.share_embeddings and input_vocab_size != target_vocab_size:
            raise ConfigError(f"TransformerModel: share_embeddings needs equal vocabularies; "
                              f"received input_vocab_size={input_vocab_size}, "
                              f"target_vocab_size={target_vocab_size}")
        device = self.positional.table.device
        embed_init = self.initializers["embed_weights_initializer"]
        self.source_embedding = nn.Embedding(input_vocab_size, self.d_model, device=device)
        initialize(self.source_embedding.weight, embed_init, input_vocab_size, self.d_model)
        if self.share_embeddings:
            self.target_embedding = self.source_embedding
        else:
            self.target_embedding = nn.Embedding(target_vocab_size, self.d_model, device=device)
            initialize(self.target_embedding.weight, embed_init, target_vocab_size, self.d_model)
        self.output_projection = nn.Linear(self.d_model, target_vocab_size, device=device)
        if self.tie_output:
            self.output_projection.weight = self.target_embedding.weight
        else:
            initialize(self.output_projection.weight, self.initializers["kernel_initializer"],
                       self.d_model, target_vocab_size)
        initialize(self.output_projection.bias, self.initializers["embed_bias_initializer"],
                   target_vocab_size, target_vocab_size)
        self.input_vocab_size, self.target_vocab_size = input_vocab_size, target_vocab_size

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise NotBuiltError(f"TransformerModel.{what}: the vocabularies are not known yet; pass "
                                "input_vocab_size/target_vocab_size or fit the model on data first")

    # ------------------------------------------------------------------------------ forward
    def _ids(self, x: Any, vocab: int, what: str) -> torch.Tensor:
        ids = as_token_ids(x, "TransformerModel", what)
        if ids.shape[1] > self.max_length:
            raise ShapeError(f"TransformerModel: {what} has length {ids.shape[1]}, longer than "
                             f"max_length={self.max_length}")
        return ids

    def _embed(self, ids: torch.Tensor, table: nn.Embedding, what: str,
               offset: int = 0) -> torch.Tensor:
        x = embed_tokens(ids.to(table.weight.device), table.weight, "TransformerModel", what)
        x = x * math.sqrt(self.d_model)  # paper, section 3.4
        return self.embedding_dropout(self.positional(x, offset))

    def encode(self, source: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``source (B, S)`` ids -> ``(memory (B, S, d_model), source key mask (B, S))``.

        Raises:
            DataError: an id outside the vocabulary, or a source made only of padding.
            ShapeError: longer than ``max_length`` or empty.
        """
        self._require_built("encode")
        ids = self._ids(source, self.input_vocab_size, "source")
        key_mask = (ids != self.pad_id).to(self.source_embedding.weight.device)
        empty = ~key_mask.any(dim=1)
        if not capturing_graph() and bool(empty.any()):
            raise DataError(f"TransformerModel: source row {int(empty.nonzero()[0])} is empty (only "
                            f"padding id {self.pad_id}); every source needs at least one token")
        memory, _ = self.encoder(self._embed(ids, self.source_embedding, "source"),
                                 key_mask=key_mask)
        return memory, key_mask

    def decode(self, target_input: Any, memory: torch.Tensor | None,
               memory_key_mask: torch.Tensor, caches: list | None = None,
               offset: int = 0) -> torch.Tensor:
        """Logits ``(B, T, target_vocab)`` for decoder inputs ``(B, T)`` given the encoder output."""
        self._require_built("decode")
        ids = self._ids(target_input, self.target_vocab_size, "target input")
        x = self._embed(ids, self.target_embedding, "target input", offset)
        x, _ = self.decoder(x, memory, memory_key_mask=memory_key_mask, caches=caches)
        return self.output_projection(x)

    def forward(self, source: Any, target_input: Any = None) -> torch.Tensor:
        """Teacher-forced logits.

        Args:
            source: ``(B, S)`` source ids, or a pair ``(source, target_input)``.
            target_input: ``(B, T)`` decoder inputs (BOS followed by the target shifted right).

        Returns:
            ``(B, T, target_vocab_size)`` logits.
        """
        if target_input is None and isinstance(source, (tuple, list)) and len(source) == 2 \
                and not isinstance(source[0], (int, float)):
            source, target_input = source
        if target_input is None:
            raise ShapeError("TransformerModel.forward needs (source, target_input); use "
                             "translate()/generate() to decode from a source alone")
        if not self.built:
            self._build_from(as_token_ids(source, "TransformerModel", "source"),
                             as_token_ids(target_input, "TransformerModel", "target input"))
        memory, key_mask = self.encode(source)
        return self.decode(target_input, memory, key_mask)

    # ------------------------------------------------------------------------------ decoding
    @torch.no_grad()
    def translate(self, source: Any, max_new_tokens: int | None = None, beam_size: int = 1,
                  length_penalty: float = 0.6, tokenizer: Any = None,
                  target_tokenizer: Any = None, return_scores: bool = False) -> Any:
        """Decode target sequences for ``source``.

        Args:
            source: ``(B, S)`` ids (array, tensor or list of id lists), or strings when a
                ``tokenizer`` is given.
            max_new_tokens: longest output (default ``max_length - 1``).
            beam_size: 1 = greedy; > 1 = beam search with GNMT length normalization
                ``length_penalty``.
            tokenizer: encodes string sources (``encode(text) -> ids``) and, unless
                ``target_tokenizer`` is given, decodes outputs (``decode(ids) -> str``).

        Returns:
            One list of ids per source (EOS and padding removed), or strings with a tokenizer;
            with ``return_scores`` a pair ``(outputs, log-probability scores)``.
        """
        self._require_built("translate")
        if tokenizer is not None and isinstance(source, (str, list)) and source and all(
                isinstance(s, str) for s in ([source] if isinstance(source, str) else source)):
            texts = [source] if isinstance(source, str) else list(source)
            source = [tokenizer.encode(text) for text in texts]
        max_new = self.max_length - 1 if max_new_tokens is None else int(max_new_tokens)
        if not 1 <= max_new <= self.max_length - 1:
            raise ConfigError(f"TransformerModel.translate: max_new_tokens must be in [1, "
                              f"{self.max_length - 1}] (max_length - 1); received {max_new}")
        was_training = self.training
        self.eval()
        try:
            memory, key_mask = self.encode(source)
            batch = memory.shape[0]
            if beam_size > 1:
                memory = memory.repeat_interleave(beam_size, dim=0)
                key_mask = key_mask.repeat_interleave(beam_size, dim=0)
            caches = self.decoder.new_caches()
            position = [0]

            def step(tokens: torch.Tensor) -> torch.Tensor:
                logits = self.decode(tokens, memory if position[0] == 0 else None, key_mask,
                                     caches, offset=position[0])
                position[0] += 1
                return logits[:, -1]

            def reorder(indices: torch.Tensor) -> None:
                for self_cache, _ in caches:
                    self_cache.reorder(indices)

            first = torch.full((memory.shape[0], 1), self.bos_id, dtype=torch.long,
                               device=memory.device)
            if beam_size > 1:
                tokens, scores = beam_search(step, reorder, first, beam_size, max_new, self.eos_id,
                                             self.pad_id, length_penalty)
            else:
                tokens, scores = greedy_search(step, first, max_new, self.eos_id, self.pad_id)
        finally:
            self.train(was_training)
        outputs = [self._strip(row) for row in tokens.tolist()][:batch]
        decoder = target_tokenizer or tokenizer
        if decoder is not None:
            outputs = [decoder.decode(row) for row in outputs]
        return (outputs, scores.cpu()) if return_scores else outputs

    generate = translate

    def _strip(self, row: list[int]) -> list[int]:
        if self.eos_id in row:
            row = row[: row.index(self.eos_id)]
        return [t for t in row if t != self.pad_id]

    # ------------------------------------------------------------------------------ config / files
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this model (vocabulary sizes included once built)."""
        return {"num_heads": self.num_heads, "num_layers": self.num_layers,
                "d_model": self.d_model, "dff": self.dff, "rate": self.rate, **self._given,
                "dropout_rate": self.dropout_rate, "is_training": False,
                "input_vocab_size": self.input_vocab_size,
                "target_vocab_size": self.target_vocab_size, "max_length": self.max_length,
                "share_embeddings": self.share_embeddings, "tie_output": self.tie_output,
                "norm_first": self.norm_first, "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon, "pad_id": self.pad_id,
                "bos_id": self.bos_id, "eos_id": self.eos_id}

    def save(self, directory: str | Path) -> Path:
        """Write ``model.json`` + ``model.safetensors`` (rebuild with :meth:`load`)."""
        from bigmodel.models.registry import save_model

        self._require_built("save")
        self._registry_name = "transformer"
        self._registry_config = self.get_config()
        return save_model(self, directory)

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> TransformerModel:
        """Rebuild a model written by :meth:`save` (safetensors + JSON, no pickle), as an instance
        of ``cls`` (a subclass such as the Keras surface's gets its own class, same weights).

        Raises:
            CheckpointError: the directory holds no encoder-decoder Transformer.
        """
        from bigmodel.models.registry import load_model

        model = load_model(directory, device)
        if not isinstance(model, TransformerModel):
            raise CheckpointError(f"{cls.__name__}.load: {directory} holds a "
                                  f"{type(model).__name__}, not an encoder-decoder Transformer")
        if type(model) is not cls:
            rebuilt = cls(**model.get_config())
            rebuilt.load_state_dict(model.state_dict())
            model = rebuilt.to(device)
        return model

    def num_parameters(self) -> int:
        """Distinct parameters (a tied matrix counted once)."""
        return sum(p.numel() for p in self.parameters())

    # Keras's training surface lives in bigmodel.keras.transformer (models know nothing of
    # training). Without these, a Keras-style ``compile(optimizer=...)`` on this class would reach
    # ``nn.Module.compile`` (torch.compile) and fail with an unrelated TypeError.
    _KERAS_COMPILE_ARGS = frozenset({"optimizer", "loss", "metrics", "loss_weights",
                                     "weighted_metrics", "run_eagerly", "steps_per_execution",
                                     "jit_compile", "auto_scale_loss"})

    def compile(self, *args: Any, **kwargs: Any) -> Any:
        """``torch.compile`` this module (``nn.Module.compile``); Keras-style arguments are refused.

        Raises:
            ConfigError: Keras ``compile`` arguments (``optimizer=``, ``loss=``, ...): they belong
                to :class:`bigmodel.keras.transformer.TransformerModel`.
        """
        keras_like = self._KERAS_COMPILE_ARGS & kwargs.keys() or (
            args and (isinstance(args[0], str) or hasattr(args[0], "param_groups")))
        if keras_like:
            raise ConfigError(_KERAS_SURFACE.format(method="compile"))
        return super().compile(*args, **kwargs)

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        """Refused with a pointer: Keras-style training is :mod:`bigmodel.keras.transformer`'s."""
        raise ConfigError(_KERAS_SURFACE.format(method="fit"))


_KERAS_SURFACE = ("bigmodel.models.transformer.TransformerModel is the plain PyTorch module and has "
                  "no Keras-style {method}(); for compile/fit/evaluate/predict import "
                  "TransformerModel from bigmodel.keras.transformer (same arguments, same files)")


@register_model("transformer", example_input=lambda batch: (
    torch.randint(3, 64, (batch, 7)), torch.randint(3, 64, (batch, 5))))
def transformer(num_heads: int = 4, num_layers: int = 2, d_model: int = 64, dff: int = 256,
                rate: float = 0.1, embed_weights_initializer: str = _SEED_INIT,
                embed_bias_initializer: str = "zeros", kernel_initializer: str = _SEED_INIT,
                bias_initializer: str = "zeros", dropout_rate: float = 0.1,
                is_training: bool = True, input_vocab_size: int = 64, target_vocab_size: int = 64,
                max_length: int = 128, share_embeddings: bool = False, tie_output: bool = True,
                norm_first: bool = False, activation: str = "relu",
                layer_norm_epsilon: float = 1e-6, pad_id: int = 0, bos_id: int = 1,
                eos_id: int = 2) -> TransformerModel:
    """A small encoder-decoder Transformer (override the sizes; the paper's base model is
    ``num_heads=8, num_layers=6, d_model=512, dff=2048`` with a ~37k shared vocabulary)."""
    return TransformerModel(**{k: v for k, v in locals().items()})
