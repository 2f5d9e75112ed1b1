"""``Model.summary()``: Keras 3's table of layers, output shapes and parameter counts."""

from __future__ import annotations

from typing import Any

import torch


def _format_shape(shape: Any) -> str:
    if isinstance(shape, list):
        return ", ".join(_format_shape(s) for s in shape)
    inner = ", ".join("None" if s is None else str(s) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def _size(count: int) -> str:
    size = count * 4.0  # float32 weights
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} GB"  # pragma: no cover


def _called_shapes(model: Any) -> dict[int, Any]:
    """Output shape of each direct layer of a subclassed model, from one call on zeros of its
    known input shape (eval mode, no gradients); a layer ``call`` never reaches is absent."""
    shape = model._declared_input_shape
    if shape is None or not model.built or any(d is None for d in tuple(shape)[1:]):
        return {}
    shapes: dict[int, Any] = {}

    def record(layer: Any, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            shapes[id(layer)] = (None, *output.shape[1:])
        elif isinstance(output, (list, tuple)) and all(isinstance(o, torch.Tensor) for o in output):
            shapes[id(layer)] = [(None, *o.shape[1:]) for o in output]

    hooks = [layer.register_forward_hook(record) for layer in model.layers]
    was_training = model.training
    device = next((p.device for p in model.parameters()), None)
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros([1, *tuple(shape)[1:]], device=device))
    except Exception:  # noqa: BLE001 - a summary shows '?' where the call cannot run
        return shapes
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
        model._clear_added_losses()
    return shapes


def _params(layer: Any) -> int | str:
    return layer.count_params() if layer.built else "0 (unbuilt)"


def layer_rows(model: Any) -> list[tuple[str, str, int | str, bool]]:
    """(name (Class), output shape, parameter count, trainable) for each layer; the shape is '?'
    where it is not known (a subclassed model not yet called), as in Keras."""
    rows = []
    shape = model._declared_input_shape
    graph_nodes = getattr(model, "_nodes", None)
    if graph_nodes is not None:
        for layer in model.layers:
            out = getattr(layer, "batch_shape", None) if type(layer).__name__ == "InputLayer" \
                else next(n.shape for n in graph_nodes if n.layer is layer)
            rows.append((f"{layer.name} ({type(layer).__name__})", _format_shape(out),
                         layer.count_params(), layer.trainable))
        return rows
    if model._is_subclassed():
        called = _called_shapes(model)
        return [(f"{layer.name} ({type(layer).__name__})",
                 _format_shape(called[id(layer)]) if id(layer) in called else "?",
                 _params(layer), layer.trainable) for layer in model.layers]
    for layer in model.layers:
        if shape is not None:
            shape = layer.compute_output_shape(shape)
            text = _format_shape(shape)
        else:
            text = "?"
        rows.append((f"{layer.name} ({type(layer).__name__})", text, _params(layer),
                     layer.trainable))
    return rows


def render_summary(model: Any, show_trainable: bool = False) -> str:
    rows = layer_rows(model)
    headers = ["Layer (type)", "Output Shape", "Param #"] + (["Trainable"] if show_trainable else [])
    cells = [[name, shape, f"{count:,}" if isinstance(count, int) else count]
             + (["Y" if tr else "N"] if show_trainable else [])
             for name, shape, count, tr in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) + 2 if cells else len(h) + 2
              for i, h in enumerate(headers)]
    widths[0] = max(widths[0], 33)
    widths[1] = max(widths[1], 24)
    widths[2] = max(widths[2], 15)

    def line(left: str, mid: str, right: str, fill: str) -> str:
        return left + mid.join(fill * w for w in widths) + right

    def row(values: list[str], sep: str) -> str:
        parts = []
        for i, (value, w) in enumerate(zip(values, widths)):
            parts.append(f" {value:>{w - 2}} " if i == 2 else f" {value:<{w - 2}} ")
        return sep + sep.join(parts) + sep

    out = [f'Model: "{model.name}"', line("┏", "┳", "┓", "━"), row(headers, "┃"),
           line("┡", "╇", "┩", "━")]
    for i, values in enumerate(cells):
        out.append(row(values, "│"))
        if i < len(cells) - 1:
            out.append(line("├", "┼", "┤", "─"))
    out.append(line("└", "┴", "┘", "─"))
    total = model.count_params()  # the weights built so far (buffers included), as in Keras
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    non_trainable = total - trainable
    out.append(f" Total params: {total:,} ({_size(total)})")
    out.append(f" Trainable params: {trainable:,} ({_size(trainable)})")
    out.append(f" Non-trainable params: {non_trainable:,} ({_size(non_trainable)})")
    return "\n".join(out)
