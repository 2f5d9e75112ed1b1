"""Making a quantized ONNX graph small on disk: int8 storage of the float weights the int8 kernels
do not take, ONNX Runtime's graph fusions applied once before saving, and a compact JSON encoding of
node attributes.

Why: after ``quantize_dynamic`` a small Transformer still carries fp32 tensors that no int8 kernel
consumes (a ViT's patch convolution, its position table) and a graph of ~200 small nodes
(``DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul -> Mul`` per product). On the 139k-parameter
ViT these were 17 KB of fp32 and 19 KB of JSON beside 131 KB of int8 weights: the file was 3.0x
smaller than fp32 instead of ~4x. Here:

* :func:`store_weights_int8` replaces each remaining float initializer of at least ``min_elements``
  values by int8 values + per-channel scales and a ``DequantizeLinear`` node (weight-only int8: the
  consumer still computes in fp32; the error is at most half a quantization step per value);
* :func:`round_vectors_fp16` rounds biases and norm parameters to float16 precision, stored as
  float16 (exactly) by ``Int8Model.save``;
* :func:`optimize_offline` runs ONNX Runtime's basic + extended (hardware-independent) fusions once
  (``DynamicQuantizeMatMul``, ...; not ``export.onnx.DISABLED_FUSIONS``), so the saved
  graph has fewer nodes;
* :func:`encode_attribute` / :func:`decode_attribute` write attributes as ``[name, kind, value]``.
"""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bigmodel.errors import CheckpointError
from bigmodel.export.onnx import DISABLED_FUSIONS

# Consumers whose weight's output channels are axis 0 (per-channel scales along it).
_CHANNEL_FIRST = ("Conv", "ConvTranspose")


def _is_vector(dims) -> bool:
    """One axis longer than 1 at most: a bias or norm vector, also as (1, n) (an LSTM's biases)."""
    return sum(1 for d in dims if d > 1) <= 1


def store_weights_int8(proto, min_elements: int = 256) -> list[str]:
    """Store float matrices / kernels with ``>= min_elements`` values as int8 + ``DequantizeLinear``.

    Scales are symmetric, one per output channel (axis 0 for convolutions, the last axis otherwise:
    the output features of a ``MatMul`` weight, the features of a position table). Vectors (biases,
    norm scales) are left to :func:`round_vectors_fp16`. Graphs with
    subgraphs (``Loop``/``If``/``Scan``) are left unchanged. Changes ``proto`` in place.

    Returns:
        The names of the initializers now stored as int8.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    if any(a.type in (a.GRAPH, a.GRAPHS) for n in graph.node for a in n.attribute):
        return []
    consumers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    outputs = {v.name for v in graph.output}
    stored, kept, nodes = [], [], []
    for init in graph.initializer:
        if (init.data_type != TensorProto.FLOAT or init.name in outputs
                or int(np.prod(init.dims)) < min_elements or _is_vector(init.dims)):
            kept.append(init)
            continue
        values = numpy_helper.to_array(init).astype(np.float32)
        base = init.name
        axis = 0 if consumers.get(base, set()) & set(_CHANNEL_FIRST) else values.ndim - 1
        reduce = tuple(i for i in range(values.ndim) if i != axis)
        scale = np.abs(values).max(axis=reduce) / 127.0
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        shape = [1] * values.ndim
        shape[axis] = -1
        quantized = np.clip(np.rint(values / scale.reshape(shape)), -127, 127).astype(np.int8)
        # No zero-point input: it defaults to 0 and int8 (symmetric), one tensor fewer to store.
        kept += [numpy_helper.from_array(quantized, f"{base}_q8"),
                 numpy_helper.from_array(scale, f"{base}_s8")]
        nodes.append(helper.make_node("DequantizeLinear", [f"{base}_q8", f"{base}_s8"], [base],
                                      axis=axis))
        stored.append(base)
    if stored:
        del graph.initializer[:]
        graph.initializer.extend(kept)
        rest = list(graph.node)
        del graph.node[:]
        graph.node.extend(nodes + rest)
    return stored


def round_vectors_fp16(proto, min_elements: int = 16) -> int:
    """Round float vectors (biases, norm scales and shifts) of ``proto`` to float16 precision.

    Relative error at most 2**-11, far below int8's, and the graph keeps them as constant
    initializers (so ONNX Runtime still fuses them into its kernels). Rounded values are exactly
    representable in float16, so :meth:`Int8Model.save` stores them in half the bytes without
    loss (see :func:`fp16_exact`). Returns how many tensors were rounded.
    """
    from onnx import TensorProto, numpy_helper

    count = 0
    for index, init in enumerate(proto.graph.initializer):
        if init.data_type != TensorProto.FLOAT or not _is_vector(init.dims) or \
                int(np.prod(init.dims)) < min_elements:
            continue
        values = numpy_helper.to_array(init)
        rounded = values.astype(np.float16).astype(np.float32)
        if np.all(np.isfinite(rounded) == np.isfinite(values)):
            proto.graph.initializer[index].CopyFrom(numpy_helper.from_array(rounded, init.name))
            count += 1
    return count


def fp16_exact(values: np.ndarray, min_elements: int = 16) -> bool:
    """True for a float32 array of ``min_elements``+ values that float16 holds exactly."""
    if values.dtype != np.float32 or values.size < min_elements:
        return False
    with np.errstate(over="ignore"):
        return bool(np.array_equal(values.astype(np.float16).astype(np.float32), values))


def optimize_offline(proto):
    """``proto`` after ONNX Runtime's hardware-independent fusions (basic + extended level).

    Returns the input unchanged when ONNX Runtime cannot optimize it (the fusions only shrink and
    speed up loading; the graph runs the same either way).
    """
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="bigmodel-ort-opt-") as tmp:
        source, target = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        source.write_bytes(proto.SerializeToString())
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(target)
        try:
            ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"],
                                 disabled_optimizers=list(DISABLED_FUSIONS))
            optimized = onnx.load(str(target))
        except Exception:  # an optimization only; the unoptimized graph is valid
            return proto
    return optimized


_KINDS = {"i": "INT", "f": "FLOAT", "s": "STRING", "ints": "INTS", "floats": "FLOATS",
          "strings": "STRINGS"}


def encode_attribute(attribute) -> list[Any]:
    """``[name, kind, value]`` for scalar / list attributes; ``[name, "pb", dict]`` otherwise."""
    from google.protobuf import json_format

    kind = {v: k for k, v in _KINDS.items()}.get(type(attribute).AttributeType.Name(attribute.type))
    if kind is None:
        return [attribute.name, "pb", json_format.MessageToDict(attribute)]
    value = getattr(attribute, kind)
    if kind == "s":
        value = base64.b64encode(value).decode("ascii")
    elif kind == "strings":
        value = [base64.b64encode(v).decode("ascii") for v in value]
    elif kind in ("ints", "floats"):
        value = list(value)
    return [attribute.name, kind, value]


def decode_attribute(encoded: Any, attribute) -> None:
    """Fill the ``AttributeProto`` ``attribute`` from :func:`encode_attribute`'s output (or from the
    ``MessageToDict`` form of format version 1). Raises ``ValueError`` on an unknown form."""
    from google.protobuf import json_format

    if isinstance(encoded, dict):  # format version 1
        json_format.ParseDict(encoded, attribute)
        return
    if not isinstance(encoded, list) or len(encoded) != 3:
        raise ValueError(f"attribute {encoded!r} is not [name, kind, value]")
    name, kind, value = encoded
    if kind == "pb":
        json_format.ParseDict(value, attribute)
        return
    if kind not in _KINDS:
        raise ValueError(f"attribute {name!r} has unknown kind {kind!r}")
    attribute.name = name
    attribute.type = type(attribute).AttributeType.Value(_KINDS[kind])
    if kind == "s":
        attribute.s = base64.b64decode(value)
    elif kind == "strings":
        attribute.strings.extend(base64.b64decode(v) for v in value)
    elif kind in ("ints", "floats"):
        getattr(attribute, kind).extend(value)
    else:
        setattr(attribute, kind, value)


def refuse_external_data(proto, path: Path) -> None:
    """Refuse an ONNX graph with any tensor stored outside it (``data_location: EXTERNAL``).

    ONNX Runtime resolves external ``location`` names against the current directory when it gets
    a graph as bytes, so a crafted ``model.json`` could make it read any file. bigmodel never writes
    external data, so none is accepted.

    Raises:
        CheckpointError: naming ``path`` and the tensor.
    """
    from onnx import TensorProto

    graphs = [proto.graph, *(function for function in proto.functions)]
    while graphs:
        graph = graphs.pop()
        tensors = list(getattr(graph, "initializer", []))
        for sparse in getattr(graph, "sparse_initializer", []):
            tensors += [sparse.values, sparse.indices]
        for node in graph.node:
            for attribute in node.attribute:
                tensors += [attribute.t, *attribute.tensors]
                if attribute.HasField("g"):
                    graphs.append(attribute.g)
                graphs.extend(attribute.graphs)
                for sparse in [attribute.sparse_tensor, *attribute.sparse_tensors]:
                    tensors += [sparse.values, sparse.indices]
        for tensor in tensors:
            if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data):
                location = next((e.value for e in tensor.external_data if e.key == "location"), "?")
                raise CheckpointError(f"{path}: tensor {tensor.name!r} stores its data in an "
                                      f"external file ({location!r}); bigmodel reads no external "
                                      "data")
