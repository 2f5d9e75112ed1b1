"""Autoregressive decoding shared by the sequence models: greedy, beam search, sampling.

Each search drives a ``step`` function ``step(tokens) -> logits``: ``tokens`` is ``(rows, 1)``, the
last token of every row, and the returned ``(rows, vocab)`` logits are for the next token. The
caller's ``step`` keeps its own key/value caches; beam search calls ``reorder(indices)`` whenever the
surviving beams are reshuffled so the caller can reorder those caches.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bigmodel.errors import ConfigError

__all__ = ["beam_search", "greedy_search", "sample_logits"]

Step = Callable[[torch.Tensor], torch.Tensor]


def greedy_search(step: Step, first: torch.Tensor, max_new_tokens: int, eos_id: int | None,
                  pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick the most likely token at every step.

    Args:
        step: ``(rows, 1) -> (rows, vocab)`` logits.
        first: ``(rows, 1)`` the token fed first (e.g. BOS).
        max_new_tokens: steps at most.
        eos_id: a row stops after producing it (then ``pad_id`` follows); None: never stops early.

    Returns:
        ``(tokens (rows, steps), log-probability of each row's tokens up to its EOS (rows,))``.
    """
    rows = first.shape[0]
    tokens = first
    done = torch.zeros(rows, dtype=torch.bool, device=first.device)
    score = torch.zeros(rows, device=first.device)
    out = []
    for _ in range(max_new_tokens):
        logp = torch.log_softmax(step(tokens).float(), dim=-1)
        nxt = logp.argmax(dim=-1)
        score = score + torch.where(done, 0.0, logp.gather(1, nxt[:, None]).squeeze(1))
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        out.append(nxt)
        if eos_id is not None:
            done = done | (nxt == eos_id)
            if bool(done.all()):
                break
        tokens = nxt[:, None]
    return torch.stack(out, dim=1), score


def _length_penalty(length: torch.Tensor, alpha: float) -> torch.Tensor:
    """GNMT's ``((5 + length) / 6) ** alpha`` (Wu et al., 2016); 1 when ``alpha`` is 0."""
    return ((5.0 + length.float()) / 6.0) ** alpha


def beam_search(step: Step, reorder: Callable[[torch.Tensor], None], first: torch.Tensor,
                beam_size: int, max_new_tokens: int, eos_id: int, pad_id: int = 0,
                length_penalty: float = 0.6) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the ``beam_size`` best partial sequences per input; return the best finished one.

    Args:
        step: ``(batch * beam_size, 1) -> (batch * beam_size, vocab)`` logits; rows are grouped by
            input (rows ``b * beam_size ... b * beam_size + beam_size - 1`` belong to input ``b``).
        reorder: called with ``(batch * beam_size,)`` row indices after each step.
        first: ``(batch * beam_size, 1)`` the first token of every row.
        length_penalty: ``alpha`` of the GNMT length normalization used to pick the final beam.

    Returns:
        ``(tokens (batch, steps), normalized score (batch,))``.
    """
    if beam_size < 1:
        raise ConfigError(f"beam_search: 'beam_size' must be >= 1; received {beam_size}")
    rows = first.shape[0]
    batch = rows // beam_size
    device = first.device
    scores = torch.full((batch, beam_size), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: expand only the first one at step 0
    scores = scores.view(-1)
    done = torch.zeros(rows, dtype=torch.bool, device=device)
    lengths = torch.zeros(rows, dtype=torch.long, device=device)
    history = torch.empty(rows, 0, dtype=torch.long, device=device)
    tokens = first
    for _ in range(max_new_tokens):
        logp = torch.log_softmax(step(tokens).float(), dim=-1)  # (rows, vocab)
        vocab = logp.shape[-1]
        # A finished row may only continue with padding, at no cost: its score is frozen.
        frozen = torch.full_like(logp, float("-inf"))
        frozen[:, pad_id] = 0.0
        logp = torch.where(done[:, None], frozen, logp)
        candidates = (scores[:, None] + logp).view(batch, beam_size * vocab)
        top_scores, top_index = candidates.topk(beam_size, dim=-1)  # (batch, beam)
        beam = top_index // vocab
        token = top_index % vocab
        source_rows = (beam + torch.arange(batch, device=device)[:, None] * beam_size).view(-1)
        token = token.view(-1)
        scores = top_scores.view(-1)
        history = torch.cat([history.index_select(0, source_rows), token[:, None]], dim=1)
        was_done = done.index_select(0, source_rows)
        lengths = lengths.index_select(0, source_rows) + (~was_done).long()
        done = was_done | (token == eos_id)
        reorder(source_rows)
        if bool(done.all()):
            break
        tokens = token[:, None]
    final = (scores / _length_penalty(lengths, length_penalty)).view(batch, beam_size)
    # Unfinished beams compete too (a sequence cut at max_new_tokens); -inf rows never win.
    best = final.argmax(dim=-1)
    chosen = best + torch.arange(batch, device=device) * beam_size
    return history.index_select(0, chosen), final.gather(1, best[:, None]).squeeze(1)


def sample_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None, generator: torch.Generator | None = None,
                  ) -> torch.Tensor:
    """Draw one token per row from ``(rows, vocab)`` logits.

    ``temperature == 0`` picks the argmax. ``top_k`` keeps the k most likely tokens; ``top_p``
    (nucleus) keeps the smallest set of most likely tokens whose probability reaches ``p``.

    Raises:
        ConfigError: negative temperature, ``top_k < 1`` or ``top_p`` outside ``(0, 1]``.
    """
    if temperature < 0:
        raise ConfigError(f"sample: 'temperature' must be >= 0; received {temperature}")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"sample: 'top_k' must be >= 1; received {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ConfigError(f"sample: 'top_p' must be in (0, 1]; received {top_p}")
    logits = logits.float()
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the tokens before it already reach top_p (the first always stays).
        drop = probs.cumsum(dim=-1) - probs >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
