"""``keras.Sequential``: a plain stack of layers, each feeding the next."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from bigmodel.errors import ConfigError, InputTypeError
from bigmodel.keras.direct_call import DirectPath
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.lambda_layer import Input
from bigmodel.keras.layers.layer_registry import deserialize_layer, serialize_layer
from bigmodel.keras.layers.symbolic import CallRecord, KerasTensor
from bigmodel.keras.model import Model
from bigmodel.keras.model_classes import register_model_class


class Sequential(Model):
    """A linear stack of layers.

    Args:
        layers: layers in order; a ``keras.Input(shape)`` may come first to declare the input.
        name: model name (default ``sequential``, ``sequential_1``, ...).

    The model is built as soon as the input shape is known: from ``keras.Input``, from the first
    layer's ``input_shape=``, or from the first batch it sees.
    """

    _supports_logits = True
    _is_stack = True  # Sequential([...]) is never a functional call

    def __init__(self, layers: Iterable[Any] | None = None, name: str | None = None,
                 trainable: bool = True, **kwargs: Any):
        super().__init__(name=name, trainable=trainable, **kwargs)
        self._stack = nn.ModuleList()
        self._direct = DirectPath()
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self) -> list[Layer]:
        return list(self._stack)

    def add(self, layer: Any) -> None:
        """Append a layer (or declare the input with ``keras.Input``)."""
        if isinstance(layer, KerasTensor):
            if self._stack or self._declared_input_shape is not None:
                raise ConfigError("keras.Input(...) can only be the first entry of a Sequential")
            self._declared_input_shape = tuple(layer.shape)
            self.build(self._declared_input_shape)
            return
        if not isinstance(layer, Layer):
            raise InputTypeError(f"Only Keras layers can be added to Sequential '{self.name}'; "
                                 f"received {type(layer).__name__} ({layer!r:.60})")
        if type(layer).__name__ == "InputLayer":
            if self._stack or self._declared_input_shape is not None:
                raise ConfigError("An InputLayer can only be the first layer of a Sequential")
            self._declared_input_shape = tuple(layer.batch_shape)
            self.build(self._declared_input_shape)
            return
        names = {lay.name for lay in self._stack}
        if layer.name in names:
            raise ConfigError(f"All layers added to a Sequential model should have unique names. "
                              f"Name '{layer.name}' is already the name of a layer in this model")
        self._stack.append(layer)
        self._direct.reset()
        self.__dict__.pop("_verified_inputs", None)  # the stack changed: check calls again
        if len(self._stack) == 1 and self._declared_input_shape is None \
                and layer._declared_input_shape is not None:
            self._declared_input_shape = tuple(layer._declared_input_shape)
        if self._declared_input_shape is not None:
            self.build(self._declared_input_shape)
        self._trainer = None

    # Keras 3 keeps a functional graph of a built Sequential: model.inputs/outputs and each
    # layer's .input/.output (feature extraction with keras.Model(model.inputs, ...)).
    def _graph(self) -> CallRecord:
        if self._declared_input_shape is None:
            raise AttributeError(f"Sequential model '{self.name}' has no defined inputs yet: "
                                 "give it keras.Input(shape) or build it")
        key = (tuple(id(layer) for layer in self._stack), tuple(self._declared_input_shape))
        record = self.__dict__.get("_graph_record")
        if record is None or record.outputs is None or self.__dict__.get("_graph_key") != key:
            inputs = Input(batch_shape=self._declared_input_shape)
            x = inputs
            for layer in self._stack:
                x = layer(x)
            record = self.__dict__["_graph_record"] = CallRecord(inputs, x)
            self.__dict__["_graph_key"] = key
        return record

    @property
    def inputs(self) -> list[KerasTensor]:
        return [self._graph().inputs]

    @property
    def outputs(self) -> list[KerasTensor]:
        return [self._graph().outputs]

    @property
    def input(self) -> KerasTensor:
        return self._graph().inputs

    @property
    def output(self) -> KerasTensor:
        return self._graph().outputs

    def pop(self) -> Layer:
        if not self._stack:
            raise ConfigError(f"Sequential '{self.name}' has no layers to pop")
        layer = self._stack[-1]
        del self._stack[-1]
        self._direct.reset()
        self.__dict__.pop("_verified_inputs", None)  # the stack changed: check calls again
        self._trainer = None
        return layer

    def call(self, inputs: Any, training: bool = False) -> Any:
        layers = list(self._stack)
        signature = self._direct.signature(inputs, layers)
        if signature is not None and signature in self._direct.verified:
            return self._direct.run(layers, inputs, training, self._logits_mode)
        x = inputs
        last = len(layers) - 1
        for index, layer in enumerate(layers):
            x = self._call_last(layer, x, training) if index == last else layer(x, training=training)
        if signature is not None:  # every layer checked this input shape: go direct from now on
            self._direct.verified.add(signature)
        return x

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["layers"] = [serialize_layer(layer) for layer in self._stack]
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        config = dict(config)
        layer_specs = config.pop("layers", [])
        input_shape = config.pop("batch_input_shape", None)
        model = cls(name=config.pop("name", None), trainable=config.pop("trainable", True))
        if input_shape is not None:
            model._declared_input_shape = tuple(input_shape)
        for spec in layer_specs:
            model.add(deserialize_layer(spec))
        return model


register_model_class("Sequential", Sequential)
