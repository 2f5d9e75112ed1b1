"""The functional API: ``inputs = keras.Input(shape)``, ``outputs = layer(...)(inputs)``,
``keras.Model(inputs, outputs)``.

Calling a layer on a :class:`KerasTensor` records the call; ``Functional`` walks those records back
from the outputs to the inputs once, at construction, and replays them on real tensors in ``call``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from bigmodel.errors import ConfigError
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.core import InputLayer
from bigmodel.keras.layers.lambda_layer import Input
from bigmodel.keras.layers.layer_registry import (
    deserialize_layer,
    serialize_layer,
    snake_case,
    unique_name,
)
from bigmodel.keras.layers.symbolic import KerasTensor, fill_slots
from bigmodel.keras.model import Model
from bigmodel.keras.model_classes import register_model_class
from bigmodel.keras.model_inputs import standardize_inputs
from bigmodel.keras.ops.node import decode_argument, encode_argument
from bigmodel.keras.ops.operators import install_operators

__all__ = ["Functional", "Input"]

# ``x + y``, ``x[:, 0]``, ``x @ w`` ... on symbolic tensors record keras.ops nodes (Keras 3).
install_operators(KerasTensor)


def _as_list(value: Any) -> list[KerasTensor]:
    if isinstance(value, dict):  # Model({"a": a, ...}, {"out": o, ...}): Keras keeps the keys
        return list(value.values())
    return [value] if isinstance(value, KerasTensor) else list(value)


class Functional(Model):
    """A model defined by a graph of layer calls on ``KerasTensor`` inputs."""

    _supports_logits = True

    def __init__(self, inputs: Any, outputs: Any, name: str | None = None,
                 trainable: bool = True, **kwargs: Any):
        Layer.__init__(self, name=name or unique_name(snake_case("Functional")), trainable=trainable,
                       **kwargs)
        Model._init_training_state(self)
        self._single_input = isinstance(inputs, KerasTensor)
        self._single_output = isinstance(outputs, KerasTensor)
        # Keras 3 unpacks a one-element output list: Model(x, [y]) returns (and predicts) a
        # tensor, so one loss and one metric apply to it as to Model(x, y).
        self._one_output = len(_as_list(outputs)) == 1 and not isinstance(outputs, dict)
        self._inputs = _as_list(inputs)
        self._outputs = _as_list(outputs)
        # Dict inputs/outputs: called with and returning dicts keyed like these (Keras 3).
        self._input_keys = list(inputs) if isinstance(inputs, dict) else None
        self._output_keys = list(outputs) if isinstance(outputs, dict) else None
        for kt in self._inputs:
            if kt.layer is not None:
                raise ConfigError(f"Model inputs must come from keras.Input(); received {kt!r}")
        for kt in self._outputs:
            if not isinstance(kt, KerasTensor):
                raise ConfigError(f"Model outputs must be results of layer calls on "
                                  f"keras.Input(); received {type(kt).__name__}")
        self._nodes = self._topological_nodes()
        layers: list[Layer] = []
        for node in self._nodes:
            if all(node.layer is not lay for lay in layers):
                layers.append(node.layer)
        self._graph_layers = nn.ModuleList(layers)
        # Keras 3 lists one InputLayer per input first in ``model.layers``; they hold no weights
        # and are not submodules (kept out of the state dict and of the saved graph's layers).
        self.__dict__["_input_layers"] = tuple(
            InputLayer(batch_shape=kt.shape, dtype=kt.dtype, name=kt.name) for kt in self._inputs)
        if self._single_input:
            self._declared_input_shape = tuple(self._inputs[0].shape)
        self.built = True

    def _topological_nodes(self) -> list[KerasTensor]:
        order: list[KerasTensor] = []
        seen: set[int] = set()
        input_ids = {id(kt) for kt in self._inputs}

        def visit(kt: KerasTensor) -> None:
            if id(kt) in seen or id(kt) in input_ids:
                return
            if kt.layer is None:
                raise ConfigError(f"Output depends on an input that was not passed to Model(): "
                                  f"{kt!r}")
            for parent in kt.parents:
                visit(parent)
            seen.add(id(kt))
            order.append(kt)

        for out in self._outputs:
            visit(out)
        return order

    @property
    def layers(self) -> list[Layer]:
        # Keras 3's listing, InputLayers included; keras.ops nodes (OpLayer) are operations,
        # not layers.
        return self.keras_order()

    def keras_order(self, include_inputs: bool = True, include_ops: bool = False) -> list[Any]:
        """The layers in Keras 3's order of a functional model's operations: by decreasing depth
        (longest path to an output), ties by the order a depth-first walk from the outputs first
        meets them. ``model.layers``, ``get_weights`` and the ``.keras`` weights file use it."""
        first_seen: dict[int, int] = {}
        depth: dict[int, int] = {}
        post_order: list[KerasTensor] = []
        done: set[int] = set()

        def visit(kt: KerasTensor) -> None:
            owner = kt.layer if kt.layer is not None else kt
            first_seen.setdefault(id(owner), len(first_seen))
            if id(kt) in done:
                return
            for parent in kt.parents:
                visit(parent)
            done.add(id(kt))
            post_order.append(kt)

        for output in self._outputs:
            visit(output)
        node_depth: dict[int, int] = {}
        for kt in reversed(post_order):
            d = node_depth.setdefault(id(kt), 0)
            owner = kt.layer if kt.layer is not None else kt
            d = max(d, depth.get(id(owner), 0))
            depth[id(owner)] = d
            for parent in kt.parents:
                node_depth[id(parent)] = max(node_depth.get(id(parent), 0), d + 1)
        # an InputLayer sorts as its input tensor does
        keys = {id(lay): (-depth.get(id(kt), 0), first_seen.get(id(kt), 0))
                for lay, kt in zip(self._input_layers, self._inputs)}
        layers = list(self._graph_layers if include_ops else self._graph_layer_list())
        keys.update({id(lay): (-depth.get(id(lay), 0), first_seen.get(id(lay), 0))
                     for lay in layers})
        if include_inputs:
            layers = [*self._input_layers, *layers]
        return sorted(layers, key=lambda lay: keys[id(lay)])

    def _ordered_weight_items(self) -> list[tuple[Layer, str]]:
        # Keras lists a functional model's weights layer by layer in its layers' order
        items: list[tuple[Layer, str]] = [(self, n) for n in self._weight_perms]
        for layer in self.keras_order(include_inputs=False, include_ops=True):
            items.extend(layer._ordered_weight_items())
        return items

    def _graph_layer_list(self) -> list[Layer]:
        """The layers called in the graph (no InputLayer, no keras.ops node), in call order."""
        return [lay for lay in self._graph_layers if not getattr(lay, "is_op_node", False)]

    @property
    def inputs(self) -> list[KerasTensor]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[KerasTensor]:
        return list(self._outputs)

    # Keras 3: a model's own node - its inputs/outputs as a flat list, one tensor when only one.
    @property
    def input(self) -> Any:
        return self._inputs[0] if len(self._inputs) == 1 else list(self._inputs)

    @property
    def output(self) -> Any:
        return self._outputs[0] if len(self._outputs) == 1 else list(self._outputs)

    @property
    def output_names(self) -> list[str]:
        """The output layers' names (the keys of a dict output), in output order."""
        return self._output_names()

    def build(self, input_shape: Any) -> None:
        self.built = True

    @property
    def input_shape(self) -> Any:
        """The inputs' shapes, as Keras gives them: one tuple, or a list for several inputs."""
        shapes = [tuple(kt.shape) for kt in self._inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self) -> Any:
        """The outputs' shapes: one tuple, or a list for several outputs (a dict's in order)."""
        shapes = [tuple(kt.shape) for kt in self._outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    def compute_output_shape(self, input_shape: Any) -> Any:
        shapes = [kt.shape for kt in self._outputs]
        return shapes[0] if self._one_output else shapes

    def _replay_plan(self) -> tuple[int, list[tuple]]:
        """The graph as a flat list of steps, made once (the graph never changes): each node's
        value lives in a slot (inputs first), and each step names the slots it reads and those
        it is the last reader of, so an intermediate result is released as soon as nothing needs
        it (the model's peak memory is that of a hand-written forward, not every activation at
        once)."""
        plan = self.__dict__.get("_plan")
        if plan is not None:
            return plan
        slot_of = {id(kt): i for i, kt in enumerate(self._inputs)}
        for j, node in enumerate(self._nodes):
            slot_of[id(node)] = len(self._inputs) + j
        keep = {slot_of[id(kt)] for kt in self._outputs}
        last_reader: dict[int, int] = {}
        for j, node in enumerate(self._nodes):
            for parent in node.parents:
                last_reader[slot_of[id(parent)]] = j
        final = self._outputs[0] if self._one_output else None
        steps = []
        for j, node in enumerate(self._nodes):
            parents = tuple(slot_of[id(p)] for p in node.parents)
            release = tuple(sorted({s for s in parents if last_reader[s] == j and s not in keep}))
            layer_index = next(i for i, lay in enumerate(self._graph_layers) if lay is node.layer)
            steps.append((layer_index, parents, len(self._inputs) + j, node.call_training,
                          node.call_extra, node.output_index, id(node.call),
                          node is final and node.output_index is None, release))
        plan = (len(self._inputs) + len(self._nodes),
                [slot_of[id(kt)] for kt in self._outputs], steps)
        self.__dict__["_plan"] = plan
        return plan

    def call(self, inputs: Any, training: bool = False) -> Any:
        if isinstance(inputs, dict):
            inputs = standardize_inputs(self, inputs)
        given = [inputs] if not isinstance(inputs, (list, tuple)) else list(inputs)
        if len(given) != len(self._inputs):
            raise ConfigError(f"Model '{self.name}' expects {len(self._inputs)} input(s); "
                              f"received {len(given)}")
        size, output_slots, steps = self._replay_plan()
        # layers by position, not the plan's objects: a replica (nn.DataParallel copies a
        # module's __dict__, the plan with it) runs its own layers
        layers = list(self._graph_layers)
        values: list[Any] = given + [None] * (size - len(given))
        shared: dict[int, Any] = {}  # outputs of multi-output calls, computed once
        for layer_index, parents, slot, fixed_mode, extra, output_index, call_key, last, release \
                in steps:
            layer = layers[layer_index]
            if output_index is not None and call_key in shared:
                values[slot] = shared[call_key][output_index]
            else:
                mode = training if fixed_mode is None else fixed_mode
                if extra is not None:  # layer(x, y, factor=2.0): the call's other arguments
                    args = [values[p] for p in parents]
                    count = extra[0]
                    arg = args[0] if count == 1 else args[:count]
                    result = layer(arg, *fill_slots(extra[1], args[count:]), training=mode,
                                   **fill_slots(extra[2], args[count:]))
                else:
                    arg = values[parents[0]] if len(parents) == 1 else [values[p] for p in parents]
                    result = self._call_last(layer, arg, mode) if last \
                        else layer(arg, training=mode)
                if output_index is not None:
                    shared[call_key] = result
                    result = result[output_index]
                values[slot] = result
            for index in release:
                values[index] = None
        outs = [values[s] for s in output_slots]
        if self._output_keys is not None:
            return dict(zip(self._output_keys, outs))
        return outs[0] if self._one_output else outs

    def get_config(self) -> dict[str, Any]:
        layers = list(self._graph_layers)
        ref: dict[int, list[Any]] = {id(kt): ["input", i] for i, kt in enumerate(self._inputs)}
        nodes = []
        for j, node in enumerate(self._nodes):
            index = next(i for i, lay in enumerate(layers) if lay is node.layer)
            entry = [index, [ref[id(p)] for p in node.parents]]
            if node.output_index is not None:
                entry.append(node.output_index)
            call: dict[str, Any] = {}
            if node.call_training is not None:
                call["training"] = node.call_training
            if node.call_extra is not None:
                count, extra_args, extra_kwargs = node.call_extra
                call.update(inputs=count, args=encode_argument(list(extra_args)),
                            kwargs=encode_argument(dict(extra_kwargs)))
            if call:
                entry.append(call)
            nodes.append(entry)
            ref[id(node)] = ["node", j]
        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": [serialize_layer(layer) for layer in layers],
            "inputs": [{"batch_shape": list(kt.shape), "name": kt.name,
                        **({"dtype": kt.dtype} if kt.dtype != "float32" else {})}
                       for kt in self._inputs],
            "nodes": nodes,
            "outputs": [ref[id(kt)] for kt in self._outputs],
            "single_input": self._single_input,
            "single_output": self._single_output,
            **({"input_keys": self._input_keys} if self._input_keys else {}),
            **({"output_keys": self._output_keys} if self._output_keys else {}),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Functional:
        layers = [deserialize_layer(spec) for spec in config["layers"]]
        inputs = [Input(batch_shape=spec["batch_shape"], name=spec.get("name"),
                        dtype=spec.get("dtype")) for spec in config["inputs"]]
        made: list[KerasTensor] = []

        def resolve(ref: list[Any]) -> KerasTensor:
            kind, index = ref
            return inputs[index] if kind == "input" else made[index]

        calls: dict[str, Any] = {}  # multi-output calls, replayed once
        for layer_index, parents, *rest in config["nodes"]:
            args = [resolve(p) for p in parents]
            output_index = [r for r in rest if isinstance(r, int)]
            call_kwargs = dict(next((r for r in rest if isinstance(r, dict)), {}))
            count = int(call_kwargs.pop("inputs", len(args)))
            extra_args = fill_slots(decode_argument(call_kwargs.pop("args", [])), args[count:])
            if "kwargs" in call_kwargs:
                call_kwargs.update(fill_slots(decode_argument(call_kwargs.pop("kwargs")),
                                              args[count:]))
            main = args[0] if count == 1 else args[:count]
            if not output_index:
                made.append(layers[layer_index](main, *extra_args, **call_kwargs))
                continue
            key = repr((layer_index, parents))
            if key not in calls:
                calls[key] = layers[layer_index](main, *extra_args, **call_kwargs)
            made.append(calls[key][output_index[0]])
        outputs = [resolve(r) for r in config["outputs"]]
        if config.get("input_keys"):
            inputs = dict(zip(config["input_keys"], inputs))
        if config.get("output_keys"):
            outputs = dict(zip(config["output_keys"], outputs))
        return cls(inputs[0] if config.get("single_input", True) and not config.get("input_keys")
                   else inputs,
                   outputs[0] if config.get("single_output", True)
                   and not config.get("output_keys") else outputs,
                   name=config.get("name"), trainable=config.get("trainable", True))


register_model_class("Functional", Functional)
