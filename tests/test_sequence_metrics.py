"""Token-sequence metrics, teacher forcing and batches, and the language model's bits per character,
against NumPy computations of their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bigmodel.data.seq2seq import seq2seq_batches, teacher_forcing
from bigmodel.engine.metric_base import Metric
from bigmodel.engine.sequence_metrics import MaskedTokenAccuracy, SequenceExactMatch


def _logits_for(predicted: np.ndarray, vocab: int = 6) -> torch.Tensor:
    """Logits whose argmax is ``predicted (B, T)``."""
    return torch.nn.functional.one_hot(torch.as_tensor(predicted), vocab).float() * 3.0


def test_token_accuracy_and_exact_match_ignore_padding():
    rng = np.random.default_rng(0)
    targets = rng.integers(1, 6, size=(3, 7, 5))  # 3 batches of (7, 5)
    targets[:, :, 3:] *= rng.integers(0, 2, size=(3, 7, 2))  # some trailing padding (id 0)
    predicted = np.where(rng.random(targets.shape) < 0.8, targets, rng.integers(0, 6, targets.shape))
    accuracy, exact = MaskedTokenAccuracy(pad_id=0), SequenceExactMatch(pad_id=0)
    assert isinstance(accuracy, Metric) and exact.name == "sequence_accuracy"
    for batch in range(3):
        y = torch.as_tensor(targets[batch])
        accuracy.update(_logits_for(predicted[batch]), y)
        exact.update(_logits_for(predicted[batch]), y)
    keep = targets != 0
    assert accuracy.result() == pytest.approx(((predicted == targets) & keep).sum() / keep.sum())
    rows_right = ((predicted == targets) | ~keep).all(axis=2)
    assert exact.result() == pytest.approx(rows_right.mean())
    accuracy.reset()
    assert accuracy.result() == 0.0


def test_teacher_forcing_and_length_bucketed_batches():
    targets = torch.tensor([[5, 6, 2, 0], [7, 2, 0, 0], [8, 9, 4, 2]])
    decoder_input, same = teacher_forcing(targets, bos_id=1)
    assert decoder_input.tolist() == [[1, 5, 6, 2], [1, 7, 2, 0], [1, 8, 9, 4]]
    assert same is targets
    source = torch.arange(1, 1 + 3 * 30).reshape(30, 3)  # row i starts with 3 * i + 1
    targets = torch.randint(3, 9, (30, 6))
    targets[::2, 3:] = 0  # every second row is shorter
    decoder_input, targets = teacher_forcing(targets, bos_id=1)
    batches = seq2seq_batches(source, decoder_input, targets, 4, shuffle=True, seed=3)
    seen = []
    for (src, dec), tgt in batches:
        rows = ((src[:, 0] - 1) // 3).tolist()
        seen += rows
        assert dec.shape == tgt.shape  # trimmed to one common width
        assert torch.equal(tgt, targets[rows, : tgt.shape[1]])
        assert torch.equal(dec, decoder_input[rows, : dec.shape[1]])
        assert (targets[rows, tgt.shape[1]:] == 0).all()  # only padding was trimmed
    assert sorted(seen) == list(range(30))
    again = [((s[:, 0] - 1) // 3).tolist() for (s, _), _ in
             seq2seq_batches(source, decoder_input, targets, 4, shuffle=True, seed=3)]
    assert sum(again, []) == seen  # the seed fixes the order


def test_bits_per_char_counts_every_character_once_with_its_window_context():
    from bigmodel.recipes.tasks.language_model import best_bigram, validation_bits_per_char

    torch.manual_seed(0)
    vocab, block = 7, 5

    class Bigramish(torch.nn.Module):  # logits from the current and the previous token
        def __init__(self) -> None:
            super().__init__()
            self.table = torch.nn.Parameter(torch.randn(vocab, vocab, vocab))

        def forward(self, ids):
            previous = torch.cat([torch.zeros_like(ids[:, :1]), ids[:, :-1]], dim=1)
            return self.table[previous, ids]

    model = Bigramish()
    ids = np.random.default_rng(1).integers(0, vocab, size=23)  # 22 predictions: 4 windows + 2
    bits = validation_bits_per_char(model, ids, block, batch=3)
    table = torch.log_softmax(model.table.detach().double(), -1).numpy()
    expected = []
    for start in range(0, len(ids) - 1, block):
        window = ids[start: start + block + 1]
        for t in range(1, len(window)):  # the first token of a window has no previous one
            previous = window[t - 2] if t >= 2 else 0
            expected.append(-table[previous, window[t - 1], window[t]] / math.log(2))
    assert len(expected) == 22 and bits == pytest.approx(np.mean(expected), rel=1e-6)

    train = np.random.default_rng(2).integers(0, vocab, size=400)
    alpha, score = best_bigram(train, vocab, alphas=(0.01, 1.0, 100.0))
    from bigmodel.data.char_lm import bigram_bits_per_char

    scores = {a: bigram_bits_per_char(train[:360], train[360:], vocab, alpha=a)
              for a in (0.01, 1.0, 100.0)}
    assert alpha == min(scores, key=scores.get) and score == scores[alpha]
