"""The one batched-inference loop, ``bigmodel.engine.inference.predict_batches``: results equal one
full-batch pass computed with NumPy, every input form, eval mode restored, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bigmodel.engine.inference import predict_batches
from bigmodel.errors import ConfigError, DataError, InputTypeError, ShapeError


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    # Dropout makes train mode visible: eval must be on during prediction.
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))


def _numpy_mlp(model: nn.Module, x: np.ndarray) -> np.ndarray:
    w1, b1 = model[0].weight.detach().double().numpy(), model[0].bias.detach().double().numpy()
    w2, b2 = model[3].weight.detach().double().numpy(), model[3].bias.detach().double().numpy()
    return np.maximum(x @ w1.T + b1, 0.0) @ w2.T + b2


@pytest.fixture
def data() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(23, 5)).astype(np.float32)


@pytest.mark.parametrize("batch_size", [1, 5, 23, 100])
def test_equals_numpy_full_batch(data, batch_size):
    model = _mlp()
    model.train()
    out = predict_batches(model, data, batch_size=batch_size)
    assert out.shape == (23, 3) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), _numpy_mlp(model, data.astype(np.float64)), rtol=1e-5, atol=1e-5)
    assert model.training, "train mode must be given back"
    assert not out.requires_grad and not out.is_inference()
    out[0, 0] = 1.0  # an ordinary tensor: in-place edits allowed


def test_tensor_float64_and_dataset_and_loader_and_generator(data):
    model = _mlp()
    expected = _numpy_mlp(model, data.astype(np.float64))
    from_float64 = predict_batches(model, data.astype(np.float64), 4)  # float64 -> float32
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(data), torch.zeros(23))
    from_dataset = predict_batches(model, dataset, 6)
    loader = torch.utils.data.DataLoader(dataset, batch_size=7)
    from_loader = predict_batches(model, loader, batch_size=0)  # a DataLoader keeps its own size
    from_generator = predict_batches(model, ((torch.from_numpy(data[i:i + 3]),) for i in range(0, 23, 3)))
    for out in (from_float64, from_dataset, from_loader, from_generator):
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


class _TwoInputs(nn.Module):
    """``a @ w + b`` from a tuple or dict of inputs; returns a tuple (a dict for dict inputs)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.arange(6, dtype=torch.float32).reshape(3, 2))

    def forward(self, inputs):
        if isinstance(inputs, dict):
            a, b = inputs["a"], inputs["b"]
            return {"sum": a @ self.w + b, "norm": (a * a).sum(1)}
        a, b = inputs
        return a @ self.w + b, (a * a).sum(1)


def test_multi_input_and_structured_outputs():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(11, 3)).astype(np.float32), rng.normal(size=(11, 2)).astype(np.float32)
    w = np.arange(6, dtype=np.float64).reshape(3, 2)
    model = _TwoInputs()
    first, second = predict_batches(model, (a, b), batch_size=4)
    np.testing.assert_allclose(first.numpy(), a @ w + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(second.numpy(), (a.astype(np.float64) ** 2).sum(1), rtol=1e-5)
    out = predict_batches(model, {"a": a, "b": b}, batch_size=3)
    assert set(out) == {"sum", "norm"} and out["sum"].shape == (11, 2)
    np.testing.assert_allclose(out["sum"].numpy(), a @ w + b, rtol=1e-5, atol=1e-5)


def test_collate_batches_a_sequence_of_samples_and_forward_hook():
    texts = ["a", "bbb", "cc", "dddd", "", "eeeee", "ff"]
    seen = []

    def collate(chunk):
        seen.append(len(chunk))
        return np.array([[len(t), 1.0] for t in chunk], dtype=np.float32)  # NumPy is accepted

    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[2.0, 0.0]]))
        model.bias.fill_(0.5)
    out = predict_batches(model, texts, 3, collate=collate, forward=lambda x: model(x).squeeze(1))
    np.testing.assert_allclose(out.numpy(), [2.0 * len(t) + 0.5 for t in texts])
    assert seen == [3, 3, 1]


def test_eval_mode_restored_after_an_error(data):
    model = _mlp()
    model.train()

    def failing(batch):
        assert not model.training
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        predict_batches(model, data, 4, forward=failing)
    assert model.training
    model.eval()
    predict_batches(model, data, 4)
    assert not model.training


def test_plain_callable_without_parameters(data):
    out = predict_batches(lambda x: x * 2, data, 10)
    np.testing.assert_array_equal(out.numpy(), data * 2)


def test_empty_inputs(data):
    model = _mlp()
    with pytest.raises(DataError, match="predict received no samples"):
        predict_batches(model, data[:0])
    empty = predict_batches(model, data[:0], empty=lambda: torch.empty(0, 3))
    assert empty.shape == (0, 3)
    assert predict_batches(model, [], collate=lambda c: c, empty="none") == "none"
    assert predict_batches(model, iter([]), empty=None) is None
    dataset = torch.utils.data.TensorDataset(torch.zeros(0, 5))
    assert predict_batches(model, dataset, empty=0) == 0


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "8"])
def test_bad_batch_size(data, batch_size):
    with pytest.raises(ConfigError, match=r"batch_size must be a positive integer; received batch_size="):
        predict_batches(_mlp(), data, batch_size)


def test_bad_inputs(data):
    model = _mlp()
    with pytest.raises(InputTypeError, match="predict inputs must be an array.*received 'not data'"):
        predict_batches(model, "not data")
    with pytest.raises(InputTypeError, match="numeric"):
        predict_batches(model, np.array(["a", "b"]))
    with pytest.raises(InputTypeError, match="collate="):
        predict_batches(model, 42)
    with pytest.raises(DataError, match="disagree on the number of samples"):
        predict_batches(_TwoInputs(), (data[:, :3], data[:4, :2]))
    with pytest.raises(DataError, match="NaN or Inf"):
        predict_batches(model, np.full((2, 5), np.nan, np.float32))


def test_bad_outputs(data):
    with pytest.raises(ShapeError, match="no batch axis"):
        predict_batches(lambda x: x.sum(), data, 4)
    with pytest.raises(InputTypeError, match="must be tensors"):
        predict_batches(lambda x: "label", data, 4)
    calls = iter([(torch.zeros(4, 1),), {"a": torch.zeros(4, 1)}])
    with pytest.raises(ShapeError, match="changes structure between batches|differ"):
        predict_batches(lambda x: next(calls), data[:8], 4)


def test_recipes_predict_logits_uses_it(data):
    from bigmodel.recipes.inference import predict_logits

    model = _mlp().double()  # float64 model: logits come back float32
    model.num_classes = 3
    trimmed = []

    def prepare(batch):  # e.g. trims padding: here drops nothing, records the width it saw
        trimmed.append(tuple(batch.shape))
        return batch.double()

    logits = predict_logits(model, data, batch_size=10, prepare=prepare)
    assert logits.dtype == torch.float32 and trimmed == [(10, 5), (10, 5), (3, 5)]
    np.testing.assert_allclose(logits.numpy(), _numpy_mlp(model, data.astype(np.float64)), rtol=1e-5, atol=1e-5)
    assert predict_logits(model, data[:0]).shape == (0, 3)


def test_compress_report_accuracy_uses_it(data):
    from bigmodel.compress.report import accuracy

    model = _mlp()
    labels = np.random.default_rng(3).integers(0, 3, size=23)
    expected = float((_numpy_mlp(model, data.astype(np.float64)).argmax(1) == labels).mean())
    assert accuracy(model, data, labels, batch_size=4) == pytest.approx(expected)
    model.eval()  # a plain callable is run as it is
    assert accuracy(lambda x: model(x), data, torch.from_numpy(labels), batch_size=50) == pytest.approx(expected)
    assert accuracy(model, data[:0], labels[:0]) == 0.0
    with pytest.raises(DataError, match="x has 23 samples but y has 5"):
        accuracy(model, data, labels[:5])


def test_trainer_predict_keeps_precision_and_memory_format_through_it():
    from bigmodel.engine.trainer import Trainer

    class Probe(nn.Module):
        """Records what each batch looked like; returns a dict of outputs."""

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 1)
            self.seen: list[tuple] = []

        def forward(self, x):
            self.seen.append((x.is_contiguous(memory_format=torch.channels_last), self.training))
            out = self.conv(x)
            return {"mean": out.mean(dim=(2, 3)), "dtype_probe": out.flatten(1)[:, :1]}

    torch.manual_seed(0)
    x = torch.rand(9, 2, 4, 4)
    model = Probe()
    model.train()
    trainer = Trainer(model, loss=nn.MSELoss(), device="cpu", precision="bf16", channels_last=True,
                      verbose=0)
    out = trainer.predict(x, batch_size=4)
    assert set(out) == {"mean", "dtype_probe"} and out["mean"].shape == (9, 3)
    assert out["mean"].dtype == torch.float32  # bf16 autocast outputs come back as float32
    reference = model.conv(x).mean(dim=(2, 3)).detach()
    np.testing.assert_allclose(out["mean"].numpy(), reference.numpy(), atol=3e-2)  # bf16 rounding
    assert model.seen == [(True, False)] * 3 and model.training
