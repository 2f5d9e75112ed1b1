"""How ONNX export captures a model (speed without changing the graph): a symbolic sequence axis is
captured at a short example and checked at the example's own length, falling back to a graph
fixed at that length when the short capture does not generalize; the exporter's ATen -> ONNX
table is built once per process and each export gets its own copy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import bigmodel.export.onnx as onnx_export  # noqa: E402
from bigmodel.export import export_onnx, onnx_session  # noqa: E402

ATOL = 1e-4


class Recorder:
    """Wraps torch.onnx.export, recording the sequence length of each captured example."""

    def __init__(self, monkeypatch):
        self.lengths: list[int] = []
        original = torch.onnx.export

        def export(model, args, *rest, **options):
            self.lengths.append(int(args[0].shape[1]))
            return original(model, args, *rest, **options)

        monkeypatch.setattr(torch.onnx, "export", export)


def ort_run(path, *inputs: torch.Tensor) -> list[np.ndarray]:
    """The first output of the graph at ``path`` for each input (one session for all)."""
    session = onnx_session(path)
    name = session.get_inputs()[0].name
    return [session.run(None, {name: x.numpy()})[0] for x in inputs]


def eager(model, x):
    with torch.no_grad():
        return model(x).numpy()


class GRUTagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(4, 6, batch_first=True, bidirectional=True)
        self.head = nn.Linear(12, 3)

    def forward(self, x):  # (B, T, 4) -> (B, T, 3)
        return self.head(self.rnn(x)[0])


class LongerThanFour(nn.Module):
    """A Python branch on the length: captured at a short example it takes the other side."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 2)

    def forward(self, x):  # (B, T, 4) -> (B, 2)
        y = self.proj(x)
        return y.sum(1) if x.shape[1] > 4 else -y.sum(1)


def test_a_symbolic_sequence_is_captured_short_and_runs_at_any_length(tmp_path, monkeypatch):
    torch.manual_seed(0)
    recorder = Recorder(monkeypatch)
    model = GRUTagger().eval()
    result = export_onnx(model, tmp_path / "gru.onnx", torch.randn(1, 12, 4))
    assert recorder.lengths == [onnx_export.TRACE_STEPS] and onnx_export.TRACE_STEPS == 3
    assert result.dynamic_axes == [[0, 1]] and result.max_abs_diff <= ATOL
    inputs = [torch.randn(2, steps, 4) for steps in (1, 5, 12, 31)]
    for x, got in zip(inputs, ort_run(result.path, *inputs)):
        np.testing.assert_allclose(got, eager(model, x), atol=ATOL, rtol=0)


def test_a_short_capture_that_does_not_hold_at_the_example_length_is_redone_there(
        tmp_path, monkeypatch):
    torch.manual_seed(0)
    recorder = Recorder(monkeypatch)
    model = LongerThanFour().eval()
    x = torch.randn(1, 9, 4)
    result = export_onnx(model, tmp_path / "branch.onnx", x)
    # Captured at 3 steps (the other branch), then again at the example's 9 with the axis fixed.
    assert recorder.lengths == [3, 9]
    assert result.dynamic_axes == [[0]] and result.max_abs_diff <= ATOL
    batch = torch.randn(5, 9, 4)
    np.testing.assert_allclose(ort_run(result.path, batch)[0], eager(model, batch), atol=ATOL,
                               rtol=0)


def test_examples_already_short_or_with_several_inputs_are_captured_as_given(tmp_path,
                                                                            monkeypatch):
    recorder = Recorder(monkeypatch)
    model = GRUTagger().eval()
    export_onnx(model, tmp_path / "short.onnx", torch.randn(1, 3, 4))
    assert recorder.lengths == [3]
    args = (torch.randn(1, 8, 4), torch.randn(1, 5, 4))
    assert onnx_export._trace_example(model, args) is args  # a seq2seq source and target
    images = (torch.randn(1, 1, 28, 28),)
    assert onnx_export._trace_example(model, images) is images  # rank 4: no sequence axis

    class NeedsFive(nn.Module):
        def forward(self, x):
            if x.shape[1] < 5:
                raise ValueError("at least 5 steps")
            return x.mean(1)

    long = (torch.randn(1, 8, 4),)
    assert onnx_export._trace_example(NeedsFive(), long) is long  # refuses 3 and 4 (half of 8)
    longer = (torch.randn(1, 24, 4),)
    traced = onnx_export._trace_example(NeedsFive(), longer)  # a quarter: 6 steps
    assert traced[0].shape == (1, 6, 4) and torch.equal(traced[0], longer[0][:, :6])


def test_the_torchlib_table_is_built_once_and_each_export_gets_a_copy(tmp_path, monkeypatch):
    from torch.onnx._internal.exporter import _registration

    original = _registration.ONNXRegistry.__dict__["from_torchlib"]
    builds = []

    def counting(cls, *args, **options):
        builds.append(options.get("opset_version", args[0] if args else None))
        return original.__func__(cls, *args, **options)

    monkeypatch.setattr(_registration.ONNXRegistry, "from_torchlib", classmethod(counting))
    monkeypatch.setattr(onnx_export, "_REGISTRIES", {})
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU()).eval()
    for name in ("a.onnx", "b.onnx"):
        assert export_onnx(model, tmp_path / name, torch.randn(1, 4)).max_abs_diff <= ATOL
    assert builds == [onnx_export.DEFAULT_OPSET]  # once, for both exports
    # Restored after each export; a copy per export, so one export's additions stay its own.
    assert _registration.ONNXRegistry.__dict__["from_torchlib"].__func__ is counting
    with onnx_export._reused_torchlib_registry():
        first = _registration.ONNXRegistry.from_torchlib(opset_version=onnx_export.DEFAULT_OPSET)
        first.functions.clear()
        second = _registration.ONNXRegistry.from_torchlib(opset_version=onnx_export.DEFAULT_OPSET)
    assert second.functions and second.opset_version == onnx_export.DEFAULT_OPSET
    assert len(builds) == 1
