"""Post-training int8 quantization for CPU inference, run by ONNX Runtime.

Why ONNX Runtime: measured on this project's 2-core CPU (``benchmarks/int8_paths.py``,
``docs/compress.md``), PyTorch's own dynamic int8 gave 1.03-2.4x (MLP) and 1.1-1.4x (LSTM), its FX
static int8 CNN was *slower* than fp32 at batch 1 (0.80x), torchao's eager int8 was slower than
fp32, while this module's ONNX Runtime int8 was 1.7-9x faster than the PyTorch fp32 model for the
CNN, MLP and LSTM. So:

* models with convolutions: **static** int8 (QDQ format, per-channel symmetric int8 weights, uint8
  activations whose ranges come from calibration batches);
* models made of Linear / LSTM layers (MLPs, RNNs, Transformers): **dynamic** int8 (int8 weights,
  activations quantized per batch at run time; no calibration needed).

The quantized model is an ONNX graph; :class:`Int8Model` runs it and saves it as ``model.json``
(the graph, without weights, as JSON) + ``model.safetensors`` (every initializer, int8 stays int8):
no pickle and no protobuf file on disk. Float weights that no int8 kernel takes (a ViT's patch
convolution and position table, layers in ``keep_fp32``) are stored as int8 too, dequantized in the
graph (``weight_storage="int8"``, see :mod:`bigmodel.compress.int8_graph`).

>>> int8 = quantize_int8(model, example_input=x[:1], calibration=x[:512])
>>> logits = int8(x_test)          # torch.Tensor
>>> int8.save("runs/cnn-int8")     # load_int8("runs/cnn-int8")
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bigmodel.compress.attention_fusion import fuse_self_attention
from bigmodel.compress.int8_graph import (
    decode_attribute,
    encode_attribute,
    fp16_exact,
    optimize_offline,
    refuse_external_data,
    round_vectors_fp16,
    store_weights_int8,
)
from bigmodel.compress.int8_plan import (
    check_int8,
    convolutions,
    fixed_transforms,
    has_attention,
    kept_ops_of,
)
from bigmodel.engine.inference import predict_batches
from bigmodel.errors import CheckpointError, ConfigError
from bigmodel.export.onnx import (
    ExportError,
    export_onnx,
    onnx_session,
    quiet_exporter,
    run_session,
)
from bigmodel.models.model_files import (
    FileFormat,
    read_model_document,
    read_safetensors,
    weights_file,
    write_model_files,
)

INT8_FORMAT = "bigmodel-onnx-int8"
#: The graph (JSON, without initializers) in ``model.json``, the initializers in ``model.safetensors``;
#: version 2 encodes node attributes as compact lists (version 1, protobuf JSON dicts, still loads).
INT8_FILE = FileFormat(INT8_FORMAT, 2, "an int8 model file", what="Int8 model file",
                       weights_what="Int8 model weights", noun="int8 model", compact_json=True,
                       max_bytes=64 * 1024 * 1024)
STORAGES = ("int8", "fp32")

# ONNX ops whose weight operand carries the model's compute: a float weight left feeding one of these
# after quantization is a layer the int8 path could not handle.
HEAVY_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose", "LSTM", "GRU", "RNN", "Einsum", "Attention")
ATTENTION_OPSET = 23  # the first opset with an Attention op


def _initializer_owners(proto) -> dict[str, tuple[str, str]]:
    """``{initializer: (module path, class name)}`` from the exporter's node metadata."""
    owners: dict[str, tuple[str, str]] = {}
    inits = {i.name for i in proto.graph.initializer}
    for node in proto.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        try:
            scopes = ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]"))
            classes = ast.literal_eval(meta.get("pkg.torch.onnx.class_hierarchy", "[]"))
        except (ValueError, SyntaxError):
            continue
        if len(scopes) < 2 or len(classes) < 2:
            continue
        parts = [part for part in scopes[1:-1] if part]
        # Newer exporters give each scope fully qualified ("encoder", "encoder.layers.0", ...),
        # older ones give local names ("encoder", "layers", "0"): the path is the last or the join.
        nested = all(b.startswith(a + ".") for a, b in zip(parts, parts[1:]))
        path = parts[-1] if parts and nested and len(parts) > 1 else ".".join(parts)
        owner = (path, classes[-2].rsplit(".", 1)[-1])
        for name in node.input:
            if name in inits:
                owners.setdefault(name, owner)
    return owners


def _weight_report(proto, owners: dict[str, tuple[str, str]], keep_fp32: Sequence[str],
                   kept_ops: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """Layers whose weights ended up int8, stayed fp32 on purpose, or stayed fp32 unsupported.

    Works on the quantized graph, so it needs no list of layer types: whatever ONNX Runtime could
    not quantize (a GRU, a custom op) shows up as a float weight feeding a heavy op.
    ``kept_ops`` maps an ONNX op type (``"GRU"``) to the ``keep_fp32`` layers that make it: a
    recurrent op's weights are often re-packed at the model's own scope, where no layer name
    reaches them.
    """
    kept_ops = kept_ops or {}
    from onnx import TensorProto

    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}
    consumers: dict[str, set[str]] = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    report: dict[str, list[str]] = {"quantized": [], "fp32": [], "unsupported": []}

    def add(kind: str, text: str) -> None:
        if text not in report[kind]:
            report[kind].append(text)

    for init in proto.graph.initializer:
        heavy = consumers.get(init.name, set()) & set(HEAVY_OPS)
        base = init.name
        for suffix in ("_quantized", "_Transposed", "_transposed"):
            base = base.removesuffix(suffix)
        owner = owners.get(base)
        label = (f"{owner[0] or '<model>'} ({owner[1]})" if owner
                 else f"weight '{init.name}' {tuple(init.dims)}")
        if init.data_type not in floats:
            if init.name != base and len(init.dims) >= 1:
                add("quantized", label)
            continue
        if len(init.dims) < 2 or not heavy:
            continue
        path = owner[0] if owner else None
        if path is not None and any(path == k or path.startswith(k + ".") for k in keep_fp32):
            add("fp32", label)
        elif heavy and all(op in kept_ops for op in heavy):
            for op in sorted(heavy):
                for layer in kept_ops[op]:
                    add("fp32", layer)
        else:
            add("unsupported", f"{label} feeding {'/'.join(sorted(heavy))}")
    return report


def _storage_label(name: str, owners: dict[str, tuple[str, str]]) -> str:
    """``"patch_embedding (Conv2d)"`` for a layer's weight; a tensor of the model itself is named
    by its parameter (``"position (ViT)"``) unless the exporter gave it a generated name."""
    if name not in owners:
        return name
    path, kind = owners[name]
    if not path:
        path = "<model>" if re.fullmatch(r"val_\d+", name) else name
    return f"{path} ({kind})"


def _batches(calibration: Any, batch_size: int = 32) -> list[tuple[np.ndarray, ...]]:
    """Calibration data as a list of input tuples (numpy): a tensor/array or an iterable of them."""
    def as_tuple(item):
        if isinstance(item, (tuple, list)):
            return tuple(np.asarray(t.detach().cpu() if torch.is_tensor(t) else t) for t in item)
        return (np.asarray(item.detach().cpu() if torch.is_tensor(item) else item),)

    if torch.is_tensor(calibration) or isinstance(calibration, np.ndarray):
        return [as_tuple(calibration[i: i + batch_size])
                for i in range(0, len(calibration), batch_size)]
    if isinstance(calibration, Iterable):
        return [as_tuple(item) for item in calibration]
    raise ConfigError(f"quantize_int8: 'calibration' must be a tensor/array of inputs or an iterable "
                      f"of input batches; received {type(calibration).__name__}")


def quantize_int8(model: nn.Module, example_input: Any, calibration: Any = None, mode: str = "auto",
                  per_channel: bool = True, keep_fp32: Sequence[str] = (),
                  calibration_method: str = "minmax", weight_storage: str = "int8") -> Int8Model:
    """Quantize ``model`` to int8 for ONNX Runtime on CPU.

    Args:
        model: an ``nn.Module`` (left unchanged).
        example_input: one valid input (tensor or tuple of tensors), batch first.
        calibration: inputs used to fix activation ranges (static mode; a few hundred images): a
            tensor/array, or an iterable of input batches.
        mode: ``"static"``, ``"dynamic"`` or ``"auto"``: dynamic for models with attention layers
            (their convolutions, such as a ViT's patch embedding, then compute in fp32 from
            int8-stored weights), static for other models with convolutions, dynamic otherwise.
        per_channel: one weight scale per output channel (static mode).
        keep_fp32: names of layers (or their parents; ``""`` is the model itself) allowed to stay
            fp32 although they feed a matrix product or convolution.
        calibration_method: ``"minmax"`` or ``"percentile"`` (99.999%: clips rare outliers).
        weight_storage: ``"int8"`` (default): float matrices / kernels of 256+ values that stay
            outside the int8 kernels (patch convolutions, position tables, ``keep_fp32`` layers)
            are stored as per-channel int8 and dequantized in the graph (weight-only int8: they
            still compute in fp32), and biases / norm parameters are rounded to float16 precision
            (stored as float16); ``"fp32"``: keep them all as they are.

    Returns:
        An :class:`Int8Model`.

    Raises:
        ConfigError: unknown mode or method, static mode without calibration data, or layers the
            int8 path cannot handle: weights that would stay fp32 in a matrix product or
            convolution (the message lists each one by layer name and type).
        ExportError: the model cannot be exported to ONNX.
    """
    if calibration_method not in ("minmax", "percentile"):
        raise ConfigError(f"quantize_int8: 'calibration_method' must be 'minmax' or 'percentile'; "
                          f"received {calibration_method!r}")
    if weight_storage not in STORAGES:
        raise ConfigError(f"quantize_int8: 'weight_storage' must be one of {', '.join(STORAGES)}; "
                          f"received {weight_storage!r}")
    keep_fp32 = list(keep_fp32)
    requested, mode = mode, check_int8(model, mode, keep_fp32)
    kept_ops = kept_ops_of(model, mode, keep_fp32)
    keep_fp32 += fixed_transforms(model)  # constants of layers that learn nothing stay as they are
    if requested == "auto" and has_attention(model):
        # Transformers: dynamic int8 with fused QAttention. Their few convolutions (a ViT's patch
        # embedding) compute in fp32 from int8-stored weights: static QDQ for the whole graph ran
        # 2.0x / 0.63x against 4.0x / 1.25x here (benchmarks/int8_paths.py --cases vit).
        keep_fp32 += [name for name, _ in convolutions(model)]
    if mode == "static" and calibration is None:
        raise ConfigError("quantize_int8: static int8 needs 'calibration' inputs (a few hundred "
                          "training images) to fix activation ranges")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    with tempfile.TemporaryDirectory(prefix="bigmodel-int8-") as tmp:
        fp32_path, quant_path = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        import onnx

        fused = 0
        if mode == "dynamic" and has_attention(model):
            # Opset 23 exports attention as one op; blocks that match become ONNX Runtime's
            # fused Attention, quantized to QAttention (no Split/Reshape/Transpose copies).
            try:
                export_onnx(model, fp32_path, example_input, opset=ATTENTION_OPSET)
                fp32_proto = onnx.load(str(fp32_path))
                owners = _initializer_owners(fp32_proto)  # before fusion drops node metadata
                fused = fuse_self_attention(fp32_proto)
            except ExportError:
                fused = 0
        if fused:
            source = Path(tmp) / "fused.onnx"
            onnx.save(fp32_proto, str(source))
        else:
            export_onnx(model, fp32_path, example_input)
            owners = _initializer_owners(onnx.load(str(fp32_path)))
            source = _preprocess(fp32_path, Path(tmp) / "pre.onnx")
        if weight_storage == "int8":  # biases / norms to float16 precision, before quantizing
            rounded = onnx.load(str(source))
            if round_vectors_fp16(rounded):
                source = Path(tmp) / "rounded.onnx"
                onnx.save(rounded, str(source))
        with quiet_exporter():
            if mode == "static":
                batches = _batches(calibration)
                names = [i.name for i in onnx_session(source).get_inputs()]

                class Reader(CalibrationDataReader):
                    def __init__(self) -> None:
                        self._items = iter(batches)

                    def get_next(self):
                        item = next(self._items, None)
                        return None if item is None else dict(zip(names, item))

                method = (CalibrationMethod.Percentile if calibration_method == "percentile"
                          else CalibrationMethod.MinMax)
                quantize_static(str(source), str(quant_path), Reader(),
                                quant_format=QuantFormat.QDQ, per_channel=per_channel,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=method,
                                extra_options={"WeightSymmetric": True,
                                               "ActivationSymmetric": False})
            else:
                quantize_dynamic(str(source), str(quant_path), weight_type=QuantType.QInt8,
                                 op_types_to_quantize=["MatMul", "Gemm", "LSTM", "Attention"])
        proto = onnx.load(str(quant_path))
    report = _weight_report(proto, owners, keep_fp32, kept_ops)
    if report["unsupported"]:
        other = "dynamic" if mode == "static" else "static"
        raise ConfigError(
            f"quantize_int8 ({mode}): ONNX Runtime has no {mode} int8 kernel for these layers of "
            f"{type(model).__name__}, which would stay fp32: {', '.join(report['unsupported'])}. "
            f"Pass keep_fp32=[layer names] to accept that, or try mode='{other}' ({mode} int8 "
            "quantizes " + ("Conv, MatMul/Gemm" if mode == "static" else "MatMul/Gemm, LSTM")
            + " weights)")
    if not report["quantized"]:
        raise ConfigError(f"quantize_int8 ({mode}): {type(model).__name__} has no weight that "
                          f"{mode} int8 quantizes (Conv, MatMul/Gemm, LSTM)")
    if weight_storage == "int8":
        stored = store_weights_int8(proto)
        report["int8_storage"] = [_storage_label(n, owners) for n in stored]
    if mode == "dynamic":
        # Fuse once (DynamicQuantizeMatMul, ...): fewer nodes to store.
        # Static QDQ graphs stay as they are: their Q/DQ pairs are fused when a session loads.
        proto = optimize_offline(proto)
    return Int8Model(_compact(proto), {
        "mode": mode, "per_channel": per_channel, "weight_storage": weight_storage,
        "fused_attention": fused,
        "calibration_method": calibration_method if mode == "static" else None, "layers": report})


def _preprocess(path: Path, out: Path) -> Path:
    """ORT's recommended pre-processing (shape inference, graph fusion); the raw graph if it fails."""
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        # ONNX Runtime's symbolic shape inference saves "sym_shape_infer_temp.onnx" (+ a .data
        # file) into the working directory when it gives up: run it from the temporary folder.
        with quiet_exporter(), contextlib.chdir(out.parent):
            quant_pre_process(str(path.resolve()), str(out.resolve()), skip_symbolic_shape=False)
        return out
    except Exception:  # pre-processing is an optimization; quantization works without it
        return path


def _compact(proto):
    """Short value names, no value_info / doc strings / metadata: the JSON graph shrinks ~10x."""
    graph = proto.graph
    del graph.value_info[:]
    del proto.metadata_props[:]
    del graph.metadata_props[:]
    proto.doc_string = graph.doc_string = ""
    if any(a.type in (a.GRAPH, a.GRAPHS) for n in graph.node for a in n.attribute):
        return proto  # subgraphs refer to outer names: keep them as they are
    keep = {v.name for v in graph.input} | {v.name for v in graph.output} | {""}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if name in keep:
            return name
        return names.setdefault(name, f"v{len(names)}")

    for init in graph.initializer:
        init.name = short(init.name)
    for node in graph.node:
        node.name, node.doc_string = "", ""
        del node.metadata_props[:]
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    return proto


class Int8Model:
    """An int8 ONNX graph run by ONNX Runtime, callable like the PyTorch model it came from.

    Args:
        proto: the quantized ``onnx.ModelProto``.
        info: JSON-serializable facts (mode, per-layer plan) kept when saving.
        threads: ONNX Runtime intra-op threads (default: its own choice).
    """

    def __init__(self, proto, info: dict | None = None, threads: int | None = None) -> None:
        self.proto = proto
        self.info = dict(info or {})
        self._threads = threads
        self._session = None

    @property
    def session(self):
        if self._session is None:
            self._session = onnx_session(self.proto.SerializeToString(), self._threads)
        return self._session

    def set_threads(self, threads: int | None) -> None:
        self._threads, self._session = threads, None

    def __call__(self, *inputs) -> torch.Tensor:
        outputs = run_session(self.session, *inputs)
        return torch.from_numpy(outputs[0])

    def predict(self, x, batch_size: int = 256) -> torch.Tensor:
        """Outputs for ``x`` (tensor or array, batch first; a tuple of them for a graph with
        several inputs) in batches of ``batch_size``; the ONNX Runtime session runs each batch."""
        def forward(inputs):
            return self(*inputs) if isinstance(inputs, (tuple, list)) else self(inputs)

        return predict_batches(self, x, batch_size, forward=forward, empty=lambda: torch.empty(0),
                               name="Int8Model.predict")

    def onnx_bytes(self) -> bytes:
        return self.proto.SerializeToString()

    def save(self, directory: str | os.PathLike, metadata: dict | None = None) -> Path:
        """Write ``model.safetensors`` (initializers) then ``model.json`` (graph + info) atomically."""
        from google.protobuf import json_format
        from onnx import numpy_helper

        graphless = type(self.proto)()
        graphless.CopyFrom(self.proto)
        tensors, half = {}, []
        for init in graphless.graph.initializer:
            # np.array keeps 0-d scalars 0-d (np.ascontiguousarray would make them shape (1,))
            array = np.array(numpy_helper.to_array(init), order="C")
            if fp16_exact(array):  # float16 holds these float32 values exactly: half the bytes
                array = array.astype(np.float16)
                half.append(init.name)
            tensors[init.name] = array
        del graphless.graph.initializer[:]
        # Nodes as compact lists [op, inputs, outputs, [[name, kind, value]...], domain].
        nodes = [[n.op_type, list(n.input), list(n.output),
                  [encode_attribute(a) for a in n.attribute], n.domain]
                 for n in graphless.graph.node]
        del graphless.graph.node[:]
        document = {"info": self.info,
                    "initializer_order": list(tensors), "float16_to_float32": half,
                    "metadata": metadata or {},
                    "graph": json_format.MessageToDict(graphless), "nodes": nodes}
        return write_model_files(directory, INT8_FILE, document, tensors)


def load_int8(directory: str | os.PathLike, threads: int | None = None) -> Int8Model:
    """Rebuild an :class:`Int8Model` saved by :meth:`Int8Model.save` (no pickle, no protobuf file).

    Raises:
        CheckpointError: files missing, not an int8 model, modified since saving, or pickled.
    """
    import onnx
    from google.protobuf import json_format
    from onnx import numpy_helper

    directory = Path(directory)
    path = directory / INT8_FILE.json_name
    spec, _ = read_model_document(directory, INT8_FILE)
    weights, header = weights_file(directory, spec, INT8_FILE)  # confined, checksummed, unread
    try:
        if not isinstance(spec.get("graph"), dict):
            raise TypeError(f"'graph' must be a JSON object; received {spec.get('graph')!r:.80}")
        proto = json_format.ParseDict(spec["graph"], onnx.ModelProto())
        for op_type, inputs, outputs, attributes, domain in spec.get("nodes", []):
            node = proto.graph.node.add(op_type=op_type, domain=domain)
            node.input.extend(inputs)
            node.output.extend(outputs)
            for attribute in attributes:
                decode_attribute(attribute, node.attribute.add())
        float16 = [str(name) for name in spec.get("float16_to_float32", [])]
        order = [str(name) for name in spec.get("initializer_order", sorted(header.tensors))]
    except (json_format.ParseError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{path} does not hold a valid int8 graph: {exc}") from None
    refuse_external_data(proto, path)
    unknown = [name for name in float16 + order if name not in header.tensors]
    if unknown:
        raise CheckpointError(f"{path} names tensors {unknown[:3]} that {weights} does not hold")
    tensors = read_safetensors(weights, numpy=True)[0]
    for name in float16:
        if tensors[name].dtype != np.float16:
            raise CheckpointError(f"{weights}: tensor {name!r} listed as float16 in {path} is "
                                  "not float16")
        tensors[name] = tensors[name].astype(np.float32)
    for name in order:
        proto.graph.initializer.append(numpy_helper.from_array(tensors[name], name))
    model = Int8Model(proto, spec.get("info"), threads)
    try:
        model.session  # noqa: B018 - built now so a crafted graph fails here, naming the file
    except Exception as exc:  # ONNX Runtime's own error types (Fail, InvalidGraph, ...)
        raise CheckpointError(f"{path} holds a graph ONNX Runtime refuses: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return model
