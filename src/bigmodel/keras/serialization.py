"""Keras 3 object serialization: the registry of custom classes, and the translation between the
``config.json`` of a real Keras 3 ``.keras`` archive and bigmodel's layer configs.

Keras 3 describes every object as ``{"module", "class_name", "config", "registered_name"}``;
functional models list each layer with the calls that feed it (``inbound_nodes`` whose arguments
point to earlier outputs through ``keras_history = [layer_name, node_index, tensor_index]``).
Loading only looks classes up — bigmodel's own layers, classes registered with
:func:`register_keras_serializable` or passed as ``custom_objects`` — and never imports a module
or runs code named in a file; a ``Lambda`` holding Python bytecode is refused unless the caller
passes ``safe_mode=False``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from bigmodel.errors import BigModelError, ConfigError, UnknownNameError

# Keras's global custom-object dict: "package>Name" -> class or function (users may edit it).
_CUSTOM_OBJECTS: dict[str, Any] = {}
_CUSTOM_NAMES: dict[Any, str] = {}

#: Layers that exist only in bigmodel: written with module "bigmodel.keras.layers".
BIGMODEL_ONLY_LAYERS = frozenset({"RecurrentConv2D"})
_NESTED_MODULES = (("_initializer", "keras.initializers"), ("_regularizer", "keras.regularizers"),
                   ("_constraint", "keras.constraints"))
_WRAPPER_KEYS = ("layer", "backward_layer", "cell")  # config keys holding nested layer specs
_BOOKKEEPING = ("module", "registered_name", "shared_object_id", "build_config",
                "compile_config")
# Keras options that only matter when another option is on (e.g. BatchNormalization's renorm).
_INERT_WHEN_OFF = {"renorm_momentum": "renorm", "renorm_clipping": "renorm"}
# keras.ops functions (recorded for ``x + y``, ``ops.exp(x)`` ... on Keras tensors) whose Keras
# operation class (``keras.src.ops.numpy.<CamelName>``) takes no constructor arguments: the graph
# node holds only the call's arguments, so both libraries describe it the same way.
KERAS_NUMPY_OPS = frozenset({
    "add", "subtract", "multiply", "divide", "true_divide", "maximum", "minimum", "power",
    "matmul", "negative", "absolute", "exp", "log", "sqrt", "square", "tanh", "mod",
    "floor_divide", "equal", "not_equal", "less", "greater", "less_equal", "greater_equal"})


def _camel(op: str) -> str:
    return "".join(part.capitalize() for part in op.split("_"))


def _op_snake(class_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


class _KerasOp:
    """Marker: a file entry that is a keras.ops operation, replayed with ``symbolic_call``."""

_FLOAT32_POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                   "registered_name": None}


class UnknownObjectError(UnknownNameError):
    """A file names a class that is neither a bigmodel layer nor registered by the user."""


def register_keras_serializable(package: str = "Custom", name: str | None = None) -> Callable:
    """Decorator registering a class or function as ``"package>name"`` (Keras semantics).

    Only registered (or ``custom_objects=``) classes can be loaded from a file.

    Raises:
        ConfigError: ``package`` contains ``>``.
    """
    if ">" in str(package):
        raise ConfigError(f"register_keras_serializable: package cannot contain '>'; "
                          f"received package={package!r}")

    def decorator(obj: Any) -> Any:
        key = f"{package}>{name or obj.__name__}"
        _CUSTOM_OBJECTS[key] = obj
        _CUSTOM_NAMES[obj] = key
        return obj

    return decorator


def get_custom_objects() -> dict[str, Any]:
    """The live global dict of registered objects (``get_custom_objects()["Name"] = cls`` works)."""
    return _CUSTOM_OBJECTS


def get_registered_name(obj: Any) -> str:
    """``"package>Name"`` for a registered object, else its ``__name__``."""
    return _CUSTOM_NAMES.get(obj, getattr(obj, "__name__", type(obj).__name__))


def get_registered_object(name: str, custom_objects: dict[str, Any] | None = None) -> Any:
    """The object registered (or passed in ``custom_objects``) under ``name``, else ``None``."""
    for table in (custom_objects or {}, _CUSTOM_OBJECTS):
        if name in table:
            return table[name]
    return None


# ----------------------------------------------------------------------------------- export
def _keras_module(cls: type) -> tuple[str, str | None]:
    """(module, registered_name) Keras writes for a layer class."""
    registered = _CUSTOM_NAMES.get(cls)
    if registered is not None:
        return cls.__module__, registered
    if cls.__module__.startswith("bigmodel.keras"):
        if cls.__name__ in ("Sequential", "Functional"):
            return "keras", None
        if cls.__name__ in BIGMODEL_ONLY_LAYERS:
            return "bigmodel.keras.layers", f"bigmodel>{cls.__name__}"
        return "keras.layers", None
    return cls.__module__, cls.__name__


def _value_to_keras(key: str, value: Any) -> Any:
    """A bigmodel config value in Keras form (nested objects get their ``module``)."""
    from bigmodel.keras.layers.base import get_layer_class

    if isinstance(value, dict) and "class_name" in value and "config" in value:
        if key in _WRAPPER_KEYS or key == "layers":
            return spec_to_keras(value, get_layer_class(value["class_name"]))
        module = next((m for suffix, m in _NESTED_MODULES if key.endswith(suffix)), "keras")
        return {"module": module, "class_name": value["class_name"],
                "config": value["config"], "registered_name": None}
    if isinstance(value, str) and key.endswith("activation"):
        registered = _registered_function(value)
        if registered is not None:  # Keras's form of a registered custom function
            return {"module": getattr(registered[1], "__module__", None),
                    "class_name": "function", "config": value, "registered_name": registered[0]}
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
    for key, obj in _CUSTOM_OBJECTS.items():
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
        if spec["class_name"] != "InputLayer":
            config.setdefault("dtype", dict(_FLOAT32_POLICY))
    return {"module": module, "class_name": spec["class_name"], "config": config,
            "registered_name": registered}


def layer_to_keras(layer: Any) -> dict[str, Any]:
    """Keras 3 spec of a layer or model object (Sequential/Functional in Keras's graph form)."""
    from bigmodel.keras.functional import Functional
    from bigmodel.keras.layers.base import serialize_layer
    from bigmodel.keras.model import Model
    from bigmodel.keras.sequential import Sequential

    if isinstance(layer, Sequential) and type(layer) is Sequential:
        return _sequential_to_keras(layer)
    if isinstance(layer, Functional) and type(layer) is Functional:
        return _functional_to_keras(layer)
    if isinstance(layer, Model) and type(layer) not in _CUSTOM_NAMES:
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
    """``model.layers`` in the order Keras 3 lists a functional model's operations.

    Keras orders operations by decreasing depth (longest path to an output), ties by the order a
    depth-first walk from the outputs first meets them. The weights file names layers by their
    index among layers of the same class in this order, so both directions must agree on it.
    """
    from bigmodel.keras.functional import Functional

    if not isinstance(model, Functional):
        return list(model.layers)
    first_seen: dict[int, int] = {}
    depth: dict[int, int] = {}
    post_order: list[Any] = []
    done: set[int] = set()

    def visit(kt: Any) -> None:
        owner = kt.layer if kt.layer is not None else kt
        first_seen.setdefault(id(owner), len(first_seen))
        if id(kt) in done:
            return
        for parent in kt.parents:
            visit(parent)
        done.add(id(kt))
        post_order.append(kt)

    for output in model.outputs:
        visit(output)
    node_depth: dict[int, int] = {}
    for kt in reversed(post_order):
        d = node_depth.setdefault(id(kt), 0)
        owner = kt.layer if kt.layer is not None else kt
        d = max(d, depth.get(id(owner), 0))
        depth[id(owner)] = d
        for parent in kt.parents:
            node_depth[id(parent)] = max(node_depth.get(id(parent), 0), d + 1)
    layers = list(model.layers)
    if include_ops:  # keras.ops nodes: operations in Keras, not layers
        known = {id(lay) for lay in layers}
        for kt in post_order:
            if kt.layer is not None and id(kt.layer) not in known:
                known.add(id(kt.layer))
                layers.append(kt.layer)
    return sorted(layers, key=lambda lay: (-depth.get(id(lay), 0), first_seen.get(id(lay), 0)))


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
            from bigmodel.keras.ops.node import _fill

            args, kwargs = _fill(list(layer.op_args), parents), _fill(dict(layer.op_kwargs),
                                                                      parents)
        elif isinstance(layer, MultiHeadAttention):
            args = parents  # call(query, value, key)
            kwargs.update(getattr(layer, "_symbolic_kwargs", {}) or {})
        else:
            args = [parents[0]] if len(parents) == 1 else [parents]
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


# ----------------------------------------------------------------------------------- import
def _op_caller(op: str) -> Callable[..., Any]:
    from bigmodel.keras.ops.node import symbolic_call

    return lambda *args, **kwargs: symbolic_call(op, args, kwargs)


class Importer:
    """Rebuilds bigmodel objects from Keras 3 specs, for one file.

    Args:
        where: the file (named in every error).
        custom_objects: user classes by class name or registered name.
        safe_mode: refuse Lambda bytecode (Keras default ``True``).
    """

    def __init__(self, where: str, custom_objects: dict[str, Any] | None = None,
                 safe_mode: bool = True):
        self.where = where
        self.custom_objects = dict(custom_objects or {})
        self.safe_mode = safe_mode
        self.attention_axes: dict[str, list[int]] = {}

    # --------------------------------------------------------------- classes
    def resolve(self, spec: dict[str, Any]) -> type:
        from bigmodel.keras.functional import Functional
        from bigmodel.keras.layers.base import _LAYER_CLASSES
        from bigmodel.keras.sequential import Sequential

        if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str):
            raise ConfigError(f"{self.where}: a layer entry must be an object with a "
                              f"'class_name'; received {str(spec)[:120]}")
        name = spec["class_name"]
        module = str(spec.get("module") or "")
        registered = spec.get("registered_name")
        for key in (registered, name):
            found = key and get_registered_object(key, self.custom_objects)
            if found is not None and found is not False:
                return found
        builtin = module == "keras" or module.startswith(("keras.", "bigmodel."))
        if builtin and name in ("Sequential", "Functional", "Model"):
            return Sequential if name == "Sequential" else Functional
        if module.startswith("keras.src.ops"):
            if module == "keras.src.ops.numpy" and _op_snake(name) in KERAS_NUMPY_OPS:
                return _KerasOp
            raise UnknownObjectError(
                f"{self.where}: layer '{spec.get('name') or name}' is the Keras operation "
                f"'{name}' ({module}), written for a keras.ops call on symbolic tensors; "
                "bigmodel rebuilds only the element-wise numpy operations from a file "
                f"({', '.join(sorted(KERAS_NUMPY_OPS))})")
        cls = _LAYER_CLASSES.get(name)
        if builtin and cls is not None and cls.__module__.startswith("bigmodel.keras"):
            return cls
        if builtin:
            raise UnknownObjectError(
                f"{self.where}: layer class '{name}' ({module}) is not supported by bigmodel "
                "(see docs/keras.md for the supported layers)")
        raise UnknownObjectError(
            f"{self.where}: unknown class '{name}' (module '{module}', registered name "
            f"'{registered}'). Loading never imports or runs code named in a file: register "
            "the class with @keras.saving.register_keras_serializable() or pass "
            f"custom_objects={{'{registered or name}': {name}}} to load_model()")

    # --------------------------------------------------------------- configs
    def clean(self, key: str, value: Any) -> Any:
        """A Keras config value in bigmodel form (nested objects without bookkeeping)."""
        if isinstance(value, dict):
            if value.get("class_name") == "__lambda__":
                return value  # judged by lambda_function()
            if key in _WRAPPER_KEYS and "class_name" in value:
                return value  # nested layer: converted by layer()
            if value.get("class_name") == "function":
                return self.function(value)
            if value.get("class_name") == "DTypePolicy" or key == "dtype":
                return (value.get("config") or {}).get("name", "float32")
            out = {k: self.clean(k, v) for k, v in value.items() if k not in _BOOKKEEPING}
            if isinstance(out.get("config"), dict):  # Keras 3.9+ initializer extras, off
                out["config"] = {k: v for k, v in out["config"].items()
                                 if not (k in ("input_axes", "output_axes") and v is None)}
            return out
        if isinstance(value, list):
            return [self.clean(key, v) for v in value]
        return value

    def _accepted(self, cls: type) -> tuple[set[str], bool]:
        """Constructor argument names along the MRO up to ``Layer`` (whose ``**kwargs`` refuses
        unknown names), and whether some class takes arbitrary ``**kwargs`` itself."""
        from bigmodel.keras.layers.base import Layer

        names: set[str] = set()
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            params = inspect.signature(init).parameters.values()
            names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
            if klass is Layer or not any(p.kind == p.VAR_KEYWORD for p in params):
                return names, False
        return names, True

    def layer_config(self, cls: type, spec: dict[str, Any]) -> dict[str, Any]:
        raw = spec.get("config")
        if not isinstance(raw, dict):
            raise ConfigError(f"{self.where}: layer '{spec['class_name']}' has no config object")
        config = {k: self.clean(k, v) for k, v in raw.items()}
        where = f"{self.where}: layer '{config.get('name')}' ({spec['class_name']})"
        if config.get("dtype") in ("float32", None) and spec["class_name"] != "InputLayer":
            config.pop("dtype", None)
        if spec["class_name"] == "Lambda":
            config["function"] = self.lambda_function(config.get("function"), where)
        for key in _WRAPPER_KEYS:
            if isinstance(config.get(key), dict) and "class_name" in config[key]:
                nested = config[key]
                nested_cls = self.resolve(nested)
                config[key] = {"class_name": nested_cls.__name__,
                               "config": self.layer_config(nested_cls, nested)}
        if spec["class_name"] == "MultiHeadAttention" and config.get("attention_axes"):
            self.attention_axes[config["name"]] = list(config["attention_axes"])
            config["attention_axes"] = None  # checked against the query rank once built
        accepted, open_kwargs = self._accepted(cls)
        if cls.__module__.startswith("bigmodel.keras") and not open_kwargs:
            for key in list(config):
                if key in accepted:
                    continue
                flag = _INERT_WHEN_OFF.get(key)
                if config[key] in (None, False, [], {}) or key == "ragged" or (
                        flag is not None and not config.get(flag)):
                    config.pop(key)  # an option left off in Keras: nothing to carry over
                else:
                    raise ConfigError(f"{where}: argument {key}={config[key]!r} is not "
                                      "supported by bigmodel (see docs/keras.md)")
        return config

    def function(self, spec: dict[str, Any]) -> Any:
        """A function named in a file: a built-in activation's name, or a registered function."""
        from bigmodel.keras import activations

        name = spec.get("config")
        for key in (spec.get("registered_name"), name):
            found = key and get_registered_object(str(key), self.custom_objects)
            if found:
                return found
        if isinstance(name, str):
            try:
                activations.get(name)
                return name
            except BigModelError:
                pass
        raise UnknownObjectError(
            f"{self.where}: unknown function '{name}' (registered name "
            f"'{spec.get('registered_name')}'). Register it with "
            "@keras.saving.register_keras_serializable() or pass custom_objects")

    def lambda_function(self, function: Any, where: str) -> Any:
        """The function of a serialized Lambda: registered by name, or bytecode if allowed."""
        if isinstance(function, str):
            found = get_registered_object(function, self.custom_objects)
            if found is None:
                raise UnknownObjectError(f"{where}: function '{function}' is not registered; "
                                         "register it or pass custom_objects")
            return found
        if isinstance(function, dict) and function.get("class_name") == "__lambda__":
            if self.safe_mode:
                raise ConfigError(
                    f"{where}: the Lambda layer holds Python bytecode, and loading it would run "
                    "code stored in the file. Refused (safe_mode=True, the default). If you "
                    "trust the file, pass safe_mode=False to load_model() — that executes the "
                    "file's code — or rebuild the model in code and load only its weights")
            import base64
            import marshal
            import types
            import warnings

            warnings.warn(f"{where}: safe_mode=False: running Python bytecode from the file",
                          stacklevel=3)
            try:
                code = marshal.loads(base64.b64decode(function["config"]["code"]))  # noqa: S302
            except Exception as exc:
                raise ConfigError(f"{where}: the Lambda bytecode cannot be read by this Python "
                                  f"({exc})") from None
            return types.FunctionType(code, {})
        raise ConfigError(f"{where}: cannot read the Lambda function {str(function)[:80]}")

    # --------------------------------------------------------------- objects
    def layer(self, spec: dict[str, Any]) -> Any:
        """Build one layer or model from its Keras spec."""
        from bigmodel.keras.functional import Functional
        from bigmodel.keras.sequential import Sequential

        cls = self.resolve(spec)
        if cls is Sequential:
            return self.sequential(spec)
        if cls is Functional:
            return self.functional(spec)
        config = self.layer_config(cls, spec)
        try:
            return cls.from_config(config)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.where}: cannot build layer '{config.get('name')}' "
                              f"({spec['class_name']}) from its config: {exc}") from exc

    def sequential(self, spec: dict[str, Any]) -> Any:
        from bigmodel.keras.sequential import Sequential

        config = spec.get("config") or {}
        model = Sequential(name=config.get("name"), trainable=config.get("trainable", True))
        for entry in config.get("layers") or []:
            model.add(self.layer(entry))
        if not model.built and config.get("build_input_shape"):
            model.build(tuple(config["build_input_shape"]))
        return model

    def functional(self, spec: dict[str, Any]) -> Any:
        from bigmodel.keras.functional import Functional, Input

        config = spec.get("config") or {}
        entries = config.get("layers") or []
        made: dict[tuple[str, int, int], Any] = {}  # keras_history -> KerasTensor
        calls_done: dict[str, int] = {}
        layers: dict[str, Any] = {}
        for entry in entries:
            name = entry.get("name") or (entry.get("config") or {}).get("name")
            if entry.get("class_name") == "InputLayer":
                cfg = entry.get("config") or {}
                made[(name, 0, 0)] = Input(batch_shape=cfg.get("batch_shape"),
                                           dtype=cfg.get("dtype"), name=name)
            elif self.resolve(entry) is _KerasOp:
                layers[name] = _op_caller(_op_snake(entry["class_name"]))
                calls_done[name] = 0
            else:
                layers[name] = self.layer(entry)
                calls_done[name] = 0
        pending = [(e, e.get("name") or e["config"].get("name")) for e in entries
                   if e.get("class_name") != "InputLayer"]
        progress = True
        while pending and progress:
            progress = False
            for entry, name in list(pending):
                nodes = entry.get("inbound_nodes") or []
                while calls_done[name] < len(nodes):
                    node = nodes[calls_done[name]]
                    try:
                        args = self._resolve_refs(node.get("args", []), made)
                        kwargs = self._resolve_refs(node.get("kwargs", {}), made)
                    except KeyError:
                        break  # an input is not computed yet
                    self._check_attention_axes(name, args)
                    try:
                        out = layers[name](*args, **kwargs)
                    except BigModelError as exc:
                        raise type(exc)(f"{self.where}: calling layer '{name}' as the file "
                                        f"describes failed: {exc}") from exc
                    outs = out if isinstance(out, list) else [out]
                    for index, tensor in enumerate(outs):
                        made[(name, calls_done[name], index)] = tensor
                    calls_done[name] += 1
                    progress = True
                if calls_done[name] == len(nodes):
                    pending.remove((entry, name))
        if pending:
            raise ConfigError(f"{self.where}: model '{config.get('name')}' has layers whose "
                              f"inputs are never computed: {[n for _, n in pending][:5]}")

        def pick(refs: Any) -> Any:
            if refs and isinstance(refs[0], str):
                return [self._tensor(made, refs)], True
            return [self._tensor(made, r) for r in refs], False

        inputs, single_in = pick(config.get("input_layers") or [])
        outputs, single_out = pick(config.get("output_layers") or [])
        return Functional(inputs[0] if single_in else inputs,
                          outputs[0] if single_out else outputs,
                          name=config.get("name"), trainable=config.get("trainable", True))

    def _tensor(self, made: dict[tuple[str, int, int], Any], ref: Any) -> Any:
        key = (ref[0], int(ref[1]), int(ref[2]))
        if key not in made:
            raise ConfigError(f"{self.where}: the model refers to tensor {list(ref)}, which no "
                              "layer of the file produces")
        return made[key]

    def _resolve_refs(self, value: Any, made: dict[tuple[str, int, int], Any]) -> Any:
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                name, node, index = value["config"]["keras_history"]
                return made[(name, int(node), int(index))]
            return {k: self._resolve_refs(v, made) for k, v in value.items()}
        if isinstance(value, list):
            return [self._resolve_refs(v, made) for v in value]
        return value

    def _check_attention_axes(self, name: str, args: list[Any]) -> None:
        """Keras writes the axes it resolved; bigmodel attends over all of them (``None``)."""
        axes = self.attention_axes.get(name)
        shape = getattr(args[0] if args else None, "shape", None)
        if axes is not None and shape is not None and axes != list(range(1, len(shape) - 1)):
            raise ConfigError(f"{self.where}: layer '{name}' (MultiHeadAttention) uses "
                              f"attention_axes={axes} on inputs of rank {len(shape)}; bigmodel "
                              "supports attention over every non-batch, non-feature axis only")


# ----------------------------------------------------------------------------------- public API
def serialize_keras_object(obj: Any) -> Any:
    """Keras 3's description of ``obj``: a layer or model spec, a registered function's name, or
    plain JSON values unchanged.

    Raises:
        ConfigError: an object that has no Keras description (e.g. an unregistered function).
    """
    from bigmodel.keras.layers.base import Layer

    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [serialize_keras_object(item) for item in obj]
    if isinstance(obj, dict):
        return {key: serialize_keras_object(value) for key, value in obj.items()}
    if isinstance(obj, Layer):
        return layer_to_keras(obj)
    if obj in _CUSTOM_NAMES:
        return {"module": getattr(obj, "__module__", None), "class_name": "function",
                "config": _CUSTOM_NAMES[obj], "registered_name": _CUSTOM_NAMES[obj]}
    raise ConfigError(f"serialize_keras_object: cannot describe {type(obj).__name__} {obj!r:.60}"
                      "; register it with keras.saving.register_keras_serializable()")


def deserialize_keras_object(config: Any, custom_objects: dict[str, Any] | None = None,
                             safe_mode: bool = True, **kwargs: Any) -> Any:
    """Rebuild what :func:`serialize_keras_object` (or real Keras 3) described; only bigmodel's
    own classes and registered ones are used, and nothing from the description is executed.

    Raises:
        UnknownObjectError: an unregistered class or function.
    """
    if kwargs:
        raise ConfigError(f"deserialize_keras_object: unsupported arguments {sorted(kwargs)}")
    importer = Importer("deserialize_keras_object", custom_objects, safe_mode)
    if config is None or isinstance(config, (bool, int, float)):
        return config
    if isinstance(config, str):
        found = get_registered_object(config, custom_objects)
        return config if found is None else found
    if isinstance(config, list):
        return [deserialize_keras_object(item, custom_objects, safe_mode) for item in config]
    if isinstance(config, dict) and config.get("class_name") == "function":
        name = config.get("registered_name") or config.get("config")
        found = get_registered_object(str(name), custom_objects)
        if found is None:
            raise UnknownObjectError(f"deserialize_keras_object: function '{name}' is not "
                                     "registered; register it or pass custom_objects")
        return found
    if isinstance(config, dict) and "class_name" in config:
        return importer.layer(config)
    raise ConfigError(f"deserialize_keras_object: cannot interpret {str(config)[:80]}")


def model_from_json(json_string: str, custom_objects: dict[str, Any] | None = None) -> Any:
    """A new model (fresh weights) from the JSON of ``model.to_json()`` or real Keras 3.

    Raises:
        ConfigError: the string is not JSON or describes no layer.
    """
    import json

    try:
        config = json.loads(json_string)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"model_from_json: the string is not JSON: {exc}") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ConfigError("model_from_json: expected a Keras model description with "
                          f"'class_name'; received {str(config)[:80]}")
    return Importer("model_from_json", custom_objects).layer(config)


def clone_model(model: Any, input_tensors: Any = None, clone_function: Any = None,
                call_function: Any = None, recursive: bool = False, **kwargs: Any) -> Any:
    """A new model with the same architecture and freshly initialized weights (Keras 3).

    Raises:
        NotSupportedError: ``input_tensors``, ``clone_function`` or ``call_function``.
    """
    if input_tensors is not None or clone_function is not None or call_function is not None \
            or kwargs:
        from bigmodel.errors import NotSupportedError

        raise NotSupportedError("clone_model: only clone_model(model) is supported; received "
                                "input_tensors/clone_function/call_function or other arguments "
                                "(see docs/keras.md)")
    return Importer(f"clone_model({model.name})").layer(layer_to_keras(model))
