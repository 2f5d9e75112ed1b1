"""Keras 3 configs (``config.json`` of a ``.keras`` archive, written by real Keras or by
bigmodel) -> bigmodel layers and models.

Classes are only looked up — bigmodel's own layers, classes registered with
``keras.saving.register_keras_serializable`` or passed as ``custom_objects`` — never imported or
run; a ``Lambda`` holding Python bytecode is refused unless the caller passes ``safe_mode=False``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from bigmodel.errors import BigModelError, ConfigError
from bigmodel.keras.config_export import KERAS_NUMPY_OPS, WRAPPER_KEYS, op_snake_name
from bigmodel.keras.model_classes import model_class
from bigmodel.keras.object_registry import UnknownObjectError, get_registered_object

_BOOKKEEPING = ("module", "registered_name", "shared_object_id", "build_config",
                "compile_config")
# Keras options that only matter when another option is on (e.g. BatchNormalization's renorm).
_INERT_WHEN_OFF = {"renorm_momentum": "renorm", "renorm_clipping": "renorm"}


class _KerasOp:
    """Marker: a file entry that is a keras.ops operation, replayed with ``symbolic_call``."""


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
        from bigmodel.keras.layers.layer_registry import LAYER_CLASSES

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
            return model_class("Sequential" if name == "Sequential" else "Functional")
        if module.startswith("keras.src.ops"):
            if module == "keras.src.ops.numpy" and op_snake_name(name) in KERAS_NUMPY_OPS:
                return _KerasOp
            raise UnknownObjectError(
                f"{self.where}: layer '{spec.get('name') or name}' is the Keras operation "
                f"'{name}' ({module}), written for a keras.ops call on symbolic tensors; "
                "bigmodel rebuilds only the element-wise numpy operations from a file "
                f"({', '.join(sorted(KERAS_NUMPY_OPS))})")
        cls = LAYER_CLASSES.get(name)
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
            if key in WRAPPER_KEYS and "class_name" in value:
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
        for key in WRAPPER_KEYS:
            if isinstance(config.get(key), dict) and "class_name" in config[key]:
                nested = config[key]
                nested_cls = self.resolve(nested)
                config[key] = {"class_name": nested_cls.__name__,
                               "config": self.layer_config(nested_cls, nested)}
        if isinstance(config.get("cells"), list):  # StackedRNNCells
            config["cells"] = [{"class_name": self.resolve(cell).__name__,
                                "config": self.layer_config(self.resolve(cell), cell)}
                               for cell in config["cells"]]
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
        cls = self.resolve(spec)
        if cls is model_class("Sequential"):
            return self.sequential(spec)
        if cls is model_class("Functional"):
            return self.functional(spec)
        config = self.layer_config(cls, spec)
        try:
            return cls.from_config(config)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.where}: cannot build layer '{config.get('name')}' "
                              f"({spec['class_name']}) from its config: {exc}") from exc

    def sequential(self, spec: dict[str, Any]) -> Any:
        config = spec.get("config") or {}
        model = model_class("Sequential")(name=config.get("name"), trainable=config.get("trainable", True))
        for entry in config.get("layers") or []:
            model.add(self.layer(entry))
        if not model.built and config.get("build_input_shape"):
            model.build(tuple(config["build_input_shape"]))
        return model

    def functional(self, spec: dict[str, Any]) -> Any:
        from bigmodel.keras.layers.lambda_layer import Input

        functional_class = model_class("Functional")
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
                layers[name] = _op_caller(op_snake_name(entry["class_name"]))
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
        return functional_class(inputs[0] if single_in else inputs,
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
