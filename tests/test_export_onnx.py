"""ONNX export: outputs match PyTorch under ONNX Runtime (<= 1e-4) with a dynamic batch axis for a
plain CNN, an LSTM stack and a Keras-surface model; data-dependent control flow is refused; the
``bigmodel export`` command."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from bigmodel.cli.main import main  # noqa: E402
from bigmodel.export import ExportError, export_onnx, onnx_session  # noqa: E402
from bigmodel.models import create_model, save_model  # noqa: E402


def ort_outputs(path, x: torch.Tensor) -> np.ndarray:
    session = onnx_session(path)
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def test_seed_cnn_parity_at_several_batch_sizes(tmp_path):
    torch.manual_seed(0)
    model = create_model("seed-cnn")
    result = export_onnx(model, tmp_path / "cnn.onnx", torch.rand(1, 1, 28, 28))
    assert result.max_abs_diff <= 1e-4
    for batch in (1, 7, 33):
        x = torch.rand(batch, 1, 28, 28)
        with torch.no_grad():
            expected = model(x).numpy()
        np.testing.assert_allclose(ort_outputs(result.path, x), expected, atol=1e-4, rtol=0)
    import onnx

    graph = onnx.load(str(result.path)).graph
    batch_dim = graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.HasField("dim_value")  # symbolic batch axis


class LSTMStack(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(6, 16, num_layers=2, batch_first=True)
        self.fc1 = nn.Linear(16, 16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc2(torch.relu(self.fc1(out[:, -1])))


def test_lstm_stack_parity(tmp_path):
    torch.manual_seed(0)
    model = LSTMStack()
    result = export_onnx(model, tmp_path / "lstm.onnx", torch.randn(1, 9, 6))
    x = torch.randn(5, 9, 6)
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(ort_outputs(result.path, x), expected, atol=1e-4, rtol=0)
    assert model.training  # the caller's mode is restored


def test_keras_surface_model_parity(tmp_path):
    from bigmodel import keras
    from bigmodel.keras import layers

    torch.manual_seed(0)
    model = keras.Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(10, 10, 1)),
                              layers.MaxPooling2D(2), layers.Flatten(),
                              layers.Dense(8, activation="relu"), layers.Dense(3)])
    x = torch.rand(4, 10, 10, 1)
    with torch.no_grad():
        expected = model(x).numpy()
    result = export_onnx(model, tmp_path / "keras.onnx", x[:1])
    assert result.max_abs_diff <= 1e-4
    np.testing.assert_allclose(ort_outputs(result.path, x), expected, atol=1e-4, rtol=0)


class ValueBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:  # depends on the data: a static graph would freeze one branch
            return self.linear(x)
        return -self.linear(x)


def test_data_dependent_control_flow_is_refused_and_leaves_no_file(tmp_path):
    with pytest.raises(ExportError, match="control flow that depends on tensor values"):
        export_onnx(ValueBranch(), tmp_path / "branch.onnx", torch.rand(1, 4))
    assert list(tmp_path.iterdir()) == []


def test_bad_example_input_is_rejected(tmp_path):
    from bigmodel.errors import ShapeError

    with pytest.raises(ShapeError, match="example_input"):
        export_onnx(nn.Linear(4, 2), tmp_path / "x.onnx", [[1.0, 2.0]])


def run_cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_export_command_onnx_and_safetensors(tmp_path):
    torch.manual_seed(0)
    model = create_model("seed-cnn").eval()
    run_dir = tmp_path / "run"
    save_model(model, run_dir, metadata={"input": {"channels": 1, "height": 28, "width": 28}})
    code, out, err = run_cli("export", str(run_dir), "--format", "onnx")
    assert code == 0, err
    assert "max abs difference" in out and (run_dir / "model.onnx").is_file()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(ort_outputs(run_dir / "model.onnx", x), expected, atol=1e-4, rtol=0)

    code, out, err = run_cli("export", str(run_dir), "--format", "safetensors", "--out",
                             str(tmp_path / "copy"))
    assert code == 0, err
    from bigmodel.compress import load_any

    with torch.no_grad():
        np.testing.assert_array_equal(load_any(tmp_path / "copy")(x).numpy(), expected)

    code, out, err = run_cli("export", str(tmp_path / "nowhere"))
    assert code == 2 and "not found" in err
