"""ONNX export with a dynamic batch axis, checked against PyTorch under ONNX Runtime.

The model goes through ``torch.export`` (the dynamo-based ONNX exporter), which refuses Python
control flow that depends on tensor values instead of silently freezing one branch the way tracing
does; such a model raises :class:`ExportError` saying so. After export the file is run with ONNX
Runtime at two batch sizes and compared with the PyTorch outputs (max abs difference, default bound
1e-4 for fp32).

>>> result = export_onnx(model, "model.onnx", example_input=torch.rand(1, 1, 28, 28))
>>> result.max_abs_diff
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bigmodel.errors import BigModelError, ConfigError, ShapeError
from bigmodel.utils.io import atomic_path

DEFAULT_OPSET = 18


class ExportError(BigModelError, ValueError):
    """A model cannot be exported faithfully (data-dependent control flow, unsupported op, or
    outputs that do not match PyTorch)."""


@dataclass
class OnnxExportResult:
    path: Path
    max_abs_diff: float
    input_names: list[str]
    output_names: list[str]
    opset: int


def _as_tuple(example: Any) -> tuple:
    if torch.is_tensor(example):
        return (example,)
    if isinstance(example, (tuple, list)) and example and all(torch.is_tensor(e) for e in example):
        return tuple(example)
    raise ShapeError(f"export: 'example_input' must be a tensor or a tuple of tensors with a batch "
                     f"dimension; received {type(example).__name__}")


def _with_batch(args: tuple, batch: int) -> tuple:
    return tuple(a[:1].repeat(batch, *([1] * (a.ndim - 1))) for a in args)


@contextlib.contextmanager
def quiet_exporter():
    """Silence the exporter's progress prints, warnings and logger chatter."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo",
                                              "torch.fx.experimental.symbolic_shapes", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _export_program(model: nn.Module, args: tuple, input_names, output_names, opset: int,
                    dynamic_batch: bool):
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=1 << 16)
        dynamic_shapes = tuple({0: batch} for _ in args)
    try:
        with quiet_exporter():
            return torch.onnx.export(model, args, dynamo=True, input_names=input_names,
                                     output_names=output_names, opset_version=opset,
                                     dynamic_shapes=dynamic_shapes, optimize=True, verbose=False,
                                     report=False)
    except Exception as exc:  # the exporter raises many types; name the cause for the user
        cause = exc.__cause__ or exc
        text = re.sub(r"\x1b\[[0-9;]*m", "", f"{type(cause).__name__}: {cause} {exc}")
        if any(key in text for key in ("data-dependent", "DataDependent", "GuardOnDataDependent",
                                       "Could not guard on data-dependent", "unbacked")):
            raise ExportError(
                f"Cannot export {type(model).__name__} to ONNX: its forward has control flow that "
                "depends on tensor values (e.g. `if x.sum() > 0:`), which a static graph cannot "
                "hold. Rewrite it with torch.where / torch.cond, or move the decision out of "
                f"forward. Exporter said: {_first_line(text)}") from None
        raise ExportError(f"Cannot export {type(model).__name__} to ONNX: "
                          f"{_first_line(text)}") from None


def _first_line(text: str, limit: int = 400) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    head = " ".join(lines[:3]) if lines else text
    return head if len(head) <= limit else head[: limit - 3] + "..."


def onnx_session(model: str | os.PathLike | bytes, threads: int | None = None):
    """An ONNX Runtime CPU session for a file path or serialized model bytes.

    Raises:
        ConfigError: onnxruntime is not installed.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("ONNX Runtime is needed for this step: pip install onnxruntime") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run_session(session, *inputs) -> list[np.ndarray]:
    """Run an ORT session on tensors / arrays given in the graph's input order."""
    feeds = {}
    for meta, value in zip(session.get_inputs(), inputs):
        array = value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
        feeds[meta.name] = array
    return session.run(None, feeds)


def _torch_outputs(model: nn.Module, args: tuple) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(*args)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o.detach().float().cpu().numpy() for o in outs if torch.is_tensor(o)]


def parity(model: nn.Module, session, args: tuple) -> float:
    """Max abs difference between PyTorch and ONNX Runtime outputs on ``args``."""
    expected = _torch_outputs(model, args)
    got = run_session(session, *args)
    if len(expected) != len(got):
        raise ExportError(f"ONNX graph has {len(got)} outputs; PyTorch returned {len(expected)}")
    diff = 0.0
    for e, g in zip(expected, got):
        if e.shape != g.shape:
            raise ExportError(f"ONNX output shape {g.shape} differs from PyTorch's {e.shape}")
        if e.size:
            diff = max(diff, float(np.max(np.abs(e.astype(np.float64) - g.astype(np.float64)))))
    return diff


def export_onnx(model: nn.Module, path: str | os.PathLike, example_input: Any,
                dynamic_batch: bool = True, opset: int = DEFAULT_OPSET, check: bool = True,
                atol: float = 1e-4, input_names: list[str] | None = None,
                output_names: list[str] | None = None) -> OnnxExportResult:
    """Export ``model`` (in eval mode) to an ONNX file, then check it against PyTorch.

    Args:
        model: any ``nn.Module`` whose forward has no value-dependent Python control flow.
        path: the ``.onnx`` file to write (atomically).
        example_input: one valid input (tensor or tuple of tensors), batch first.
        dynamic_batch: make axis 0 of every input a symbolic ``batch`` dimension.
        opset: ONNX opset version.
        check: run ONNX Runtime at batch sizes 1 and 3 and compare with PyTorch.
        atol: largest accepted max abs difference.

    Returns:
        An :class:`OnnxExportResult` (``max_abs_diff`` is NaN when ``check`` is False).

    Raises:
        ExportError: the model cannot be exported (the message says why) or its outputs differ.
        ShapeError: ``example_input`` is not a tensor / tuple of tensors.
    """
    args = _as_tuple(example_input)
    was_training = model.training
    model.eval()
    try:
        input_names = input_names or (["input"] if len(args) == 1 else
                                       [f"input_{i}" for i in range(len(args))])
        # A batch of 2 keeps torch.export from specializing the batch axis to the constant 1.
        program = _export_program(model, _with_batch(args, 2), input_names, output_names, opset,
                                  dynamic_batch)
        path = Path(path)
        with atomic_path(path) as tmp:
            with quiet_exporter():
                program.save(str(tmp))
            diff = float("nan")
            if check:
                session = onnx_session(tmp)
                sizes = (1, 3) if dynamic_batch else (int(args[0].shape[0]),)
                diff = max(parity(model, session, _with_batch(args, b)) for b in sizes)
                if not diff <= atol:
                    raise ExportError(f"ONNX Runtime outputs of {path.name} differ from PyTorch by "
                                      f"{diff:.3g} (max abs); expected at most {atol:g}")
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
        return OnnxExportResult(path, diff, [i.name for i in graph.input],
                                [o.name for o in graph.output], opset)
    finally:
        model.train(was_training)
