"""GPT: a decoder-only, causal Transformer language model (Radford et al., 2018/2019).

Layout (``B`` batch, ``T`` tokens, ``d`` = ``d_model``)::

    ids (B, T) -> token embedding (+ learned positions, or rotary inside attention), dropout
    num_layers x pre-norm block [causal self-attention, MLP (GELU)]  -> final LayerNorm
    lm_head (tied to the token embedding)                           -> logits (B, T, vocab)

Weights are initialized as GPT-2: Normal(0, 0.02), zero biases, and the two residual projections
of every block (attention output, MLP output) scaled by ``1/sqrt(2 * num_layers)``.

``generate`` decodes with a key/value cache (each new token costs one position, not a whole
forward pass), with temperature, top-k and top-p (nucleus) sampling.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.models.decoding import sample_logits
from bigmodel.models.registry import register_model
from bigmodel.models.tokens import as_token_ids, embed_tokens
from bigmodel.nn.attention import KVCache
from bigmodel.nn.positional import LearnedPositionalEmbedding, RotaryEmbedding
from bigmodel.nn.transformer import TransformerEncoder

__all__ = ["GPT", "GPT2_SMALL", "gpt", "language_model_loss"]

# GPT-2 small (124 M parameters with the tied head): the configuration of the GPU benchmark.
GPT2_SMALL = dict(vocab_size=50257, max_length=1024, d_model=768, num_heads=12, num_layers=12)


def language_model_loss(logits: torch.Tensor, targets: torch.Tensor,
                        ignore_index: int = -100) -> torch.Tensor:
    """Mean next-token cross-entropy: ``logits (B, T, V)`` against ``targets (B, T)``."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                           ignore_index=ignore_index)


class GPT(nn.Module):
    """Decoder-only Transformer language model.

    Args:
        vocab_size: number of token ids.
        max_length: context length (positions).
        d_model, num_heads, num_layers: width, heads (must divide ``d_model``), blocks.
        dff: MLP width (default ``4 * d_model``).
        dropout: dropout on embeddings, attention probabilities and residual branches.
        bias: biases in linear layers and LayerNorms.
        positional: ``"learned"`` (GPT-2) or ``"rope"`` (rotary, inside attention).
        tie_embeddings: the output head reuses the token embedding matrix.
        activation: MLP activation (``gelu_tanh`` as GPT-2, ``gelu``, ``relu``, ``silu``).

    Raises:
        ConfigError: bad sizes, ``d_model`` not divisible by ``num_heads``, unknown options.
    """

    def __init__(self, vocab_size: int = 256, max_length: int = 256, d_model: int = 384,
                 num_heads: int = 6, num_layers: int = 6, dff: int | None = None,
                 dropout: float = 0.0, bias: bool = True, positional: str = "learned",
                 tie_embeddings: bool = True, activation: str = "gelu_tanh",
                 layer_norm_epsilon: float = 1e-5) -> None:
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("max_length", max_length),
                            ("d_model", d_model), ("num_heads", num_heads),
                            ("num_layers", num_layers), ("dff", dff or 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"GPT: '{name}' must be a positive int; received {value!r}")
        if d_model % num_heads:
            raise ConfigError(f"GPT: d_model must be divisible by num_heads; received "
                              f"d_model={d_model}, num_heads={num_heads}")
        if positional not in ("learned", "rope"):
            raise ConfigError(f"GPT: 'positional' must be 'learned' or 'rope'; received "
                              f"{positional!r}")
        self.vocab_size, self.max_length, self.d_model = vocab_size, max_length, d_model
        self.num_heads, self.num_layers = num_heads, num_layers
        self.dff = dff or 4 * d_model
        self.dropout, self.bias, self.positional_kind = float(dropout), bool(bias), positional
        self.tie_embeddings, self.activation = bool(tie_embeddings), activation
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position = (LearnedPositionalEmbedding(max_length, d_model)
                         if positional == "learned" else None)
        self.rotary = (RotaryEmbedding(d_model // num_heads, max_length)
                       if positional == "rope" else None)
        self.embedding_dropout = nn.Dropout(dropout)
        self.blocks = TransformerEncoder(num_layers, d_model, num_heads, self.dff, dropout=dropout,
                                         attention_dropout=dropout, activation=activation,
                                         norm_first=True, layer_norm_eps=layer_norm_epsilon,
                                         bias=bias)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self._init_weights()
        if tie_embeddings:
            self.lm_head.weight = self.token_embedding.weight

    def _init_weights(self) -> None:
        residual_std = 0.02 / math.sqrt(2 * self.num_layers)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                std = residual_std if name.endswith(("out_proj", "linear2")) else 0.02
                nn.init.normal_(module.weight, 0.0, std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, 0.02)

    def new_caches(self) -> list[KVCache]:
        """Empty key/value caches, one per block."""
        return [KVCache() for _ in self.blocks.layers]

    def forward(self, ids: Any, caches: list[KVCache] | None = None, offset: int = 0,
                ) -> torch.Tensor:
        """Next-token logits.

        Args:
            ids: ``(B, T)`` token ids.
            caches: from :meth:`new_caches`, to continue a sequence whose first ``offset``
                tokens were already processed.
            offset: position of ``ids[:, 0]``.

        Returns:
            ``(B, T, vocab_size)`` logits.

        Raises:
            DataError: an id outside ``[0, vocab_size)``.
            ShapeError: ``offset + T > max_length``, or not ``(B, T)`` ids.
        """
        ids = ids if isinstance(ids, torch.Tensor) and ids.dim() == 2 and not ids.is_floating_point() \
            else as_token_ids(ids, "GPT", "ids")
        if ids.shape[1] == 0:
            raise ShapeError("GPT: ids is an empty sequence (length 0); expected at least one token")
        if offset + ids.shape[1] > self.max_length:
            raise ShapeError(f"GPT: {ids.shape[1]} tokens at position {offset} exceed the context "
                             f"length max_length={self.max_length}")
        x = embed_tokens(ids, self.token_embedding.weight, "GPT", "ids")  # (B, T, d)
        if self.position is not None:
            x = self.position(x, offset)
        x = self.embedding_dropout(x)
        x, _ = self.blocks(x, is_causal=True, caches=caches, rotary=self.rotary)
        return self.lm_head(x)

    @torch.no_grad()
    def generate(self, prompt: Any, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, eos_id: int | None = None,
                 seed: int | None = None) -> torch.Tensor:
        """Continue ``prompt`` by sampling ``max_new_tokens`` tokens (KV-cached).

        Args:
            prompt: ``(B, T)`` ids (rows of equal length).
            temperature: 0 = greedy (argmax); otherwise logits are divided by it.
            top_k / top_p: keep the k most likely tokens / the smallest set reaching p.
            eos_id: rows that produced it continue with ``eos_id`` (generation stops when every
                row has).
            seed: a private generator for reproducible samples.

        Returns:
            ``(B, T + new)`` ids, prompt included.

        Raises:
            ConfigError: prompt + new tokens longer than ``max_length``, or bad sampling options.
        """
        ids = as_token_ids(prompt, "GPT", "prompt")
        if max_new_tokens < 1 or ids.shape[1] + max_new_tokens > self.max_length:
            raise ConfigError(f"GPT.generate: prompt length {ids.shape[1]} + max_new_tokens "
                              f"{max_new_tokens} must be in [1, max_length={self.max_length}]")
        device = self.token_embedding.weight.device
        ids = ids.to(device)
        generator = None
        if seed is not None:
            generator = torch.Generator(device=device).manual_seed(int(seed))
        was_training = self.training
        self.eval()
        try:
            caches = self.new_caches()
            logits = self(ids, caches)[:, -1]
            done = torch.zeros(ids.shape[0], dtype=torch.bool, device=device)
            out = [ids]
            for step in range(max_new_tokens):
                token = sample_logits(logits, temperature, top_k, top_p, generator)
                if eos_id is not None:
                    token = torch.where(done, torch.full_like(token, eos_id), token)
                    done = done | (token == eos_id)
                out.append(token[:, None])
                if (eos_id is not None and bool(done.all())) or step == max_new_tokens - 1:
                    break
                logits = self(token[:, None], caches, offset=ids.shape[1] + step)[:, -1]
        finally:
            self.train(was_training)
        return torch.cat(out, dim=1)

    def num_parameters(self, non_embedding: bool = False) -> int:
        """Distinct parameters; ``non_embedding`` leaves out the token and position tables."""
        total = sum(p.numel() for p in self.parameters())
        if non_embedding:
            total -= self.token_embedding.weight.numel()
            if self.position is not None:
                total -= self.position.weight.numel()
        return total

    def flops_per_token(self, sequence_length: int | None = None) -> int:
        """Training FLOPs per token: ``6 * N + 12 * layers * d_model * T`` (Kaplan et al., 2020,
        with ``N`` the non-embedding parameters plus the output head; the second term is
        attention's score and value products, forward and backward)."""
        length = self.max_length if sequence_length is None else sequence_length
        matmul_params = self.num_parameters(non_embedding=True) + self.vocab_size * self.d_model
        return 6 * matmul_params + 12 * self.num_layers * self.d_model * length

    def get_config(self) -> dict[str, Any]:
        return {"vocab_size": self.vocab_size, "max_length": self.max_length,
                "d_model": self.d_model, "num_heads": self.num_heads,
                "num_layers": self.num_layers, "dff": self.dff, "dropout": self.dropout,
                "bias": self.bias, "positional": self.positional_kind,
                "tie_embeddings": self.tie_embeddings, "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon}


@register_model("gpt", example_input=lambda batch: torch.randint(0, 256, (batch, 16)))
def gpt(vocab_size: int = 256, max_length: int = 128, d_model: int = 128, num_heads: int = 4,
        num_layers: int = 4, dff: int | None = None, dropout: float = 0.0, bias: bool = True,
        positional: str = "learned", tie_embeddings: bool = True, activation: str = "gelu_tanh",
        layer_norm_epsilon: float = 1e-5) -> GPT:
    """A small GPT (byte/char vocabulary); ``GPT2_SMALL`` holds GPT-2 small's sizes."""
    return GPT(vocab_size=vocab_size, max_length=max_length, d_model=d_model, num_heads=num_heads,
               num_layers=num_layers, dff=dff, dropout=dropout, bias=bias, positional=positional,
               tie_embeddings=tie_embeddings, activation=activation,
               layer_norm_epsilon=layer_norm_epsilon)
