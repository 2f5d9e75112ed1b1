"""The direct path of ``Sequential.call``: the same layer computations without the per-layer
dispatch, once an input signature has passed every check.

A layer call through ``Layer.__call__`` -> ``nn.Module.__call__`` -> ``Layer.forward`` looks for
symbolic inputs, checks the input's rank and axes, looks up and propagates Keras masks and adds the
activity penalty before it reaches ``call``. For a built stack of plain layers fed inputs of one
per-sample shape, those checks give the same verdict every time: shapes only depend on the input's
shape. :class:`DirectPath` records each input signature ``(shape[1:], dtype)`` that went through the
checked path without error and afterwards calls ``layer.call`` directly for it. Consecutive layers
that take an NCHW view (``Conv2D``/pooling in ``channels_last``) are chained in NCHW, with one
permute into and one out of the chain instead of two per layer: fewer autograd nodes, the same
kernels on the same memory, so outputs, gradients and random draws are bit-identical to the checked
path (``tests/test_keras_direct_call.py``).

The checked path is used whenever anything could make the two differ: a hook on a layer or a global
module hook, a replaced ``forward`` (activation checkpointing), an unbuilt layer, an activity
regularizer, a layer that makes or consumes masks, a nested model, a masked input, an input that is
not a plain tensor (symbolic, fake, traced), tracing or compiling. Measured on the seed CNN (one CPU
thread): about 90 µs less Python per step and 8 fewer autograd nodes (BENCHMARKS.md, foundation
section).
"""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.call_context import direct_calls_allowed
from bigmodel.keras.layers.call_signature import call_signature, call_takes_mask
from bigmodel.keras.layers.symbolic import get_keras_mask

__all__ = ["DirectPath"]

_CLASS_OK: dict[type, bool] = {}


def _class_ok(cls: type) -> bool:
    """The class neither overrides the dispatch nor makes masks (cached per class)."""
    known = _CLASS_OK.get(cls)
    if known is None:
        from bigmodel.keras.model import Model

        known = (cls.__call__ is Layer.__call__ and cls.forward is Layer.forward
                 and cls.compute_mask is Layer.compute_mask and not issubclass(cls, Model)
                 and call_signature(cls).training)
        _CLASS_OK[cls] = known
    return known


def _layer_ok(layer: Layer) -> bool:
    return (_class_ok(type(layer)) and layer.built and layer.activity_regularizer is None
            and not (layer._forward_hooks or layer._forward_pre_hooks or layer._backward_hooks
                     or layer._backward_pre_hooks)
            and "forward" not in layer.__dict__ and "call" not in layer.__dict__)


class DirectPath:
    """Per-``Sequential`` state of the direct path; :meth:`reset` whenever the stack changes."""

    def __init__(self) -> None:
        self.verified: set[tuple] = set()
        self._plan: list[tuple[Layer, bool, bool]] | None = None

    def reset(self) -> None:
        self.verified.clear()
        self._plan = None

    @staticmethod
    def signature(inputs: Any, layers: list[Layer]) -> tuple | None:
        """The input's signature when the direct path may serve it (``None`` when it may not)."""
        if type(inputs) is not torch.Tensor or inputs.dim() == 0 or not layers:
            return None
        # inside a layer call (the usual case: the model's own), the outermost call has asked
        # about global hooks and tracing already
        if not direct_calls_allowed() or get_keras_mask(inputs) is not None:
            return None
        for layer in layers:
            if not _layer_ok(layer):
                return None
        return (tuple(inputs.shape[1:]), inputs.dtype)

    def _layers_plan(self, layers: list[Layer]) -> list[tuple[Layer, bool, bool]]:
        # Rebuilt when the layers are other objects than those cached: replicas that share this
        # state (``nn.DataParallel`` copies a module's __dict__) hold their own layers.
        plan = self._plan
        if plan is None or len(plan) != len(layers) or any(
                entry[0] is not layer for entry, layer in zip(plan, layers)):
            plan = [(layer, layer.accepts_nchw(), call_takes_mask(type(layer)))
                    for layer in layers]
            self._plan = plan
        return plan

    def run(self, layers: list[Layer], x: torch.Tensor, training: bool, logits: bool) -> Any:
        """``layers`` applied to ``x`` as the checked path would (``logits``: the last layer's
        pre-activation output, as ``Model._call_last`` gives in logits mode)."""
        plan = self._layers_plan(layers)
        last = len(plan) - 1
        in_nchw = False
        for index, (layer, nchw, takes_mask) in enumerate(plan):
            kwargs: dict[str, Any] = {"training": training}
            if index == last and logits and hasattr(layer, "call_logits"):
                kwargs["logits"] = True
            if nchw and x.dim() == 4:
                if not in_nchw:
                    x, in_nchw = x.permute(0, 3, 1, 2), True
                x = layer.call_nchw(x, **kwargs)
                continue
            if in_nchw:
                x, in_nchw = x.permute(0, 2, 3, 1), False
            if takes_mask:
                kwargs["mask"] = None
            x = layer.call(x, **kwargs)
        return x.permute(0, 2, 3, 1) if in_nchw else x
