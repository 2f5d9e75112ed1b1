"""``keras.Model``: a Layer that can be compiled and trained.

The training loop is the engine's (:class:`bigmodel.engine.Trainer`); this class holds the model's
structure, calling, ``compile`` (``accuracy`` resolution, metric adapters) and I/O; ``fit`` /
``evaluate`` / ``predict`` translate the Keras calling conventions into the engine in
``keras/model_training.py`` (``TrainingMixin``), the ``steps_per_epoch`` loops in
``keras/trainer_steps.py``.

Three ways to make a model, as in Keras: ``Sequential([...])``, the functional
``Model(inputs, outputs)``, and subclassing ``Model`` with a ``call`` method.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bigmodel.data.batching import tree_leaves, tree_map
from bigmodel.engine.metric_base import Metric as EngineMetric
from bigmodel.errors import (
    ConfigError,
    InputTypeError,
    NotBuiltError,
)
from bigmodel.keras import losses as losses_mod
from bigmodel.keras import metrics as metrics_mod
from bigmodel.keras import optimizers as optimizers_mod
from bigmodel.keras.compile_utils import CompileMetrics, names_of_outputs, output_keys
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.call_context import DIRECT_DISPATCH
from bigmodel.keras.layers.call_signature import call_signature
from bigmodel.keras.layers.layer_state import child_layers
from bigmodel.keras.layers.symbolic import KerasTensor, is_shape_list
from bigmodel.keras.model_classes import model_class, register_model_class
from bigmodel.keras.model_data import ModelDataMixin, is_array_like
from bigmodel.keras.model_files import ModelFilesMixin
from bigmodel.keras.model_inputs import (
    input_adjusted,
    integer_input,
    is_structure,
    standardize_inputs,
)
from bigmodel.keras.model_training import TrainingMixin
from bigmodel.keras.py_dataset import PyDataset
from bigmodel.keras.string_inputs import is_string_array, string_ids
from bigmodel.keras.trainer_steps import (
    StepsMixin,
)

_FUNCTIONAL_SUBCLASSES: dict[type, type] = {}


def _functional_call(args: tuple, kwargs: dict) -> bool:
    """``Model(inputs, outputs)`` (positional or keyword): symbolic tensors, not layer lists."""
    if "inputs" in kwargs or "outputs" in kwargs:
        return True
    first = args[0] if args else None
    if isinstance(first, dict):
        first = next(iter(first.values()), None)
    elif isinstance(first, (list, tuple)):
        first = first[0] if first else None
    return isinstance(first, KerasTensor)


def _functional_subclass(cls: type) -> type:
    """``Functional`` itself for ``keras.Model``; for a user subclass of Model, a class deriving
    from both (its own methods first, e.g. ``train_step``), made once per subclass."""
    Functional = model_class("Functional")  # noqa: N806 - a class, found by kind
    if cls is Model or issubclass(cls, Functional) or not issubclass(cls, Model):
        return Functional if cls is Model else cls
    made = _FUNCTIONAL_SUBCLASSES.get(cls)
    if made is None:
        made = type(cls.__name__, (cls, Functional), {"__module__": cls.__module__})
        _FUNCTIONAL_SUBCLASSES[cls] = made
    return made


class Model(ModelFilesMixin, TrainingMixin, StepsMixin, ModelDataMixin, Layer):
    """A trainable stack or graph of layers with Keras's ``compile``/``fit``/``predict``.

    Functional use: ``Model(inputs, outputs)`` with ``inputs = keras.Input(shape=...)``.
    Subclassing: create layers in ``__init__`` and override ``call(inputs, training=False)``.
    """

    def __init__(self, *args: Any, name: str | None = None, trainable: bool = True,
                 **kwargs: Any):
        if _functional_call(args, kwargs):
            # A subclass whose __init__ calls super().__init__(inputs=..., outputs=...): it
            # becomes a functional model of its own class, as in Keras.
            functional = _functional_subclass(type(self))
            object.__setattr__(self, "__class__", functional)
            functional.__mro__[functional.__mro__.index(Model) - 1].__init__(
                self, *args, name=name, trainable=trainable, **kwargs)
            return
        super().__init__(name=name, trainable=trainable, **kwargs)
        self._init_training_state()

    def __new__(cls, *args: Any, **kwargs: Any) -> Model:
        # keras.Model(inputs, outputs) builds a functional model, as in Keras; so does a
        # subclass called that way (``CustomModel(inputs, outputs)``).
        if _functional_call(args, kwargs) and not getattr(cls, "_is_stack", False):
            return super().__new__(_functional_subclass(cls))
        return super().__new__(cls)

    def _init_training_state(self) -> None:
        self.optimizer: Any = None
        self.loss: losses_mod.Loss | None = None
        self.compiled = False
        self._metric_ids: list[Any] = []
        self._metrics: list[Any] | None = None
        self._trainer: Any = None
        self._stop_training = False
        self._logits_mode = False
        self._use_logits = False
        self._loss_weight = 1.0
        self._compile_config: dict[str, Any] | None = None
        self._compile_loss: Any = None
        self._compile_metrics: Any = None
        self._loss_tracker: Any = None

    # ----------------------------------------------------------------------------- structure
    @property
    def layers(self) -> list[Layer]:
        return child_layers(self)

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        layers = self.layers
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ConfigError(f"get_layer: index {index} out of range for a model with "
                                  f"{len(layers)} layers")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ConfigError(f"No such layer: '{name}'. Existing layers are: "
                          f"{[lay.name for lay in layers]}")

    @property
    def input_shape(self) -> tuple | None:
        return self._declared_input_shape

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        out = getattr(self, "_call_output", None)
        if self._is_subclassed() and out is None and not is_shape_list(input_shape) \
                and all(d is not None for d in tuple(input_shape)[1:]):
            device = next((p.device for p in self.parameters()), None)
            self._build_on(torch.zeros([1 if d is None else int(d) for d in input_shape],
                                       device=device))
            out = self._call_output
        if self._is_subclassed() and isinstance(out, torch.Tensor):
            return (None, *out.shape[1:])
        if self._is_subclassed() and isinstance(out, (list, tuple)):
            return [(None, *o.shape[1:]) for o in out]
        shape = tuple(input_shape)
        for layer in self.layers:
            if isinstance(layer, Layer) and not is_shape_list(shape):
                layer._check_input_shape(shape)  # the ShapeError a call would give, not an IndexError
            shape = layer.compute_output_shape(shape)
        return shape

    @property
    def output_shape(self) -> tuple:
        if self._declared_input_shape is None:
            raise NotBuiltError(f"Model '{self.name}' has no known input shape yet; call it on "
                                "data or build(input_shape) first")
        return self.compute_output_shape(self._declared_input_shape)

    def build(self, input_shape: Sequence[int | None]) -> None:
        """Create every layer's weights for inputs of ``input_shape`` (batch dimension first).

        A subclassed model is built by running its ``call`` on zeros of that shape (unless it
        defines ``build`` itself and calls this from there: then it is only marked built).
        """
        if self._is_subclassed():
            if type(self).build is Model.build and input_shape is not None:
                shapes = input_shape if is_shape_list(input_shape) else [input_shape]
                zeros = [torch.zeros([1 if d is None else int(d) for d in shape])
                         for shape in shapes]
                self._build_on(zeros if is_shape_list(input_shape) else zeros[0])
                if not is_shape_list(input_shape):
                    self._declared_input_shape = tuple(input_shape)
            self.built = True
            return
        shape = tuple(input_shape)
        for layer in self.layers:
            layer._maybe_build(shape)
            shape = layer.compute_output_shape(shape)
        if self._declared_input_shape is None:
            self._declared_input_shape = tuple(input_shape)
        self.built = True

    # ----------------------------------------------------------------------------- calling
    def _standardize_input(self, x: Any) -> torch.Tensor:
        """Tensor from array; Keras 3's input adjustments (dtype, a missing trailing 1-axis)."""
        if isinstance(x, np.ndarray):
            if is_string_array(x):  # strings travel as interned ids to the string layers
                x = string_ids(x, f"Model '{self.name}' input")
            elif x.dtype.kind not in "biuf":
                raise InputTypeError(f"Model '{self.name}': inputs must hold numbers; received "
                                     f"dtype {x.dtype}")
            else:
                x = torch.from_numpy(np.ascontiguousarray(x))
        if not isinstance(x, torch.Tensor):
            raise InputTypeError(f"Model '{self.name}' expects a tensor or NumPy array; received "
                                 f"{type(x).__name__}")
        return input_adjusted(x, self._declared_input_shape, integer_input(self, 0))

    def forward(self, inputs: Any, training: bool | None = None, **kwargs: Any) -> Any:
        given = inputs
        inputs = standardize_inputs(self, inputs)
        if inputs is given and not kwargs and type(inputs) is torch.Tensor and self.built \
                and getattr(inputs, "_keras_mask", None) is None:
            # a later call with this input signature may skip the conversion, which left it as
            # it is, and the dispatch (Layer._call_direct)
            plain = True
        else:
            plain = False
        if training is None:
            training = self.training
        if not self.built:
            if isinstance(inputs, torch.Tensor) and not self._is_subclassed():
                self._build_on(inputs)
            elif isinstance(inputs, torch.Tensor) and self._declared_input_shape is None:
                self._declared_input_shape = (None, *inputs.shape[1:])
            self.built = True  # a subclassed model's layers build lazily inside its call
        signature = call_signature(type(self))
        if signature.training:
            kwargs["training"] = training
        if "mask" in kwargs and not signature.mask:
            kwargs.pop("mask")
        outputs = self.call(inputs, **kwargs)
        if plain:
            self._remember_input(inputs)
        return outputs

    def _is_subclassed(self) -> bool:
        """A model with its own ``call`` (not Sequential/functional): its layers are not a stack."""
        return not getattr(type(self), "_supports_logits", False)

    def _build_on(self, x: Any) -> None:
        """Create every weight for inputs like ``x``: a stack builds layer by layer; a subclassed
        model runs ``call`` once on the first sample (eval mode, no gradients), as Keras runs it
        symbolically."""
        if self._is_subclassed():
            sample = x[:1] if isinstance(x, torch.Tensor) else x
            was_training = self.training
            self.eval()
            try:
                with torch.no_grad():
                    out = self(sample)
            finally:
                self.train(was_training)
            self._call_output = out
            if isinstance(x, torch.Tensor) and self._declared_input_shape is None:
                self._declared_input_shape = (None, *x.shape[1:])
            self._clear_added_losses()
            return
        shape = (None, *x.shape[1:])
        for layer in self.layers:
            layer._maybe_build(shape, x.device)
            shape = layer.compute_output_shape(shape)
        if self._declared_input_shape is None:
            self._declared_input_shape = (None, *x.shape[1:])

    def _discover_outputs(self, x: Any, kind: str, what: str) -> Any:
        """Call a subclassed model once on the first sample of ``x`` (as :meth:`_build_on`) if
        its outputs are not known yet, so that ``fit``/``evaluate``/``predict`` know how many it
        returns before they read ``y`` and choose a loop (Keras learns them at the first call).
        A model with its own ``train_step``/``test_step``/``predict_step`` (``kind``) is left
        alone: its step may call it otherwise.

        Returns:
            ``x``; a one-shot iterator comes back with its first batch put back in front.
        """
        step = {"train": "train_step", "test": "test_step", "predict": "predict_step"}[kind]
        if x is None or not self._is_subclassed() or \
                getattr(self, "_call_output", None) is not None or \
                getattr(type(self), step) is not getattr(StepsMixin, step):
            return x
        if is_array_like(x):
            arrays = np.asarray(x) if isinstance(x, list) and not is_structure(x) else x
            sample = tree_map(lambda t: t[:1], standardize_inputs(self, arrays, what))
            if any(leaf.shape[0] == 0 for leaf in tree_leaves(sample) if leaf.dim()):
                return x  # empty data: its DataError comes from the data checks
        elif isinstance(x, (torch.utils.data.Dataset, torch.utils.data.DataLoader, PyDataset)) \
                or iter(x) is x:  # kept as they are, or chained behind their first batch
            x, sample, _ = self._peek(x)
        else:  # a re-iterable: a fresh pass gives the first batch, x is left to iterate again
            first = next(iter(x), None)
            if first is None:
                return x
            sample = first[0] if isinstance(first, (tuple, list)) and kind != "predict" else first
        self._build_on(standardize_inputs(self, sample, what))
        out = self._call_output
        if self._compile_loss is not None and not self._compile_loss.built:
            # wrong list lengths or dict keys fail here, before any step
            self._compile_loss.build(names_of_outputs(out), spec_order=isinstance(out, dict))
        return x

    def call(self, inputs: Any, training: bool = False) -> Any:
        raise NotImplementedError(f"Model subclass {type(self).__name__} must implement call()")

    def _call_last(self, layer: Layer, x: Any, training: bool) -> Any:
        """Call the output layer; in logits mode, return its pre-activation output."""
        if self._logits_mode and hasattr(layer, "call_logits"):
            if not layer.built:
                layer._maybe_build((None, *x.shape[1:]), x.device)
            return layer.call_logits(x, training=training)
        return layer(x, training=training)

    # ----------------------------------------------------------------------------- weights
    def get_weights(self) -> list[np.ndarray]:
        self._require_built("get_weights")
        return super().get_weights()

    def set_weights(self, weights: Sequence[Any]) -> None:
        self._require_built("set_weights")
        super().set_weights(weights)

    def _require_built(self, what: str) -> None:
        if not self.built and self._declared_input_shape is not None:
            self.build(self._declared_input_shape)
        if not all(layer.built for layer in self.layers):
            raise NotBuiltError(f"{what}: model '{self.name}' has not been built yet. Give the "
                                "first layer an input_shape, call build(input_shape), or call "
                                "the model on data first")

    # ----------------------------------------------------------------------------- compile
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Any = None,
                loss_weights: Any = None, weighted_metrics: Any = None, run_eagerly: bool = False,
                steps_per_execution: int = 1, jit_compile: Any = "auto",
                auto_scale_loss: bool = True) -> None:
        """Configure training (Keras signature).

        ``run_eagerly``, ``steps_per_execution``, ``jit_compile`` and ``auto_scale_loss`` are
        accepted for compatibility and have no effect: PyTorch always runs eagerly here (use the
        engine's ``compile`` option for ``torch.compile``).

        Raises:
            UnknownNameError: unknown optimizer, loss or metric name.
            ConfigError: ``loss_weights`` for a single-output model other than one number.
        """
        from bigmodel.keras.compile_config import compile_config
        from bigmodel.keras.compile_utils import CompileLoss, CompileMetrics

        self.optimizer = optimizers_mod.get(optimizer)
        names = self._output_names()
        # A subclassed model's outputs are known at its first call: the compiled loss and
        # metrics are resolved against them then, as Keras's CompileLoss builds on first call.
        known = not self._is_subclassed() or getattr(self, "_call_output", None) is not None
        structured = isinstance(loss, (list, tuple, dict)) or len(names) > 1
        self.loss = losses_mod.get(loss) if loss is not None and not structured else None
        self._compile_loss = CompileLoss(loss, loss_weights) if loss is not None else None
        if self._compile_loss is not None and len(names) > 1 and not self._is_subclassed():
            self._compile_loss.build(names)  # fails early on a wrong list length or dict key
        self._compile_metrics = (CompileMetrics(metrics, weighted_metrics)
                                 if metrics or weighted_metrics else None)
        if self._compile_metrics is not None and not self._is_subclassed():
            self._compile_metrics.set_output_names(names)
        self._loss_tracker = metrics_mod.Mean(name="loss")
        if isinstance(metrics, (str, EngineMetric)):
            metrics = [metrics]
        if isinstance(metrics, dict) and len(names) < 2 and known:
            raise ConfigError("compile(metrics=dict) is for models with several outputs; pass a "
                              "list of metrics")
        flat = not isinstance(metrics, dict) and all(
            not isinstance(m, (list, tuple, dict)) for m in (metrics or []))
        self._metric_ids = list(metrics or []) + list(weighted_metrics or []) if flat else []
        for ident in self._metric_ids:  # fail early on unknown names
            metrics_mod.get(ident)
        if loss_weights is not None and not isinstance(loss_weights, (int, float)) \
                and len(names) < 2 and known:
            raise ConfigError(f"loss_weights must be a number for a single-output model; "
                              f"received {loss_weights!r}")
        self._loss_weight = (float(loss_weights) if isinstance(loss_weights, (int, float))
                             else 1.0)
        self._metrics = None
        self._trainer = None
        self.compiled = True
        # Saved with the model (Keras's compile_config), so that a reloaded model is compiled.
        self._compile_config = compile_config(self.optimizer, loss, loss_weights, metrics,
                                              weighted_metrics)

    def _ordered_results(self, logs: dict[str, Any]) -> Any:
        """``evaluate``'s list, in Keras 3's order (its ``_flatten_metrics_in_order``): the
        value of each name of ``self.metrics`` found in ``logs`` (the compiled metrics by their
        own names, so a prefixed per-output name is not found there), a name listed twice
        giving its value twice, then the other logs sorted by name; one value alone is bare."""
        names: list[str] = []
        for metric in self.metrics:
            if isinstance(metric, CompileMetrics):
                names += [sub.name for sub in metric.metrics]
            else:
                names.append(metric.name)
        values = [logs[n] for n in names if n in logs]
        values += [logs[k] for k in sorted(logs) if k not in names]
        return values[0] if len(values) == 1 else values

    def _require_compiled(self, what: str) -> None:
        if not self.compiled:
            raise ConfigError(f"You must call compile() before {what}() on model '{self.name}'")

    def _output_names(self) -> list[str]:
        outputs = getattr(self, "_outputs", None)
        if not outputs:
            if self._is_subclassed():  # what its first call returned (see _discover_outputs)
                return output_keys(names_of_outputs(getattr(self, "_call_output", None)))
            return ["output"]
        return getattr(self, "_output_keys", None) or [kt.name for kt in outputs]

    def _needs_steps(self, kind: str) -> bool:
        """Whether ``fit``/``evaluate``/``predict`` must run Keras's step loop
        (keras/trainer_steps.py) instead of the engine's trainer."""
        cls = type(self)
        step = {"train": "train_step", "test": "test_step", "predict": "predict_step"}[kind]
        if getattr(cls, step) is not getattr(StepsMixin, step):
            return True
        if kind == "predict":  # several outputs: Keras returns a list or a dict of arrays
            return len(self._output_names()) > 1
        return (cls.compute_loss is not StepsMixin.compute_loss or self.loss is None
                or len(self._output_names()) > 1)

    def _weighs_metrics(self, *weights: Any) -> bool:
        """Whether compiled ``weighted_metrics`` get sample weights: they run the step loop, as
        the engine's metrics take no weights."""
        compiled = self._compile_metrics
        return compiled is not None and compiled.weighted_spec is not None \
            and any(w is not None for w in weights)

    @property
    def stop_training(self) -> bool:
        return self._trainer.stop_training if self._trainer is not None else self._stop_training

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self._stop_training = bool(value)
        if self._trainer is not None:
            self._trainer.stop_training = bool(value)

    @property
    def metrics_names(self) -> list[str]:
        return ["loss"] + [m.name for m in (self._metrics or [])]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args and isinstance(args[0], np.ndarray):
            first = string_ids(args[0], f"Model '{self.name}' input") \
                if is_string_array(args[0]) else torch.from_numpy(np.ascontiguousarray(args[0]))
            args = (first, *args[1:])
        return super().__call__(*args, **kwargs)

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> Model:
        """A new model from ``get_config()``: a functional model's graph (``layers`` and
        ``nodes``) is rebuilt as a functional model, as ``keras.Model.from_config`` does; any
        other config goes to the class's constructor (a subclassed model's own keys)."""
        if isinstance(config, dict) and "layers" in config and "nodes" in config:
            return _functional_subclass(cls).from_config(config)
        return super().from_config(config)


register_model_class("Model", Model)
# Model's __call__ (NumPy in) and forward (inputs standardized, or remembered as needing nothing)
# keep Layer's dispatch: a model called again on a plain tensor of a checked signature takes
# Layer's direct path too.
DIRECT_DISPATCH.update((Model.__call__, Model.forward))
