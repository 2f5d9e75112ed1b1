"""Layers that hold another layer or module: ``Wrapper`` (Keras's base class),
``SpectralNormalization`` and ``TorchModuleWrapper`` (a plain ``torch.nn.Module`` in a Keras model).

``.keras`` weight paths follow Keras 3 (``keras_weight_entries``, read by ``keras/keras_weights.py``):
``SpectralNormalization`` writes the wrapped kernel again as its own ``vars/0`` (Keras tracks the
shared variable on both layers) and ``vector_u`` as ``vars/1``; ``TorchModuleWrapper`` writes the
module's ``state_dict`` under ``vars/<key>`` (buffers such as BatchNorm statistics included).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from bigmodel.errors import ConfigError
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.core import check_positive_int
from bigmodel.keras.layers.layer_registry import deserialize_layer, serialize_layer
from bigmodel.keras.layers.symbolic import Shape

__all__ = ["SpectralNormalization", "TorchModuleWrapper", "Wrapper"]


class Wrapper(Layer):
    """Base class of layers that wrap another layer (Keras 3's ``keras.layers.Wrapper``).

    Args:
        layer: the wrapped ``keras.layers.Layer``; built with the wrapper's input shape.

    Raises:
        ConfigError: ``layer`` is not a Keras layer.
    """

    def __init__(self, layer: Layer, **kwargs: Any):
        if not isinstance(layer, Layer):
            raise ConfigError(f"Layer {layer!r} supplied to {type(self).__name__} (argument "
                              "`layer`) isn't a supported layer type: pass a keras.layers.Layer")
        super().__init__(**kwargs)
        self.layer = layer

    def build(self, input_shape: Shape) -> None:
        if not self.layer.built:
            self.layer._maybe_build(tuple(input_shape), self._build_device)
        super().build(input_shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return self.layer.compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "layer": serialize_layer(self.layer)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Wrapper:
        config = dict(config)
        layer = config.pop("layer")
        return cls(deserialize_layer(layer) if isinstance(layer, dict) else layer, **config)


def _l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """Keras's ``ops.normalize(x, axis=None)``: ``x * min(rsqrt(sum(x**2)), 1/epsilon)``."""
    return x * torch.clamp(torch.rsqrt((x * x).sum()), max=1e7)


class SpectralNormalization(Wrapper):
    """Divides the wrapped layer's kernel by its largest singular value (power iteration), in
    training mode, before calling the layer (Miyato et al. 2018), as Keras 3 does.

    Args:
        layer: a layer with a ``kernel`` (``Dense``, ``Conv2D``...) or ``embeddings``.
        power_iterations: power-iteration steps per training call (> 0).

    The estimate ``vector_u`` (shape ``(1, kernel.shape[-1])`` in Keras layout) is a
    non-trainable weight; the normalized kernel is written into the wrapped layer's kernel.

    Raises:
        ConfigError: ``power_iterations`` <= 0; a layer with neither kernel nor embeddings.
    """

    def __init__(self, layer: Layer, power_iterations: int = 1, **kwargs: Any):
        super().__init__(layer, **kwargs)
        self.power_iterations = check_positive_int(self, "power_iterations", power_iterations)

    def build(self, input_shape: Shape) -> None:
        super().build(input_shape)
        attr = next((a for a in ("kernel", "embeddings")
                     if isinstance(getattr(self.layer, a, None), torch.Tensor)), None)
        if attr is None:
            raise ConfigError(f"Layer '{self.name}' (SpectralNormalization): the wrapped layer "
                              f"'{self.layer.name}' ({type(self.layer).__name__}) has no "
                              "attribute 'kernel' nor 'embeddings'")
        self._kernel_attr = attr
        from bigmodel.keras import initializers

        self.add_weight("vector_u", (1, self._keras_kernel().shape[-1]),
                        initializers.TruncatedNormal(stddev=0.02), trainable=False)
        self.input_axes = {-1: input_shape[-1]} if input_shape[-1] is not None else {}

    def _keras_kernel(self) -> torch.Tensor:
        """The wrapped kernel viewed in Keras's layout (output units last)."""
        kernel = getattr(self.layer, self._kernel_attr)
        perm = self.layer._weight_perms.get(self._kernel_attr)
        return kernel if perm is None else kernel.permute(*np.argsort(perm).tolist())

    @torch.no_grad()
    def normalize_weights(self) -> None:
        """One power-iteration update of ``vector_u`` and the wrapped kernel (in place)."""
        kernel = getattr(self.layer, self._kernel_attr)
        if not kernel.any():  # Keras leaves an all-zero kernel as it is
            return
        weights = self._keras_kernel().reshape(-1, self.vector_u.shape[-1])
        u = self.vector_u
        for _ in range(self.power_iterations):
            v = _l2_normalize(u @ weights.T)
            u = _l2_normalize(v @ weights)
        sigma = (v @ weights) @ u.T
        self.vector_u.copy_(u)
        kernel.div_(sigma.reshape(()))

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        if training:
            self.normalize_weights()
        return self.layer(inputs)

    def _ordered_weight_items(self) -> list:
        # Keras's order: the kernel (tracked on the wrapper too), vector_u, the layer's others.
        kernel = (self.layer, self._kernel_attr)
        inner = [item for item in self.layer._ordered_weight_items() if item != kernel]
        return [kernel, (self, "vector_u"), *inner]

    def keras_weight_entries(self, prefix: str) -> list[tuple[Any, str, str]]:
        from bigmodel.keras.keras_weights import weight_entries

        return [(self, "", f"{prefix}vars"), (self.layer, self._kernel_attr, f"{prefix}vars/0"),
                (self, "vector_u", f"{prefix}vars/1"),
                *weight_entries(self.layer, f"{prefix}layer")]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "power_iterations": self.power_iterations}


class TorchModuleWrapper(Layer):
    """A plain ``torch.nn.Module`` used as a Keras layer (Keras 3's torch-backend class).

    The module's parameters are the layer's weights (trained by ``fit``, listed by
    ``get_weights`` in ``named_parameters`` order); ``training`` switches the module between
    ``train()`` and ``eval()``.

    Args:
        module: the ``torch.nn.Module`` (lazy modules must be initialized first).
        output_shape: the output shape for functional models; by default found by running the
            module on zeros.

    Saving: weights go to ``.keras`` / ``.weights.h5`` files as Keras writes them (the module's
    ``state_dict``). Keras also pickles the module into the config; bigmodel writes that pickle
    for real Keras but never loads one (it would run code from the file): rebuild the layer in
    code and use ``load_weights``.

    Raises:
        ConfigError: ``module`` is not an initialized ``torch.nn.Module``, or is a pickle from a
            file.
    """

    def __init__(self, module: nn.Module, name: str | None = None,
                 output_shape: Sequence[int | None] | None = None, **kwargs: Any):
        super().__init__(name=name, **kwargs)
        if isinstance(module, str):
            raise ConfigError(
                f"Layer '{self.name}' (TorchModuleWrapper): the config holds a pickled torch "
                "module (argument `module`); bigmodel never unpickles a file (that would run "
                "code stored in it). Build TorchModuleWrapper(your_module) in code and load the "
                "weights with model.load_weights(...)")
        if not isinstance(module, nn.Module):
            raise ConfigError(f"Layer '{self.name}' (TorchModuleWrapper): argument `module` must "
                              f"be a torch.nn.Module; received {type(module).__name__}")
        if any(isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters()):
            raise ConfigError(f"Layer '{self.name}' (TorchModuleWrapper): LazyModules are not "
                              "supported unless they are already initialized. Received: "
                              f"module={module}")
        self.module = module
        self.output_shape = None if output_shape is None else tuple(output_shape)
        for key, param in module.named_parameters():
            self._weight_perms[key] = None
            if not param.requires_grad:
                self.__dict__.setdefault("_fixed_weights", set()).add(key)
        self.built = True

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            module = self.__dict__.get("_modules", {}).get("module")
            if module is not None and name in self.__dict__.get("_weight_perms", {}):
                return module.get_parameter(name)
            if module is not None and name in dict(module.named_buffers()):
                return module.get_buffer(name)
            raise

    def call(self, inputs: Any, training: bool = False) -> Any:
        self.module.train(bool(training))
        return self.module(inputs)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if self.output_shape is not None:
            return self.output_shape
        return self._shape_by_running(tuple(input_shape))

    def keras_weight_entries(self, prefix: str) -> list[tuple[Any, str, str]]:
        keys = [k for k, v in self.module.state_dict().items() if isinstance(v, torch.Tensor)]
        return [(self, "", f"{prefix}vars"), *[(self, k, f"{prefix}vars/{k}") for k in keys]]

    def get_config(self) -> dict[str, Any]:
        buffer = io.BytesIO()
        try:
            torch.save(self.module, buffer)  # what Keras writes: real Keras reads it back
        except Exception as exc:
            raise ConfigError(f"Layer '{self.name}' (TorchModuleWrapper): the module cannot be "
                              f"pickled for the config ({exc}); save the weights instead") from None
        return {**super().get_config(), "module": base64.b64encode(buffer.getvalue()).decode(),
                "output_shape": None if self.output_shape is None else list(self.output_shape)}
