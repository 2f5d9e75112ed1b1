"""``keras.utils.model_to_dot`` and ``keras.utils.plot_model``: a model's layer graph as Graphviz.

The same graph as Keras 3: one node per layer (a functional model's ``InputLayer``s and keras.ops
nodes included), labelled with Keras's HTML table (name and class; optionally activation, input
and output shapes, dtype, trainable), an edge from each layer to the layers that take its output.
pydot builds the graph (PyPI ``pydot``); ``plot_model`` renders it with Graphviz's ``dot``
program (Debian ``graphviz``). ``expand_nested=True`` on a model holding models is not supported.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from bigmodel.errors import ConfigError, NotSupportedError
from bigmodel.keras.functional import Functional
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.sequential import Sequential
from bigmodel.keras.unsupported import UnsupportedImportError


def _pydot(place: str) -> Any:
    try:
        import pydot  # optional: the `keras` extra
    except ImportError:
        raise UnsupportedImportError(f"{place} needs pydot: pip install pydot") from None
    return pydot


def _format_shape(value: Any) -> str:
    if value is None:
        return "?"
    if isinstance(value, KerasTensor):
        return str(tuple(value.shape))
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_format_shape(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_shape(v) for v in value) + "]"
    return "?"


def _output_dtype(value: Any) -> str | None:
    if isinstance(value, KerasTensor):
        return str(value.dtype)
    if isinstance(value, (list, tuple)) and value:
        return str([_output_dtype(v) for v in value])
    return None


def _activation_name(activation: Any) -> str:
    return str(getattr(activation, "name", None) or getattr(activation, "__name__", None)
               or activation)


def _label(layer: Any, io: tuple[Any, Any], show_layer_names: bool, show_layer_activations: bool,
           show_dtype: bool, show_shapes: bool, show_trainable: bool) -> str:
    """Keras 3's HTML-like table label of a layer's node."""
    class_name = type(layer).__name__
    colspan = max(1, int(show_dtype) + int(show_trainable) + (2 if show_shapes else 0))
    title = f"<b>{layer.name}</b> ({class_name})" if show_layer_names else f"<b>{class_name}</b>"
    table = ('<<table border="0" cellborder="1" bgcolor="black" cellpadding="10">'
             f'<tr><td colspan="{colspan}" bgcolor="black"><font point-size="16" color="white">'
             f"{title}</font></td></tr>")
    if show_layer_activations and getattr(layer, "activation", None) is not None:
        table += (f'<tr><td bgcolor="white" colspan="{colspan}"><font point-size="14">'
                  f"Activation: <b>{_activation_name(layer.activation)}</b></font></td></tr>")
    inputs, output = io
    cells = []
    if show_shapes:
        if class_name != "InputLayer":
            cells.append('<td bgcolor="white"><font point-size="14">'
                         f"Input shape: <b>{_format_shape(inputs)}</b></font></td>")
        cells.append('<td bgcolor="white"><font point-size="14">'
                     f"Output shape: <b>{_format_shape(output)}</b></font></td>")
    if show_dtype:
        cells.append('<td bgcolor="white"><font point-size="14">'
                     f"Output dtype: <b>{_output_dtype(output) or '?'}</b></font></td>")
    if show_trainable and getattr(layer, "weights", None):
        cells.append('<td bgcolor="forestgreen"><font point-size="14" color="white">'
                     "<b>Trainable</b></font></td>" if layer.trainable else
                     '<td bgcolor="firebrick"><font point-size="14" color="white">'
                     "<b>Non-trainable</b></font></td>")
    if cells:
        table += f"<tr>{''.join(cells)}</tr>"
    return table + "</table>>"


def _graph(model: Any) -> tuple[list[Any], dict[int, tuple[Any, Any]], list[tuple[Any, Any]]]:
    """(nodes in Keras's order, layer id -> (input, output) of its first call, edges)."""
    if isinstance(model, Sequential):
        layers = list(model.layers)
        io: dict[int, tuple[Any, Any]] = {}
        current = model.inputs[0] if getattr(model, "inputs", None) else None
        for layer in layers:  # shapes passed along the stack, as the layers compute them
            output = None
            if current is not None:
                try:
                    output = KerasTensor(layer.compute_output_shape(tuple(current.shape)),
                                         dtype=getattr(layer, "compute_dtype", current.dtype))
                except Exception:  # noqa: BLE001 - a layer without shape rules: "?" from here
                    output = None
            io[id(layer)] = (current, output)
            current = output
        return layers, io, list(zip(layers, layers[1:]))
    if not isinstance(model, Functional):  # a subclassed model: one node, as Keras
        return [model], {}, []
    input_layers = dict(zip((id(kt) for kt in model.inputs), model._input_layers))
    nodes = model.keras_order(include_inputs=True, include_ops=True)
    io: dict[int, tuple[Any, Any]] = {id(layer): (None, kt)
                                      for kt, layer in zip(model.inputs, model._input_layers)}
    edges: list[tuple[Any, Any]] = []
    for kt in model._nodes:  # every layer call, parents first
        io.setdefault(id(kt.layer), (getattr(kt.layer, "input", None) if _has_call(kt.layer)
                                     else list(kt.parents), kt))
        for parent in kt.parents:
            source = parent.layer if parent.layer is not None else input_layers.get(id(parent))
            if source is not None and (source, kt.layer) not in edges:
                edges.append((source, kt.layer))
    return nodes, io, edges


def _has_call(layer: Any) -> bool:
    try:
        layer.input  # noqa: B018 - present once the layer was called on symbolic inputs
    except (AttributeError, ValueError):
        return False
    return True


def model_to_dot(model: Any, show_shapes: bool = False, show_dtype: bool = False,
                 show_layer_names: bool = True, rankdir: str = "TB", expand_nested: bool = False,
                 dpi: int = 200, subgraph: bool = False, show_layer_activations: bool = False,
                 show_trainable: bool = False, splines: str = "ortho", **kwargs: Any) -> Any:
    """The model's layer graph as a ``pydot.Dot`` (a ``pydot.Cluster`` with ``subgraph``).

    Args: as Keras 3 (``rankdir`` ``"TB"`` / ``"LR"``, ``splines`` Graphviz's edge style).

    Raises:
        UnsupportedImportError: pydot is not installed. ConfigError: an unbuilt model or an
        unknown keyword argument. NotSupportedError: ``expand_nested`` with nested models.
    """
    pydot = _pydot("model_to_dot")
    if kwargs:
        raise ConfigError(f"model_to_dot: unknown keyword arguments {sorted(kwargs)} (Keras 3 "
                          "dropped layer_range)")
    if not getattr(model, "built", False):
        raise ConfigError(f"model_to_dot: the model {model.name!r} is not built yet; build it "
                          "(call it on data or build()) first")
    nodes, io, edges = _graph(model)
    if expand_nested and any(isinstance(n, (Functional, Sequential)) for n in nodes[1:]):
        raise NotSupportedError("model_to_dot(expand_nested=True) on a model holding models is "
                                "not supported by bigmodel; nested models are drawn as one node")
    if subgraph:
        dot = pydot.Cluster(style="dashed", graph_name=model.name)
        dot.set("label", model.name)
        dot.set("labeljust", "l")
    else:
        dot = pydot.Dot()
        dot.set("rankdir", rankdir)
        dot.set("concentrate", True)
        dot.set("dpi", dpi)
        dot.set("splines", splines)
        dot.set_node_defaults(shape="record")
    for layer in nodes:
        node = pydot.Node(str(id(layer)), label=_label(
            layer, io.get(id(layer), (None, None)), show_layer_names, show_layer_activations,
            show_dtype, show_shapes, show_trainable))
        node.set("fontname", "Helvetica")
        node.set("border", "0")
        node.set("margin", "0")
        dot.add_node(node)
    for source, destination in edges:
        edge = pydot.Edge(str(id(source)), str(id(destination)))
        edge.set("penwidth", "2")
        dot.add_edge(edge)
    return dot


def plot_model(model: Any, to_file: Any = "model.png", show_shapes: bool = False,
               show_dtype: bool = False, show_layer_names: bool = False, rankdir: str = "TB",
               expand_nested: bool = False, dpi: int = 200, show_layer_activations: bool = False,
               show_trainable: bool = False, splines: str = "ortho", **kwargs: Any) -> None:
    """Draw the model's graph (:func:`model_to_dot`) into ``to_file``; the extension picks the
    format (``.png``, ``.svg``, ``.pdf``, ``.dot``; none: PNG). Written whole or not at all.

    Raises:
        UnsupportedImportError: pydot or Graphviz's ``dot`` program is missing.
    """
    dot = model_to_dot(model, show_shapes=show_shapes, show_dtype=show_dtype,
                       show_layer_names=show_layer_names, rankdir=rankdir,
                       expand_nested=expand_nested, dpi=dpi,
                       show_layer_activations=show_layer_activations,
                       show_trainable=show_trainable, splines=splines, **kwargs)
    target = Path(to_file)
    extension = target.suffix[1:] or "png"
    if extension != "dot" and shutil.which("dot") is None:
        raise UnsupportedImportError("plot_model needs Graphviz's `dot` program (Debian: apt "
                                     "install graphviz); model_to_dot(model).to_string() gives "
                                     "the graph without it")
    partial = target.with_name(f".{target.name}.partial")
    try:
        if extension == "dot":
            partial.write_text(dot.to_string())
        else:
            dot.write(str(partial), format=extension)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


__all__ = ["model_to_dot", "plot_model"]
