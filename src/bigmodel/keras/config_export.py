"""bigmodel layers and models -> Keras 3 configs (the ``config.json`` of a ``.keras`` archive).

Keras 3 describes every object as ``{"module", "class_name", "config", "registered_name"}``;
functional models list each layer with the calls that feed it (``inbound_nodes`` whose arguments
point to earlier outputs through ``keras_history = [layer_name, node_index, tensor_index]``).
"""

from __future__ import annotations

import re
from typing import Any

from bigmodel.errors import BigModelError, ConfigError
from bigmodel.keras.layers.symbolic import fill_slots
from bigmodel.keras.model_classes import model_class
from bigmodel.keras.object_registry import CUSTOM_NAMES, CUSTOM_OBJECTS

#: Layers that exist only in bigmodel: written with module "bigmodel.keras.layers".
BIGMODEL_ONLY_LAYERS = frozenset({"RecurrentConv2D"})
_NESTED_MODULES = (("_initializer", "keras.initializers"), ("_regularizer", "keras.regularizers"),
                   ("_constraint", "keras.constraints"))
WRAPPER_KEYS = ("layer", "backward_layer", "cell", "cells")  # keys holding nested layer specs
# keras.ops functions (recorded for ``x + y``, ``ops.exp(x)`` ... on Keras tensors) whose Keras
# operation class (``keras.src.ops.numpy.<CamelName>``) takes no constructor arguments: the graph
# node holds only the call's arguments, so both libraries describe it the same way.
KERAS_NUMPY_OPS = frozenset({
    "add", "subtract", "multiply", "divide", "true_divide", "maximum", "minimum", "power",
    "matmul", "negative", "absolute", "exp", "log", "sqrt", "square", "tanh", "mod",
    "floor_divide", "equal", "not_equal", "less", "greater", "less_equal", "greater_equal"})


def _camel(op: str) -> str:
    return "".join(part.capitalize() for part in op.split("_"))


def op_snake_name(class_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


_FLOAT32_POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                   "registered_name": None}


def _keras_module(cls: type) -> tuple[str, str | None]:
    """(module, registered_name) Keras writes for a layer class."""
    registered = CUSTOM_NAMES.get(cls)
    if registered is not None:
        return cls.__module__, registered
    if "keras_module" in vars(cls):  # a Keras class living outside keras.layers
        return cls.keras_module, cls.__name__  # (keras.applications' CustomScaleLayer, ...)
    if cls.__module__.startswith("bigmodel.keras"):
        if cls.__name__ in ("Sequential", "Functional"):
            return "keras", None
        if cls.__name__ in BIGMODEL_ONLY_LAYERS:
            return "bigmodel.keras.layers", f"bigmodel>{cls.__name__}"
        return "keras.layers", None
    return cls.__module__, cls.__name__


def _value_to_keras(key: str, value: Any) -> Any:
    """A bigmodel config value in Keras form (nested objects get their ``module``)."""
    from bigmodel.keras.layers.layer_registry import get_layer_class

    if isinstance(value, dict) and "class_name" in value and "config" in value:
        if key in WRAPPER_KEYS or key == "layers":
            return spec_to_keras(value, get_layer_class(value["class_name"]))
        module = next((m for suffix, m in _NESTED_MODULES if key.endswith(suffix)), "keras")
        return {"module": module, "class_name": value["class_name"],
                "config": value["config"], "registered_name": None}
    if isinstance(value, str) and key.endswith("activation"):
        registered = _registered_function(value)
        if registered is not None:  # Keras's form of a registered custom function
            return {"module": getattr(registered[1], "__module__", None),
                    "class_name": "function", "config": value, "registered_name": registered[0]}
    if key in ("cells", "layers") and isinstance(value, list):  # StackedRNNCells, Pipeline
        return [_value_to_keras(key, item) for item in value]
    if isinstance(value, tuple):
        return list(value)
    return value


def _registered_function(name: str) -> tuple[str, Any] | None:
    """(registered name, function) of a registered non-class callable called ``name``."""
    from bigmodel.keras import activations

    try:
        activations.get(name)
        return None  # a built-in activation: Keras writes its name
    except BigModelError:
        pass
    for key, obj in CUSTOM_OBJECTS.items():
        if callable(obj) and not isinstance(obj, type) and getattr(obj, "__name__", "") == name:
            return key, obj
    return None


def spec_to_keras(spec: dict[str, Any], cls: type) -> dict[str, Any]:
    """A bigmodel ``{"class_name", "config"}`` layer spec as a Keras 3 layer spec."""
    module, registered = _keras_module(cls)
    config = {k: _value_to_keras(k, v) for k, v in spec["config"].items()}
    if registered is None or registered.startswith("bigmodel>"):  # bigmodel's own layers
        config.pop("batch_input_shape", None)  # the model's InputLayer declares the input
        if config.get("trainable") is True:  # the default; a few Keras layers (SpatialDropout)
            del config["trainable"]          # take no such argument
        if spec["class_name"] not in ("InputLayer", "Pipeline"):  # Pipeline takes no dtype
            config.setdefault("dtype", dict(_FLOAT32_POLICY))
    return {"module": module, "class_name": spec["class_name"], "config": config,
            "registered_name": registered}


def layer_to_keras(layer: Any) -> dict[str, Any]:
    """Keras 3 spec of a layer or model object (Sequential/Functional in Keras's graph form)."""
    from bigmodel.keras.layers.layer_registry import serialize_layer

    if type(layer) is model_class("Sequential"):
        return _sequential_to_keras(layer)
    if type(layer) is model_class("Functional"):
        return _functional_to_keras(layer)
    if isinstance(layer, model_class("Model")) and type(layer) not in CUSTOM_NAMES:
        raise ConfigError(f"Model '{layer.name}' ({type(layer).__name__}) is a subclassed model: "
                          "a .keras file can only describe it when its class is registered with "
                          "keras.saving.register_keras_serializable() and implements get_config()"
                          "; save the weights with save_weights() instead")
    return spec_to_keras(serialize_layer(layer), type(layer))


def _input_layer_spec(shape: Any, dtype: str, name: str) -> dict[str, Any]:
    return {"module": "keras.layers", "class_name": "InputLayer",
            "config": {"batch_shape": list(shape), "dtype": dtype, "sparse": False,
                       "ragged": False, "name": name, "optional": False},
            "registered_name": None}


def _sequential_to_keras(model: Any) -> dict[str, Any]:
    shape = model._declared_input_shape
    layers = [] if shape is None else [_input_layer_spec(shape, "float32",
                                                         f"{model.name}_input")]
    layers += [layer_to_keras(layer) for layer in model.layers]
    config = {"name": model.name, "trainable": model.trainable, "dtype": dict(_FLOAT32_POLICY),
              "layers": layers}
    if shape is not None:
        config["build_input_shape"] = list(shape)
    return {"module": "keras", "class_name": "Sequential", "config": config,
            "registered_name": None}


def keras_layer_order(model: Any, include_ops: bool = False) -> list[Any]:
    """``model.layers`` in the order Keras 3 lists a functional model's operations (see
    ``Functional.keras_order``), without the InputLayers; keras.ops nodes too with
    ``include_ops``. The weights file names layers by their index among layers of the same class
    in this order, so both directions must agree on it."""
    if not isinstance(model, model_class("Functional")):
        return list(model.layers)
    return model.keras_order(include_inputs=False, include_ops=include_ops)


def _op_to_keras(layer: Any) -> dict[str, Any]:
    """A keras.ops node as Keras 3 writes it (only operations without constructor arguments)."""
    if layer.op not in KERAS_NUMPY_OPS:
        raise ConfigError(f"Model node '{layer.name}' is keras.ops.{layer.op}, which a .keras "
                          "file cannot describe here yet (supported: "
                          f"{', '.join(sorted(KERAS_NUMPY_OPS))}); use a layer, or save the "
                          "weights with save_weights()")
    return {"module": "keras.src.ops.numpy", "class_name": _camel(layer.op),
            "config": {"name": layer.name}, "registered_name": _camel(layer.op)}


def _functional_to_keras(model: Any) -> dict[str, Any]:
    from bigmodel.keras.layers.attention import MultiHeadAttention
    from bigmodel.keras.layers.attention_gqa import GroupQueryAttention

    history: dict[int, list[Any]] = {id(kt): [kt.name, 0, 0] for kt in model.inputs}
    operations = keras_layer_order(model, include_ops=True)
    inbound: dict[int, list[dict[str, Any]]] = {id(lay): [] for lay in operations}
    call_index: dict[int, int] = {}  # multi-output calls: one Keras node for all outputs

    def ref(kt: Any) -> dict[str, Any]:
        return {"class_name": "__keras_tensor__",
                "config": {"shape": list(kt.shape), "dtype": kt.dtype,
                           "keras_history": history[id(kt)]}}

    for node in model._nodes:
        layer = node.layer
        if node.output_index is not None and id(node.call) in call_index:
            history[id(node)] = [layer.name, call_index[id(node.call)], node.output_index]
            continue
        parents = [ref(p) for p in node.parents]
        kwargs: dict[str, Any] = {}
        if getattr(layer, "is_op_node", False):
            args, kwargs = fill_slots(list(layer.op_args), parents), fill_slots(dict(layer.op_kwargs),
                                                                      parents)
        elif isinstance(layer, (MultiHeadAttention, GroupQueryAttention)):
            args = parents  # call(query, value, key)
            kwargs.update(getattr(layer, "_symbolic_kwargs", {}) or {})
            if node.call_extra is not None:  # GroupQueryAttention: use_causal_mask of this call
                kwargs.update(node.call_extra[2])
        else:
            extra = node.call_extra  # other call arguments: (number of inputs, args, kwargs)
            count = len(parents) if extra is None else extra[0]
            args = [parents[0]] if count == 1 else [parents[:count]]
            if extra is not None:
                args += fill_slots(list(extra[1]), parents[count:])
                kwargs.update(fill_slots(dict(extra[2]), parents[count:]))
        if node.call_training is not None:
            kwargs["training"] = node.call_training
        index = len(inbound[id(layer)])
        inbound[id(layer)].append({"args": args, "kwargs": kwargs})
        if node.output_index is not None:
            call_index[id(node.call)] = index
        history[id(node)] = [layer.name, index, node.output_index or 0]

    layers = []
    for kt in model.inputs:
        spec = _input_layer_spec(kt.shape, kt.dtype, kt.name)
        layers.append({**spec, "name": kt.name, "inbound_nodes": []})
    for layer in operations:
        spec = _op_to_keras(layer) if getattr(layer, "is_op_node", False) \
            else layer_to_keras(layer)
        layers.append({**spec, "name": layer.name, "inbound_nodes": inbound[id(layer)]})
    inputs = [history[id(kt)] for kt in model.inputs]
    outputs = [history[id(kt)] for kt in model.outputs]
    config = {"name": model.name, "trainable": model.trainable, "layers": layers,
              "input_layers": inputs[0] if model._single_input else inputs,
              "output_layers": outputs[0] if model._single_output else outputs}
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "config": config, "registered_name": "Functional"}
