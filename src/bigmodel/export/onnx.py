"""ONNX export with a dynamic batch axis, checked against PyTorch under ONNX Runtime.

The model goes through ``torch.export`` (the dynamo-based ONNX exporter), which refuses Python
control flow that depends on tensor values instead of silently freezing one branch the way tracing
does; such a model raises :class:`ExportError` saying so. A symbolic sequence axis is captured at
a short example (:data:`TRACE_STEPS`; capture time grows with the steps) and checked at the
example's own length, else captured again at that length with the axis fixed. After export the file is run with ONNX
Runtime at two batch sizes (and a shorter sequence when that axis is symbolic) and compared with the PyTorch outputs (max abs difference, default bound
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bigmodel.errors import BigModelError, CheckpointError, ConfigError, ShapeError
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
    dynamic_axes: list[list[int]] = field(default_factory=list)


def _as_tuple(example: Any) -> tuple:
    if torch.is_tensor(example):
        return (example,)
    if isinstance(example, (tuple, list)) and example and all(torch.is_tensor(e) for e in example):
        return tuple(example)
    raise ShapeError(f"export: 'example_input' must be a tensor or a tuple of tensors with a batch "
                     f"dimension; received {type(example).__name__}")


def _with_batch(args: tuple, batch: int) -> tuple:
    return tuple(a[:1].repeat(batch, *([1] * (a.ndim - 1))) for a in args)


def _shortened(args: tuple, dynamic: list[list[int]]) -> tuple | None:
    """``args`` with every input whose axis 1 is symbolic cut to about half its length (None when
    no input has a symbolic axis 1 longer than one step)."""
    if not any(1 in axes and arg.shape[1] > 1 for arg, axes in zip(args, dynamic)):
        return None
    return tuple(arg[:, : max(1, arg.shape[1] // 2)] if 1 in axes else arg
                 for arg, axes in zip(args, dynamic))


def _runs_eagerly(model: nn.Module, args: tuple) -> bool:
    try:
        with torch.no_grad():
            model(*args)
    except Exception:  # any refusal means the model does not take these inputs
        return False
    return True


def _accepts_shorter(model: nn.Module, args: tuple) -> bool:
    """Whether the eager model runs on its example cut to half the length along axis 1 (rank-2/3
    inputs): only then may that axis stay symbolic in the graph."""
    trial = _shortened(args, [[1] if arg.ndim in (2, 3) else [] for arg in args])
    return trial is not None and _runs_eagerly(model, trial)


#: Steps of the example the graph is captured at when its sequence axis stays symbolic. Capture
#: time grows with the steps: torch.export infers the shapes of a fused LSTM / GRU by running its
#: step-by-step decomposition on fake tensors (a 9-step bidirectional LSTM took ~0.5 s a step of
#: 12 s on a busy CPU). Not 2: the traced batch is 2, and equal sizes would share one symbol.
TRACE_STEPS = 3


def _trace_example(model: nn.Module, args: tuple) -> tuple:
    """``args`` cut along axis 1, for the capture with a symbolic sequence axis, to the first of
    :data:`TRACE_STEPS`, a quarter and half its length that the eager model takes (a waveform
    model's STFT needs more than 3 samples); else ``args``. Only for a single rank-2/3 input:
    inputs of different lengths (a seq2seq source and target) cut to one length would be
    captured as one symbol."""
    if len(args) != 1 or args[0].ndim not in (2, 3):
        return args
    steps = args[0].shape[1]
    for length in (TRACE_STEPS, steps // 4, steps // 2):
        short = (args[0][:, :length],)
        if TRACE_STEPS <= length < steps and _runs_eagerly(model, short):
            return short
    return args


def _runs_at_other_lengths(model: nn.Module, program, args: tuple, dynamic: list[list[int]],
                           atol: float, traced: tuple) -> bool:
    """Whether the exported graph really runs (and matches PyTorch) at a shorter sequence, and at
    the example's own length when it was captured at a shorter one (``traced``)."""
    trials = [_shortened(_with_batch(args, 2), dynamic)]
    if traced[0].shape != args[0].shape:
        trials.append(_with_batch(args, 2))
    trials = [trial for trial in trials if trial is not None]
    if not trials:
        return True
    try:
        session = onnx_session(program.model_proto.SerializeToString())
        return all(parity(model, session, trial) <= atol for trial in trials)
    except Exception:  # ONNX Runtime refuses the other length (a fixed-length lowering)
        return False


def _symbolic_axes(graph) -> list[list[int]]:
    """Per graph input, the axes that have a symbolic size."""
    return [[i for i, dim in enumerate(value.type.tensor_type.shape.dim)
             if dim.dim_param and not dim.HasField("dim_value")] for value in graph.input]


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


def _dynamic_shapes(args: tuple, dynamic_batch: bool, dynamic_sequence: bool):
    """Axis 0 of every input is ``batch`` (export fails if the model fixes it); with
    ``dynamic_sequence``, axis 1 of every rank-2/3 input stays symbolic where the model allows it
    and is fixed to the example's size where it does not (``Dim.AUTO``)."""
    if not (dynamic_batch or dynamic_sequence):
        return None
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    shapes = []
    for arg in args:
        axes = {0: batch} if dynamic_batch else {}
        if dynamic_sequence and arg.ndim in (2, 3):
            axes[1] = torch.export.Dim.AUTO
        shapes.append(axes)
    return tuple(shapes)


def expand_attention_masks(model) -> int:
    """Give every ONNX ``Attention`` op's mask its full query length, in place; returns how many.

    PyTorch exports a padding (key) mask as ``(batch, 1, 1, key_len)``, which broadcasts over the
    queries as the ONNX spec allows, but ONNX Runtime's CPU kernel (1.32) requires the mask's
    axis -2 to equal the query length ("inconsistent q_sequence_length (between attn_mask and
    Q)"). An ``Expand`` to ``(..., query_len, key_len)`` in front of the op keeps the same values.

    Args:
        model: the exporter's ``onnx_ir`` model (``ONNXProgram.model``).
    """
    import onnx_ir as ir

    count = 0
    for node in list(model.graph):
        if node.op_type != "Attention" or node.domain not in ("", "ai.onnx") or \
                len(node.inputs) < 4 or node.inputs[3] is None:
            continue
        mask = node.inputs[3]
        if mask.shape is None or len(mask.shape) < 2:
            continue  # rank unknown: leave the op as exported
        rank = len(mask.shape)
        query_len = ir.node("Shape", [node.inputs[0]], attributes={"start": -2, "end": -1})
        before = ir.node("Constant", [], attributes={
            "value": ir.tensor(np.ones(rank - 2, dtype=np.int64))})
        after = ir.node("Constant", [], attributes={"value": ir.tensor(np.ones(1, dtype=np.int64))})
        shape = ir.node("Concat", [before.outputs[0], query_len.outputs[0], after.outputs[0]],
                        attributes={"axis": 0})
        expand = ir.node("Expand", [mask, shape.outputs[0]])
        model.graph.insert_before(node, [query_len, before, after, shape, expand])
        node.replace_input_with(3, expand.outputs[0])
        count += 1
    return count


_REGISTRIES: dict[int, Any] = {}


@contextlib.contextmanager
def _reused_torchlib_registry():
    """Build the exporter's table of ATen -> ONNX functions once per opset and process.

    ``torch.onnx.export`` rebuilds it from torchlib on every call (~17% of a small model's export
    time, measured on torch 2.13), then only reads it. Each export gets its own copy of the
    table (the exporter adds a caller's ``custom_translation_table`` to it). Where torch no longer
    has this internal hook, exports simply build the table as before.
    """
    try:
        from torch.onnx._internal.exporter import _registration

        original = _registration.ONNXRegistry.__dict__["from_torchlib"]
        build = original.__func__
    except (ImportError, AttributeError, KeyError):
        yield
        return

    def from_torchlib(cls, opset_version=None, **options):
        if options or cls is not _registration.ONNXRegistry:
            return build(cls, **options) if opset_version is None else \
                build(cls, opset_version=opset_version, **options)
        key = -1 if opset_version is None else int(opset_version)
        if key not in _REGISTRIES:
            _REGISTRIES[key] = build(cls) if opset_version is None else \
                build(cls, opset_version=opset_version)
        cached = _REGISTRIES[key]
        registry = cls()
        registry.__dict__.update(cached.__dict__)
        registry.functions = {name: list(metas) for name, metas in cached.functions.items()}
        return registry

    _registration.ONNXRegistry.from_torchlib = classmethod(from_torchlib)
    try:
        yield
    finally:
        _registration.ONNXRegistry.from_torchlib = original


def _export_program(model: nn.Module, args: tuple, input_names, output_names, opset: int,
                    dynamic_batch: bool, dynamic_sequence: bool = False):
    dynamic_shapes = _dynamic_shapes(args, dynamic_batch, dynamic_sequence)
    try:
        with quiet_exporter(), _reused_torchlib_registry():
            program = torch.onnx.export(model, args, dynamo=True, input_names=input_names,
                                        output_names=output_names, opset_version=opset,
                                        dynamic_shapes=dynamic_shapes, optimize=True,
                                        verbose=False, report=False)
        expand_attention_masks(program.model)
        return program
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


# ONNX Runtime graph fusions left off in every session this project opens. SkipLayerNormFusion
# turns Add + LayerNormalization into com.microsoft SkipLayerNormalization, whose CPU kernel in
# onnxruntime 1.32 ran 4.4-4.7x slower than the two ops it replaces on (256, 50, d) activations,
# d = 64 / 128 / 256 (one thread; measured 2026-11-29); in the seed ViT it was 7% of the int8
# batch-256 time for one fused pair.
DISABLED_FUSIONS = ("SkipLayerNormFusion",)


def onnx_session(model: str | os.PathLike | bytes, threads: int | None = None):
    """An ONNX Runtime CPU session for a file path or serialized model bytes.

    Raises:
        ConfigError: onnxruntime is not installed.
        CheckpointError: ONNX Runtime refuses the file (corrupt, truncated, invalid graph).
        ExportError: ONNX Runtime refuses serialized model bytes (a graph built in this process).
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
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=list(DISABLED_FUSIONS))
    except Exception as err:  # ORT's own exception classes (Fail, InvalidGraph, ...) derive from Exception
        reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        if isinstance(model, bytes):
            raise ExportError(f"ONNX Runtime cannot load the exported graph ({reason})") from err
        raise CheckpointError(f"ONNX Runtime cannot load '{model}': the file is corrupt, truncated "
                              f"or not a valid ONNX graph ({reason})") from err


def run_session(session, *inputs) -> list[np.ndarray]:
    """Run an ORT session on tensors / arrays given in the graph's input order."""
    feeds = {}
    for meta, value in zip(session.get_inputs(), inputs):
        array = value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
        feeds[meta.name] = array
    try:
        return session.run(None, feeds)
    except Exception as err:  # ORT's InvalidArgument / Fail: inputs the graph cannot take
        shapes = {name: tuple(array.shape) for name, array in feeds.items()}
        expected = {meta.name: meta.shape for meta in session.get_inputs()}
        raise ShapeError(f"ONNX Runtime cannot run the graph on inputs {shapes} (the graph expects "
                         f"{expected}): {type(err).__name__}: "
                         f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}") from err


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
                output_names: list[str] | None = None,
                dynamic_sequence: bool = True) -> OnnxExportResult:
    """Export ``model`` (in eval mode) to an ONNX file, then check it against PyTorch.

    Args:
        model: any ``nn.Module`` whose forward has no value-dependent Python control flow.
        path: the ``.onnx`` file to write (atomically).
        example_input: one valid input (tensor or tuple of tensors), batch first.
        dynamic_batch: make axis 0 of every input a symbolic ``batch`` dimension.
        dynamic_sequence: keep axis 1 of rank-2/3 inputs (tokens, time steps) symbolic where the
            model allows variable lengths; fixed to the example's size where it does not (e.g.
            image rows). ``OnnxExportResult.dynamic_axes`` says which axes stayed symbolic.
        opset: ONNX opset version.
        check: run ONNX Runtime at batch sizes 1 and 3 (and at half the sequence length when
            that axis is symbolic) and compare with PyTorch.
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
        if dynamic_sequence and not _accepts_shorter(model, args):
            dynamic_sequence = False  # e.g. image rows: the model itself fixes that axis
        traced = _trace_example(model, args) if dynamic_sequence else args
        program = _export_program(model, _with_batch(traced, 2), input_names, output_names,
                                  opset, dynamic_batch, dynamic_sequence)
        dynamic = _symbolic_axes(program.model_proto.graph)
        symbolic = any(1 in axes for axes in dynamic)
        if (symbolic and not _runs_at_other_lengths(model, program, args, dynamic, atol, traced)) \
                or (not symbolic and traced is not args):
            # Some ops' ONNX lowering fixes the number of steps (e.g. a tanh RNN unrolled), or
            # the exporter fixed the axis at the shorter capture: export again with the sequence
            # axis fixed to the example's length.
            program = _export_program(model, _with_batch(args, 2), input_names, output_names,
                                      opset, dynamic_batch, False)
            dynamic = _symbolic_axes(program.model_proto.graph)
        path = Path(path)
        with atomic_path(path) as tmp:
            with quiet_exporter():
                program.save(str(tmp))
            diff = float("nan")
            if check:
                session = onnx_session(tmp)
                sizes = (1, 3) if dynamic_batch else (int(args[0].shape[0]),)
                batches = [_with_batch(args, b) for b in sizes]
                short = _shortened(batches[-1], dynamic)
                diff = max(parity(model, session, b) for b in batches + ([short] if short else []))
                if not diff <= atol:
                    raise ExportError(f"ONNX Runtime outputs of {path.name} differ from PyTorch by "
                                      f"{diff:.3g} (max abs); expected at most {atol:g}")
        graph = program.model_proto.graph
        return OnnxExportResult(path, diff, [i.name for i in graph.input],
                                [o.name for o in graph.output], opset, dynamic)
    finally:
        model.train(was_training)
