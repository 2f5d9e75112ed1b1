"""The context of Keras layer calls, and the direct path that skips their repeated checks.

``CALL_DEPTH`` and ``CALL_TRAINING`` are Keras 3's call context: how deep we are in nested layer
calls (added losses are cleared when an outermost call starts) and the training mode of the
enclosing call, when it was given (a nested layer called without ``training=`` inherits it, so
``model(x, training=True)`` on a subclassed model drops out in the layers its ``call`` runs).

The direct path: a layer call through ``__call__`` -> ``nn.Module.__call__`` -> ``forward`` checks
the input (rank, pinned axes, InputSpec), builds, looks up and passes Keras masks and adds the
activity penalty before it reaches ``call``: ~6 us of Python per call, as much as a small Dense's
matmul. For a plain tensor of a (shape, dtype, device) that already went through those checks
without error (any batch size), each check gives the same verdict again, so a later call with
nothing that could make the two differ (no torch hooks, no replaced forward, no compiled module,
no mask on the input, no tracing or compiling; the layer's activity regularizer, InputSpec and
build state unchanged) goes straight to ``call`` with the arguments ``forward`` would pass
(``Layer.__call__`` tests for it; :class:`DirectCalls` remembers and runs). Outputs, masks,
gradients and random draws are those of the checked path (tests/test_keras_layer_direct.py).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.modules import module as _module

from bigmodel.keras.layers.call_signature import call_signature
from bigmodel.keras.layers.layer_state import LOSS_LAYERS

__all__ = ["BASE_METHODS", "CALL_DEPTH", "CALL_TRAINING", "DIRECT_ALLOWED", "DIRECT_DISPATCH",
           "DirectCalls", "direct_calls_allowed", "set_direct_allowed"]

CALL_DEPTH = [0]
CALL_TRAINING: list[bool | None] = [None]
# Whether the outermost layer call found no global module hook and no tracing or compiling: the
# calls nested in it read this instead of asking again (set at depth 0 of every call).
DIRECT_ALLOWED = [False]
# The ``__call__`` and ``forward`` methods that keep Layer's dispatch (``Layer`` registers its
# own, ``Model`` its own, which only convert inputs; the recurrent layers their ``__call__``, which
# only routes symbolic initial states), and Layer's own ``forward`` / ``compute_mask``.
DIRECT_DISPATCH: set[Any] = set()
BASE_METHODS: dict[str, Any] = {}
# Per class: ``(passes mask, passes training, makes masks)`` when its calls may take the direct
# path, else None.
_DIRECT_CLASSES: dict[type, Any] = {}


def _direct_signature(cls: type) -> Any:
    """For a class that keeps Layer's dispatch, what a direct call does besides ``call``: whether
    ``forward`` gives ``call`` a ``mask`` and ``training`` for a plain input, and whether the class
    makes masks from its inputs; else ``None`` (cached per class)."""
    if cls not in _DIRECT_CLASSES:
        signature = call_signature(cls)
        _DIRECT_CLASSES[cls] = (
            (signature.mask and cls.forward is BASE_METHODS["forward"], signature.training,
             cls.compute_mask is not BASE_METHODS["compute_mask"])
            if cls.__call__ in DIRECT_DISPATCH and cls.forward in DIRECT_DISPATCH else None)
    return _DIRECT_CLASSES[cls]


def direct_calls_allowed() -> bool:
    """Whether no global module hook, ``torch.jit`` tracing or ``torch.compile`` tracing is in
    the way of a direct call (inside a layer call: the outermost call's answer)."""
    return DIRECT_ALLOWED[0] if CALL_DEPTH[0] else set_direct_allowed()


def set_direct_allowed() -> bool:
    """Whether no global module hook is registered and no ``torch.jit`` / ``torch.compile``
    tracing runs; remembered for the calls nested in this outermost one."""
    allowed = not (_module._global_forward_hooks or _module._global_forward_pre_hooks
                   or _module._global_backward_hooks or _module._global_backward_pre_hooks
                   or _module._global_forward_hooks_always_called
                   or torch._C._get_tracing_state() is not None or torch.compiler.is_compiling())
    DIRECT_ALLOWED[0] = allowed
    return allowed


class DirectCalls:
    """The direct path's half of ``Layer`` (a mixin): remembering checked input signatures and
    running ``call`` for them; and the ``training`` default both paths share."""

    _MAX_VERIFIED = 16  # input signatures remembered per layer (variable-length inputs stop there)
    # Attributes the checks read: setting one forgets every remembered signature.
    _FORGET_ON = frozenset({"activity_regularizer", "built", "forward", "call", "input_axes"})

    def _default_training(self, enclosing: bool | None) -> bool | None:
        """The mode of a call given no ``training=``. Keras's order: the caller's value, the
        enclosing call's, call's own default. Here torch's train mode (fit, or a user's train())
        counts as the enclosing call's True; an outermost call with neither runs in inference
        mode, and its layers with it. ``None``: the layer's torch mode decides (in ``forward``)."""
        if enclosing is not None:
            return enclosing
        if self.training:
            return None
        # after an explicit eval() (a torch user's module, evaluate) no default applies
        default = (None if self.__dict__.get("_mode_given")
                   else call_signature(type(self)).training_default)
        if default is None and CALL_DEPTH[0] == 0:
            default = False
        return None if default is None else bool(default)

    def _remember_input(self, inputs: torch.Tensor) -> None:
        """Record that ``inputs``' signature passed ``forward``'s checks (``forward`` calls it for
        a plain tensor given with no other argument and no mask). Setting anything the checks
        read (``_FORGET_ON``, ``input_spec``) forgets every signature."""
        ndim = inputs.dim()
        if _direct_signature(type(self)) is None or self._has_input_spec \
                or self.activity_regularizer is not None or ndim == 0 \
                or any(axis in (0, -ndim) for axis in self.input_axes):
            return  # (a signature leaves out the batch size: a layer pinning it is checked)
        verified = self.__dict__.get("_verified_inputs")
        if verified is None:
            verified = self.__dict__["_verified_inputs"] = set()
        if len(verified) < self._MAX_VERIFIED:
            verified.add((inputs.shape[1:], inputs.dtype, inputs.device, ndim))

    def _call_direct(self, x: torch.Tensor, training: bool | None) -> Any:
        """``call`` as ``__call__`` + ``forward`` run it for a verified plain input."""
        depth, enclosing = CALL_DEPTH[0], CALL_TRAINING[0]
        if depth == 0 and LOSS_LAYERS:
            self._clear_added_losses()
        if training is None:
            training = enclosing if enclosing is not None else self._default_training(None)
        passes_mask, passes_training, makes_masks = _DIRECT_CLASSES[type(self)]
        kwargs: dict[str, Any] = {}
        if passes_mask:
            kwargs["mask"] = None
        if passes_training:
            kwargs["training"] = self.training if training is None else training
        CALL_DEPTH[0] = depth + 1
        CALL_TRAINING[0] = None if training is None else bool(training)
        try:
            outputs = self.call(x, **kwargs)
        finally:
            CALL_DEPTH[0] = depth
            CALL_TRAINING[0] = enclosing
        if makes_masks:  # e.g. Embedding(mask_zero=True): a mask made from the input
            self._attach_output_mask(x, outputs, None)
        return outputs
