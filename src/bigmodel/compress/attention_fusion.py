"""Fusing exported self-attention blocks into ONNX Runtime's ``com.microsoft.Attention`` op.

PyTorch's exporter (opset 23) writes a self-attention block as::

    X -> MatMul(W_qkv) -> Add(b_qkv) -> Split(3) -> 3 x (Reshape -> Transpose) -> Attention
      -> Transpose -> Reshape -> (B, S, d)

ONNX Runtime's contrib ``Attention`` op does all of it in one kernel from ``X``, the packed weight
``W_qkv`` (d, 3d) and bias (3d): no Split / Reshape / Transpose copies of every activation, and its
int8 form ``QAttention`` (made by ``quantize_dynamic``) multiplies ``X @ W_qkv`` in int8. On the
project's ViT those copies were ~22% of the batch-256 time under ONNX Runtime.

:func:`fuse_self_attention` rewrites every block that matches exactly (no mask, not causal, equal
Q/K/V widths) and leaves anything else as it was.
"""

from __future__ import annotations

import math

import numpy as np


def _attr(node, name, default=None):
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def fuse_self_attention(proto) -> int:
    """Replace matching self-attention blocks of ``proto`` (in place); returns how many."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def only(name, op):
        node = producer.get(name)
        return node if node is not None and node.op_type == op and node.domain in ("", "ai.onnx") \
            else None

    def const(name):
        return numpy_helper.to_array(inits[name]) if name in inits else None

    def head_dims(name):
        """(heads, head size): the last two entries of a Reshape target, constant or built by a
        Concat of runtime sizes and constants."""
        values = const(name)
        if values is None:
            concat = only(name, "Concat")
            if concat is None:
                return None
            tail: list[int] = []
            for part in reversed(concat.input):
                piece = const(part)
                if piece is None:
                    break
                tail = [int(v) for v in piece.ravel()] + tail
                if len(tail) >= 2:
                    break
            values = np.asarray(tail) if len(tail) >= 2 else None
        if values is None or values.ndim != 1 or values.size < 2 or values[-1] < 1 or \
                values[-2] < 1 or (const(name) is not None and values.size != 4):
            return None
        return int(values[-2]), int(values[-1])

    fused = 0
    for node in list(graph.node):
        if node.op_type != "Attention" or node.domain not in ("", "ai.onnx"):
            continue
        if len([i for i in node.input if i]) != 3 or len(node.output) < 1 or \
                any(node.output[1:]) or _attr(node, "is_causal", 0) or \
                _attr(node, "softcap", 0.0) or _attr(node, "qk_matmul_output_mode", 0):
            continue
        chain = []
        for name in node.input[:3]:
            transpose = only(name, "Transpose")
            reshape = transpose is not None and only(transpose.input[0], "Reshape")
            if not reshape or list(_attr(transpose, "perm", [])) != [0, 2, 1, 3]:
                break
            chain.append((transpose, reshape))
        if len(chain) != 3:
            continue
        split = only(chain[0][1].input[0], "Split")
        if split is None or [r.input[0] for _, r in chain] != list(split.output)[:3] or \
                len(split.output) != 3:
            continue
        add = only(split.input[0], "Add")
        matmul = add is not None and only(add.input[0], "MatMul")
        if not matmul:
            continue
        weight, bias = const(matmul.input[1]), const(add.input[1])
        shape = head_dims(chain[0][1].input[1])
        if weight is None or bias is None or shape is None or weight.ndim != 2 or \
                weight.shape[1] % 3 or bias.shape != (weight.shape[1],):
            continue
        width = weight.shape[1] // 3
        sizes = const(split.input[1]) if len(split.input) > 1 and split.input[1] else None
        if sizes is not None and list(sizes) != [width] * 3:
            continue
        if _attr(split, "axis", 0) not in (-1, 2):
            continue
        heads, head_size = shape
        if heads * head_size != width:
            continue
        out_users = consumers.get(node.output[0], [])
        if len(out_users) != 1 or out_users[0].op_type != "Transpose" or \
                list(_attr(out_users[0], "perm", [])) != [0, 2, 1, 3]:
            continue
        after = consumers.get(out_users[0].output[0], [])
        if len(after) != 1 or after[0].op_type != "Reshape":
            continue
        scale = _attr(node, "scale", None)
        scale = float(scale) if scale else 1.0 / math.sqrt(head_size)
        fused_node = helper.make_node(
            "Attention", [matmul.input[0], matmul.input[1], add.input[1]], [after[0].output[0]],
            domain="com.microsoft", num_heads=heads, scale=scale)
        position = list(graph.node).index(node)
        graph.node.insert(position, fused_node)
        for dead in (after[0], out_users[0], node):
            graph.node.remove(dead)
        fused += 1
    if fused:
        _drop_unused(graph)
        if not any(o.domain == "com.microsoft" for o in proto.opset_import):
            proto.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return fused


def _drop_unused(graph) -> None:
    """Remove nodes whose outputs nothing reads, then initializers nothing reads."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {name for node in graph.node for name in node.input} | outputs
        dead = [node for node in graph.node if not any(o in used for o in node.output if o)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {name for node in graph.node for name in node.input} | outputs
    keep = [init for init in graph.initializer if init.name in used]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)


__all__ = ["fuse_self_attention"]
