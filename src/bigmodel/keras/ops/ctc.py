"""CTC (connectionist temporal classification): ``keras.ops.ctc_loss`` and ``ctc_decode``.

The loss is ``torch.nn.functional.ctc_loss`` on the log-softmax of the logits, as Keras 3's torch
backend computes it. Decoding follows Keras 3's return format:

- greedy: the best class at each step, repeats merged, the blank dropped; returns
  ``(decoded (1, batch, time), scores (batch, 1))`` where a score is minus the sum of the chosen
  (raw) logits;
- beam search: CTC prefix beam search, each prefix carrying the log-probability of its alignments
  ending in a blank and ending in a symbol (so ``a-a`` and ``aa`` stay apart); returns
  ``(decoded (top_paths, batch, time), log_probabilities (batch, top_paths))``.

Decoded rows are left-aligned and padded with ``-1``. :mod:`.nn` exports both as ``keras.ops`` names.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from bigmodel.errors import ConfigError, DataError, ShapeError

__all__ = ["ctc_decode", "ctc_loss"]

_PAD = -1


def ctc_loss(target: Any, output: Any, target_length: Any, output_length: Any,
             mask_index: int = 0) -> torch.Tensor:
    """Per-sequence CTC loss (negative log-likelihood of the label sequence).

    Args:
        target: integer labels ``(batch, max_label_length)``, padded past ``target_length``.
        output: logits ``(batch, time, classes)`` (not softmax-normalised).
        target_length: ``(batch,)`` number of labels per sequence.
        output_length: ``(batch,)`` number of valid steps per sequence.
        mask_index: the blank class.

    Returns:
        ``(batch,)`` losses (``inf`` where no alignment exists, as Keras/torch).

    Raises:
        ShapeError: ranks or batch sizes that do not fit.
        DataError: labels outside ``[0, classes)``. (The blank among a sequence's labels is
            not refused, as in Keras and torch: a functional graph's shape trial runs a custom
            CTC layer on zero labels.)
    """
    output = torch.as_tensor(output)
    output = output.float() if not output.is_floating_point() or output.dtype in (
        torch.float16, torch.bfloat16) else output
    target = torch.as_tensor(target, device=output.device).long()
    target_length = torch.as_tensor(target_length, device=output.device).long().reshape(-1)
    output_length = torch.as_tensor(output_length, device=output.device).long().reshape(-1)
    if output.dim() != 3 or target.dim() != 2:
        raise ShapeError(f"ctc_loss: expected target (batch, max_length) and output (batch, "
                         f"time, classes); received target.shape={tuple(target.shape)}, "
                         f"output.shape={tuple(output.shape)}")
    batch, classes = output.shape[0], output.shape[2]
    if target.shape[0] != batch or target_length.numel() != batch or (
            output_length.numel() != batch):
        raise ShapeError(f"ctc_loss: batch sizes differ: target {target.shape[0]}, output "
                         f"{batch}, target_length {target_length.numel()}, output_length "
                         f"{output_length.numel()}")
    if not 0 <= mask_index < classes:
        raise ConfigError(f"ctc_loss: mask_index must lie in [0, {classes - 1}]; received "
                          f"mask_index={mask_index}")
    valid = torch.arange(target.shape[1], device=target.device) < target_length[:, None]
    used = target[valid]
    if used.numel() and (int(used.min()) < 0 or int(used.max()) >= classes):
        raise DataError(f"ctc_loss: labels must lie in [0, {classes - 1}] for {classes} output "
                        f"classes; received labels in [{int(used.min())}, {int(used.max())}]")
    # torch wants (time, batch, classes) log-probabilities
    log_probs = F.log_softmax(output.transpose(0, 1), dim=-1)
    return F.ctc_loss(log_probs, target, output_length, target_length, blank=mask_index,
                      reduction="none")


def ctc_decode(inputs: Any, sequence_lengths: Any, strategy: str = "greedy",
               beam_width: int = 100, top_paths: int = 1, merge_repeated: bool = True,
               mask_index: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode per-step logits ``(batch, time, classes)`` (see the module docstring).

    Args:
        inputs: logits ``(batch, time, classes)``.
        sequence_lengths: ``(batch,)`` number of valid steps per sequence.
        strategy: ``"greedy"`` or ``"beam_search"``.
        beam_width, top_paths: beam search's width and number of sequences returned.
        merge_repeated: greedy: merge repeated classes (``aab`` -> ``ab``).
        mask_index: the blank class (None: the last class).

    Returns:
        ``(decoded, scores)`` in Keras's shapes; ``decoded`` is int32, padded with ``-1``.

    Raises:
        ConfigError: an unknown strategy, or ``top_paths`` above ``beam_width``.
        ShapeError: inputs that are not 3-D.
    """
    inputs = torch.as_tensor(inputs)
    inputs = inputs.float() if inputs.dtype != torch.float64 else inputs
    if inputs.dim() != 3:
        raise ShapeError(f"ctc_decode: inputs must be logits (batch, time, classes); received "
                         f"shape {tuple(inputs.shape)}")
    lengths = torch.as_tensor(sequence_lengths, device=inputs.device).long().reshape(-1)
    if lengths.numel() != inputs.shape[0]:
        raise ShapeError(f"ctc_decode: {lengths.numel()} sequence lengths for a batch of "
                         f"{inputs.shape[0]}")
    if mask_index is None:
        mask_index = inputs.shape[2] - 1
    if strategy == "greedy":
        return _greedy(inputs, lengths, merge_repeated, mask_index)
    if strategy == "beam_search":
        if not 1 <= top_paths <= beam_width:
            raise ConfigError(f"ctc_decode: top_paths must lie in [1, beam_width={beam_width}]; "
                              f"received top_paths={top_paths}")
        return _beam_search(inputs, lengths, beam_width, top_paths, mask_index)
    raise ConfigError(f"ctc_decode: invalid strategy {strategy!r}. Supported values are "
                      "'greedy' and 'beam_search'.")


def _left_align(paths: list[list[int]], steps: int, device: torch.device) -> torch.Tensor:
    out = torch.full((len(paths), steps), _PAD, dtype=torch.int32, device=device)
    for row, path in enumerate(paths):
        if path:
            out[row, :len(path)] = torch.tensor(path, dtype=torch.int32, device=device)
    return out


def _greedy(inputs: torch.Tensor, lengths: torch.Tensor, merge_repeated: bool,
            mask_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    batch, steps, _ = inputs.shape
    scores, best = inputs.max(dim=-1)  # (batch, time)
    beyond = torch.arange(steps, device=inputs.device)[None, :] >= lengths[:, None]
    best = torch.where(beyond, mask_index, best)
    scores = torch.where(beyond, 0.0, scores)
    if merge_repeated:
        repeat = torch.zeros_like(beyond)
        repeat[:, 1:] = best[:, 1:] == best[:, :-1]
        best = torch.where(repeat, mask_index, best)
    keep = best != mask_index
    # move the kept classes to the front of each row, in order (a stable sort on "dropped")
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices
    decoded = torch.where(keep, best, _PAD).gather(1, order).to(torch.int32)
    return decoded.unsqueeze(0), -scores.sum(dim=1, keepdim=True)


def _beam_search(inputs: torch.Tensor, lengths: torch.Tensor, beam_width: int, top_paths: int,
                 mask_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    batch, steps, _ = inputs.shape
    log_probs = F.log_softmax(inputs.double(), dim=-1).cpu().numpy()
    all_paths, all_scores = [], []
    for b in range(batch):
        beams, blank, symbol = [()], np.zeros(1), np.full(1, -np.inf)
        for t in range(int(lengths[b])):
            beams, blank, symbol = _beam_step(beams, blank, symbol, log_probs[b, t], beam_width,
                                              mask_index)
        total = np.logaddexp(blank, symbol)
        order = np.argsort(-total, kind="stable")[:top_paths]
        ranked = [(float(total[i]), beams[i]) for i in order]
        ranked += [(float("-inf"), ())] * (top_paths - len(ranked))
        all_paths.append([list(p) for _, p in ranked])
        all_scores.append([s for s, _ in ranked])
    decoded = torch.stack([_left_align([all_paths[b][k] for b in range(batch)], steps,
                                       inputs.device) for k in range(top_paths)])
    return decoded, torch.tensor(all_scores, dtype=inputs.dtype, device=inputs.device)


def _beam_step(beams: list[tuple[int, ...]], blank: np.ndarray, symbol: np.ndarray,
               row: np.ndarray, beam_width: int,
               mask_index: int) -> tuple[list[tuple[int, ...]], np.ndarray, np.ndarray]:
    """One step of the prefix beam search over ``beams`` (prefixes), each with the
    log-probability of its alignments ending in the blank and ending in its last symbol."""
    total = np.logaddexp(blank, symbol)
    last = np.array([p[-1] if p else -1 for p in beams])
    has_last = last >= 0
    # a prefix stays: through the blank, or its last symbol repeated (merged)
    stay_blank = total + row[mask_index]
    stay_symbol = np.where(has_last, symbol + row[np.maximum(last, 0)], -np.inf)
    # a prefix grows by a symbol; after the same symbol only through a blank
    grow = total[:, None] + row[None, :]
    rows = np.nonzero(has_last)[0]
    grow[rows, last[rows]] = blank[rows] + row[last[rows]]
    grow[:, mask_index] = -np.inf
    # a grown prefix that is already a beam merges into it
    index = {p: i for i, p in enumerate(beams)}
    for i, p in enumerate(beams):
        parent = index.get(p[:-1]) if p else None
        if parent is not None:
            stay_symbol[i] = np.logaddexp(stay_symbol[i], grow[parent, p[-1]])
            grow[parent, p[-1]] = -np.inf
    scores = np.concatenate([np.logaddexp(stay_blank, stay_symbol), grow.reshape(-1)])
    keep = np.argsort(-scores, kind="stable")[:beam_width]
    keep = keep[np.isfinite(scores[keep])]
    classes = row.shape[0]
    new_beams, new_blank, new_symbol = [], [], []
    for k in keep:
        if k < len(beams):
            new_beams.append(beams[k])
            new_blank.append(stay_blank[k])
            new_symbol.append(stay_symbol[k])
        else:
            parent, c = divmod(int(k) - len(beams), classes)
            new_beams.append(beams[parent] + (c,))
            new_blank.append(-np.inf)
            new_symbol.append(grow[parent, c])
    return new_beams, np.array(new_blank), np.array(new_symbol)
