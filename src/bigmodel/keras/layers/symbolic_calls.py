"""A Keras layer on symbolic inputs (``keras.Input``): the half of ``Layer`` that builds functional
graphs. A call on ``KerasTensor`` s records a graph node (``KerasTensor.layer`` / ``parents`` /
``call_training`` / ``call_extra``) and computes its output shape, by ``compute_output_shape`` or, for
a user's layer without one, by running ``call`` on zeros (Keras traces ``call`` for the same purpose).
``Functional`` replays the nodes on real tensors.
"""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.keras.layers.call_signature import call_signature
from bigmodel.keras.layers.symbolic import (
    CallRecord,
    KerasTensor,
    fill_slots,
    flatten_symbolic,
    is_shape_list,
    template_slots,
)

__all__ = ["SymbolicCalls"]


class SymbolicCalls:
    """Mixin of :class:`~bigmodel.keras.layers.base.Layer`: calls on symbolic inputs."""

    def _shape_by_running(self, shape: Any, extra: tuple | None = None,
                          extra_shapes: list | None = None) -> Any:
        """Output shape of ``call`` on zeros of ``shape``; a ``None`` axis stays ``None`` when the
        output's size changes with it (two runs with different sizes). ``extra``: the call's
        other arguments (``KerasTensor.call_extra``), their tensors zeros of ``extra_shapes``."""
        def run(fill: int) -> Any:
            def zeros(one: Any) -> torch.Tensor:
                return torch.zeros([1 if i == 0 else fill if d is None else int(d)
                                    for i, d in enumerate(one)])
            x = [zeros(t) for t in shape] if is_shape_list(shape) else zeros(shape)
            more: list = []
            named: dict = {}
            if extra is not None:
                tensors = [zeros(t) for t in extra_shapes or ()]
                more, named = fill_slots(list(extra[1]), tensors), fill_slots(dict(extra[2]), tensors)
            # The trial runs in inference mode; each module's mode and the losses it adds
            # (add_loss) are put back afterwards. Modes are set directly, not by train() /
            # eval(), which would count as a user's choice of mode (see Layer.train).
            saved = [(m, m.training, len(m.__dict__.get("_added_losses", ())))
                     for m in self.modules()]
            for module, _, _ in saved:
                module.training = False
            try:
                with torch.no_grad():
                    try:
                        out = self.forward(x, *more, training=False, **named)
                    except Exception:
                        # A call that needs the mask its input carries in the graph (the masking
                        # guide's TemporalSoftmax asserts one): try again with an all-True mask,
                        # timesteps = every axis but the features.
                        if not (call_signature(type(self)).mask and isinstance(x, torch.Tensor)):
                            raise
                        mask = torch.ones(x.shape[:-1] if x.dim() >= 3 else x.shape,
                                          dtype=torch.bool)
                        out = self.forward(x, *more, training=False, mask=mask, **named)
            finally:
                for module, training, count in saved:
                    module.training = training
                    added = module.__dict__.get("_added_losses")
                    if added:
                        del added[count:]
            if isinstance(out, (list, tuple)):
                return [tuple(o.shape) for o in out]
            return tuple(out.shape)

        key = repr(shape)
        cache = self.__dict__.setdefault("_shape_cache", {}) if extra is None else {}
        if key in cache:
            return cache[key]
        first = run(3)
        dynamic = any(d is None for one in (shape if is_shape_list(shape) else [shape])
                      for d in list(one)[1:])
        second = run(5) if dynamic else first

        def merge(a: tuple, b: tuple) -> tuple:
            return (None, *[x if x == y else None for x, y in zip(a[1:], b[1:])])
        result = ([merge(a, b) for a, b in zip(first, second)] if isinstance(first, list)
                  else merge(first, second))
        cache[key] = result
        return result

    def _call_symbolic(self, inputs: Any, *args: Any, **kwargs: Any) -> KerasTensor:
        if self._has_input_spec:
            self._assert_input_spec(inputs)
        shape = inputs.shape if isinstance(inputs, KerasTensor) else [t.shape for t in inputs]
        if isinstance(inputs, KerasTensor):
            self._maybe_build(shape)
            self._check_input_shape(shape)
        elif not self.built:
            self.build(shape)
            self.built = True
        parents = flatten_symbolic(inputs)
        # Keras replays every argument of a functional call (``layer(x, y, factor=2.0)``); masks
        # travel on the tensors, and ``training`` is kept apart (it pins the call's mode).
        extra_kwargs = {k: v for k, v in kwargs.items() if k not in ("training", "mask")}
        extra = None
        if args or extra_kwargs:
            found: list[KerasTensor] = []
            extra = (len(parents), template_slots(list(args), found),
                     template_slots(extra_kwargs, found))
            parents = parents + found
        if extra is not None and self._runs_call_for_shape():
            out_shape = self._shape_by_running(shape, extra, [t.shape for t in parents[extra[0]:]])
        else:
            out_shape = self.compute_output_shape(shape)
        if is_shape_list(out_shape):  # several outputs: one KerasTensor each, one shared call
            call = object()
            outputs = [KerasTensor(part, layer=self, parents=parents, name=self.name,
                                   output_index=index, call=call)
                       for index, part in enumerate(out_shape)]
        else:
            outputs = [KerasTensor(out_shape, layer=self, parents=parents, name=self.name)]
        # Keras: ``layer(x, training=False)`` in a functional graph pins that call's mode (e.g. a
        # frozen base model's BatchNormalization stays in inference mode after unfreezing).
        training = kwargs.get("training")
        for output in outputs:
            output.call_training = None if training is None else bool(training)
            output.call_extra = extra
        result = outputs if is_shape_list(out_shape) else outputs[0]
        if "_first_call" not in self.__dict__:  # Keras's node 0: what layer.input/.output read
            self.__dict__["_first_call"] = CallRecord(inputs, result)
        return result

    @property
    def input(self) -> Any:
        """The symbolic input of this layer's first call in a functional graph (Keras 3)."""
        return self._first_symbolic_call("input").inputs

    @property
    def output(self) -> Any:
        """The symbolic output of this layer's first call in a functional graph (Keras 3): a
        ``KerasTensor``, or a list of them for a layer with several outputs."""
        return self._first_symbolic_call("output").outputs

    def _first_symbolic_call(self, what: str) -> CallRecord:
        record = self.__dict__.get("_first_call")
        if record is None or record.outputs is None:
            raise AttributeError(f"The layer {self.name} has never been called on a symbolic "
                                 f"input (keras.Input) and thus has no defined {what}")
        return record
