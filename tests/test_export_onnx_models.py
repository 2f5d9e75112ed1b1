"""ONNX export of every registered model family: outputs match eager PyTorch under ONNX Runtime
(max abs diff <= 1e-4) with a symbolic batch axis, and a symbolic sequence axis where the model
takes variable lengths; padded token batches give what the eager (packing / masking) paths give;
the eager input checks still hold outside export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from bigmodel.errors import DataError, ShapeError  # noqa: E402
from bigmodel.export import export_onnx, onnx_session  # noqa: E402
from bigmodel.models import create_model  # noqa: E402
from bigmodel.nn.recurrent import LSTM, check_lengths  # noqa: E402
from bigmodel.nn.recurrent_kernels import fused_packed, fused_padded, torch_weights  # noqa: E402

ATOL = 1e-4


def ort_run(path, *inputs) -> np.ndarray:
    session = onnx_session(path)
    feeds = {meta.name: x.numpy() for meta, x in zip(session.get_inputs(), inputs)}
    return session.run(None, feeds)[0]


def eager(model, *inputs) -> np.ndarray:
    with torch.no_grad():
        return model(*inputs).numpy()


def padded_ids(lengths, vocab: int, width: int | None = None) -> torch.Tensor:
    """Right-padded ids (0 = padding), one row per length."""
    width = width or max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(3, vocab, (length,))
    return ids


# (name, small overrides, example batch of 1, symbolic axes expected per input)
IMAGE_AND_FEATURE_FAMILIES = [
    ("rcnn-32", {"width": 8, "steps": 2}, lambda: (torch.rand(1, 1, 28, 28),), [[0]]),
    ("vit", {"d_model": 16, "num_layers": 1, "dff": 32}, lambda: (torch.rand(1, 1, 28, 28),),
     [[0]]),
    ("seed-rnn", {"hidden_size": 8}, lambda: (torch.rand(1, 28, 28),), [[0]]),
    ("rnn-regressor", {"hidden_size": 8},
     lambda: (torch.randn(1, 10, 1),), [[0, 1]]),
]


@pytest.mark.parametrize("name,overrides,example,axes", IMAGE_AND_FEATURE_FAMILIES,
                         ids=[f[0] for f in IMAGE_AND_FEATURE_FAMILIES])
def test_image_and_feature_families(tmp_path, name, overrides, example, axes):
    torch.manual_seed(0)
    model = create_model(name, **overrides).eval()
    result = export_onnx(model, tmp_path / "m.onnx", example())
    assert result.max_abs_diff <= ATOL
    assert result.dynamic_axes == axes
    x = example()[0].repeat(5, *([1] * (example()[0].ndim - 1))) + 0.1 * torch.rand(5, 1, 1)[
        (...,) + (None,) * (example()[0].ndim - 3)]
    np.testing.assert_allclose(ort_run(result.path, x), eager(model, x), atol=ATOL, rtol=0)
    if 1 in axes[0]:  # a longer sequence than the example also runs
        longer = torch.randn(4, 17, x.shape[-1])
        np.testing.assert_allclose(ort_run(result.path, longer), eager(model, longer), atol=ATOL,
                                   rtol=0)


TOKEN_FAMILIES = [
    ("rnn-tagger", {"vocab_size": 50, "embedding_dim": 8, "hidden_size": 8}),  # bidirectional
    ("rnn-classifier", {"vocab_size": 50, "embedding_dim": 8, "hidden_size": 8, "num_layers": 2,
                        "bidirectional": True, "cell": "gru"}),
    ("rnn-classifier", {"vocab_size": 50, "embedding_dim": 8, "hidden_size": 8, "cell": "simple"}),
    ("text-rcnn", {"vocab_size": 50, "embedding_dim": 8, "context_size": 8, "hidden_size": 16,
                   "rnn_type": "lstm"}),
    ("transformer-classifier", {"vocab_size": 50, "d_model": 16, "num_layers": 1, "dff": 32,
                                "max_length": 32, "pooling": "cls", "positional": "learned"}),
    ("gpt", {"vocab_size": 50, "d_model": 16, "num_layers": 1, "max_length": 32}),
    ("bert-classifier", {"vocab_size": 50, "d_model": 16, "num_layers": 1, "dff": 32,
                         "max_length": 32}),
]


@pytest.mark.parametrize("name,overrides", TOKEN_FAMILIES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(TOKEN_FAMILIES)])
def test_token_families_padded_batches_and_lengths(tmp_path, name, overrides):
    torch.manual_seed(0)
    model = create_model(name, **overrides).eval()
    result = export_onnx(model, tmp_path / "m.onnx", torch.randint(3, 50, (1, 9)))
    assert result.max_abs_diff <= ATOL
    # Batch and sequence stay symbolic, except where the ONNX lowering fixes the step count (a
    # tanh RNN is unrolled over the example's steps): then inputs must have the example's length.
    fixed_steps = overrides.get("cell") == "simple"
    assert result.dynamic_axes == ([[0]] if fixed_steps else [[0, 1]])
    # Right-padded rows of different lengths: the eager model packs / masks them.
    batches = [padded_ids([9, 4, 1, 7], 50), padded_ids([3, 3], 50), padded_ids([20, 11, 5], 50)]
    if name == "gpt":  # causal LM: no padding id, every position is a token
        batches = [torch.randint(0, 50, (4, 9)), torch.randint(0, 50, (2, 3)),
                   torch.randint(0, 50, (3, 20))]
    if fixed_steps:
        batches = [padded_ids([9, 4, 1, 7], 50), padded_ids([3, 5], 50, width=9)]
    for ids in batches:
        np.testing.assert_allclose(ort_run(result.path, ids), eager(model, ids), atol=ATOL, rtol=0)


def test_transformer_seq2seq_with_padded_sources(tmp_path):
    torch.manual_seed(0)
    model = create_model("transformer", d_model=16, dff=32, num_layers=1, input_vocab_size=40,
                         target_vocab_size=30, max_length=32).eval()
    result = export_onnx(model, tmp_path / "t.onnx",
                         (torch.randint(3, 40, (1, 7)), torch.randint(3, 30, (1, 5))))
    assert result.max_abs_diff <= ATOL and result.dynamic_axes == [[0, 1], [0, 1]]
    source, target = padded_ids([11, 3, 6], 40), torch.randint(3, 30, (3, 8))
    np.testing.assert_allclose(ort_run(result.path, source, target), eager(model, source, target),
                               atol=ATOL, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple"])
def test_branch_free_padded_kernel_equals_packing(cell):
    torch.manual_seed(0)
    layer = {"lstm": LSTM}.get(cell)
    from bigmodel.nn.recurrent import GRU, SimpleRNN

    layer = (layer or {"gru": GRU, "simple": SimpleRNN}[cell])(5, 6, num_layers=2,
                                                               bidirectional=True)
    x, lengths = torch.randn(4, 7, 5), torch.tensor([7, 2, 5, 1])
    weights = [w for _, k, r, b in layer._triples() for w in torch_weights(cell, k, r, b)]
    zeros = torch.zeros(4, 4, 6)
    state = (zeros, zeros) if cell == "lstm" else zeros
    out, h, _ = fused_packed(cell, x, lengths, weights, state, num_layers=2, bidirectional=True)
    out2, h2, c2 = fused_padded(cell, x, lengths, weights, state, num_layers=2, bidirectional=True)
    torch.testing.assert_close(out2, out, atol=1e-6, rtol=0)
    torch.testing.assert_close(h2, h, atol=1e-6, rtol=0)
    assert c2 is None


def test_eager_value_checks_still_hold():
    """Skipping value checks is for graph capture only: eager calls still refuse bad batches."""
    tagger = create_model("rnn-tagger", vocab_size=50, embedding_dim=8, hidden_size=8)
    with pytest.raises(ShapeError, match="right padding"):
        tagger(torch.tensor([[0, 5, 6]]))
    rcnn = create_model("text-rcnn", vocab_size=50, embedding_dim=8, context_size=8,
                        hidden_size=16)
    with pytest.raises(DataError, match="only padding"):
        rcnn(torch.tensor([[4, 5], [0, 0]]))
    with pytest.raises(DataError, match=r"\[0, 50\)"):
        rcnn(torch.tensor([[4, 99]]))
    classifier = create_model("transformer-classifier", vocab_size=50, d_model=16, num_layers=1,
                              dff=32)
    with pytest.raises(DataError, match="empty"):
        classifier(torch.tensor([[4, 5], [0, 0]]))
    seq2seq = create_model("transformer", d_model=16, dff=32, num_layers=1, input_vocab_size=40,
                           target_vocab_size=30)
    with pytest.raises(DataError, match="empty"):
        seq2seq(torch.tensor([[0, 0]]), torch.tensor([[1, 5]]))
    with pytest.raises(DataError, match="length"):
        check_lengths("LSTM", torch.tensor([3, 0]), 2, 3, torch.device("cpu"))
