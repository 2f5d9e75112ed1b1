"""``EinsumDense``: a dense layer whose contraction is an einsum equation (Keras 3 API).

``EinsumDense("abc,cd->abd", output_shape=(None, 64), bias_axes="d")`` multiplies a
``(batch, 32, 128)`` input by a ``(128, 64)`` kernel. The kernel and bias shapes follow Keras's
rules (``keras.src.layers.core.einsum_dense._analyze_einsum_string``), so weights move between the
two libraries unchanged; they are stored in Keras's layout (``torch.einsum`` takes it as it is).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import activations, constraints, initializers, regularizers
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.core import cast_inputs, is_int, resolve
from bigmodel.keras.layers.symbolic import Shape

__all__ = ["EinsumDense", "analyze_einsum"]

_FORMS = (  # (pattern on the equation with "..." -> "0", ellipsis on the left)
    (re.compile(r"^([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)$"), False),
    (re.compile(r"^0([a-zA-Z]+),([a-zA-Z]+)->0([a-zA-Z]+)$"), True),
    (re.compile(r"^([a-zA-Z]{2,})0,([a-zA-Z]+)->([a-zA-Z]+)0$"), False),
)


def _parse(equation: Any, where: str) -> tuple[str, str, str, bool]:
    """(input spec, weight spec, output spec, ellipsis on the left) of an EinsumDense equation."""
    if isinstance(equation, str):
        text = equation.replace(" ", "").replace("...", "0")
        for pattern, left in _FORMS:
            match = pattern.match(text)
            if match:
                return match.group(1), match.group(2), match.group(3), left
    raise ConfigError(f"{where}: invalid einsum equation for argument `equation`. Equations must "
                      "be in the form [X],[Y]->[Z], ...[X],[Y]->...[Z], or [X]...,[Y]->[Z]...; "
                      f"received: equation={equation!r}")


def analyze_einsum(equation: str, bias_axes: str | None, input_shape: Shape,
                   output_shape: Sequence[int | None], where: str = "EinsumDense",
                   ) -> tuple[list[int], list[int] | None, list[int | None]]:
    """Keras's weight shapes for an einsum dense layer.

    Args:
        equation: e.g. ``"abc,cd->abd"`` or ``"...b,bc->...c"``.
        bias_axes: output letters that get a bias, or None.
        input_shape: the input's shape, batch axis first.
        output_shape: the output shape without the batch axis (``None`` entries are taken from
            the input).

    Returns:
        ``(kernel_shape, bias_shape or None, full output shape)``.

    Raises:
        ConfigError: an equation Keras does not accept, a bias letter missing from the output.
        ShapeError: input and output sizes disagree on a shared letter.
    """
    input_spec, weight_spec, output_spec, left = _parse(equation, where)
    input_shape = list(input_shape)
    elided = len(input_shape) - len(input_spec)
    full = [input_shape[0], *list(output_shape)]
    if elided > 0 and left:
        for i in range(1, elided):
            full.insert(1, input_shape[i])
    elif elided > 0:
        full.extend(input_shape[len(input_shape) - elided:])
    if left:
        in_map = {d: i + elided - len(input_shape) for i, d in enumerate(input_spec)}
        out_map = {d: i + elided for i, d in enumerate(output_spec)}
    else:
        in_map = {d: i for i, d in enumerate(input_spec)}
        out_map = {d: i for i, d in enumerate(output_spec)}
    if elided < 0 or len(full) != len(output_spec) + max(elided, 0) or any(
            i >= len(full) for i in out_map.values()):
        raise ShapeError(f"{where}: the equation {equation!r} does not fit an input of shape "
                         f"{tuple(input_shape)} with output_shape={tuple(output_shape)}")
    for dim in input_spec:
        if dim in out_map:
            want, got = full[out_map[dim]], input_shape[in_map[dim]]
            if want is not None and got is not None and want != got:
                raise ShapeError(f"{where}: input shape and output shape do not match at shared "
                                 f"dimension '{dim}'. Input shape is {got}, and output shape is "
                                 f"{want} (input shape {tuple(input_shape)})")
    for dim in output_spec:
        if dim not in input_spec and dim not in weight_spec:
            raise ConfigError(f"{where}: dimension '{dim}' of the output '{output_spec}' appears "
                              f"in neither the input spec '{input_spec}' nor the weight spec "
                              f"'{weight_spec}' (equation={equation!r})")
    kernel: list[int] = []
    for dim in weight_spec:
        size = full[out_map[dim]] if dim in out_map else (
            input_shape[in_map[dim]] if dim in in_map else None)
        if dim not in out_map and dim not in in_map:
            raise ConfigError(f"{where}: weight dimension '{dim}' matches neither the input spec "
                              f"'{input_spec}' nor the output spec '{output_spec}'; the weight "
                              f"must be fully specified (equation={equation!r})")
        if size is None:
            raise ShapeError(f"{where}: the size of weight dimension '{dim}' is unknown: give it "
                             f"in output_shape or in the input shape {tuple(input_shape)}")
        kernel.append(int(size))
    bias = None
    if bias_axes is not None:
        for char in bias_axes:
            if char not in output_spec:
                raise ConfigError(f"{where}: bias dimension '{char}' was requested "
                                  f"(bias_axes={bias_axes!r}) but is not part of the output "
                                  f"spec '{output_spec}'")
        shift = elided if left else 0
        sizes = {c: full[i + shift] for i, c in enumerate(output_spec)}
        first = min(output_spec.find(c) for c in bias_axes)
        bias = [int(sizes[c]) if c in bias_axes else 1 for c in output_spec[first:]]
        if not left:
            bias += [1] * max(elided, 0)
    return kernel, bias, full


class EinsumDense(Layer):
    """``activation(einsum(equation, inputs, kernel) + bias)``.

    Args:
        equation: ``"ab,bc->ac"``-style equation: input, kernel and output letters; ``...`` may
            stand for leading (``"...b,bc->...c"``) or trailing axes.
        output_shape: the output's shape without the batch axis (an int for rank 1); ``None``
            entries take the input's size.
        activation: applied last (default linear).
        bias_axes: output letters that get a bias (e.g. ``"d"``), or None for no bias.
        kernel_initializer / bias_initializer / kernel_regularizer / bias_regularizer /
            kernel_constraint / bias_constraint: as in ``Dense``.
        lora_rank / lora_alpha: LoRA is not supported here (use ``bigmodel.transfer``); only
            ``None`` is accepted.

    Raises:
        ConfigError: a malformed equation, an unknown activation/initializer, LoRA requested.
        ShapeError: an input whose shape does not fit the equation.
    """

    def __init__(self, equation: str, output_shape: int | Sequence[int | None],
                 activation: Any = None, bias_axes: str | None = None,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None,
                 lora_rank: int | None = None, lora_alpha: float | None = None,
                 quantization_config: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        where = f"Layer '{self.name}' (EinsumDense)"
        _parse(equation, where)
        self.equation = equation.replace(" ", "")
        if is_int(output_shape):
            output_shape = (output_shape,)
        if not isinstance(output_shape, (list, tuple)) or not all(
                s is None or (is_int(s) and s > 0) for s in output_shape):
            raise ConfigError(f"{where}: `output_shape` must be a positive integer or a sequence "
                              f"of positive integers / None. Received: output_shape="
                              f"{output_shape!r}")
        self.partial_output_shape = tuple(None if s is None else int(s) for s in output_shape)
        if bias_axes is not None and (not isinstance(bias_axes, str) or not bias_axes.isalpha()):
            raise ConfigError(f"{where}: `bias_axes` must be a string of output letters or None. "
                              f"Received: bias_axes={bias_axes!r}")
        for name, value in (("lora_rank", lora_rank), ("quantization_config", quantization_config)):
            if value is not None:
                raise ConfigError(f"{where}: argument `{name}` is not supported (use "
                                  f"bigmodel.transfer / bigmodel.compress). Received: "
                                  f"{name}={value!r}")
        self.bias_axes = bias_axes
        self.activation = resolve(self, "activation", activation)
        self.kernel_initializer = resolve(self, "kernel_initializer", kernel_initializer)
        self.bias_initializer = resolve(self, "bias_initializer", bias_initializer)
        self.kernel_regularizer = resolve(self, "kernel_regularizer", kernel_regularizer)
        self.bias_regularizer = resolve(self, "bias_regularizer", bias_regularizer)
        self.kernel_constraint = resolve(self, "kernel_constraint", kernel_constraint)
        self.bias_constraint = resolve(self, "bias_constraint", bias_constraint)
        self.register_parameter("bias", None)

    def _where(self) -> str:
        return f"Layer '{self.name}' (EinsumDense)"

    def build(self, input_shape: Shape) -> None:
        kernel_shape, bias_shape, _ = analyze_einsum(self.equation, self.bias_axes, input_shape,
                                                     self.partial_output_shape, self._where())
        init = self.kernel_initializer
        if isinstance(init, initializers.VarianceScaling) and (
                init.input_axes is None or init.output_axes is None):
            # Keras computes the fans of a VarianceScaling kernel from the equation's axes.
            spec = _parse(self.equation, self._where())
            in_axes = [i for i, d in enumerate(spec[1]) if d not in spec[2]]
            out_axes = [i for i, d in enumerate(spec[1]) if d in spec[2]]
            init = type(init).from_config({**init.get_config(), "input_axes": in_axes,
                                           "output_axes": out_axes})
        self.add_weight("kernel", tuple(kernel_shape), init, self.kernel_regularizer,
                        constraint=self.kernel_constraint)
        if bias_shape is not None:
            self.add_weight("bias", tuple(bias_shape), self.bias_initializer,
                            self.bias_regularizer, constraint=self.bias_constraint)
        self.input_ndim = len(input_shape)
        super().build(input_shape)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        try:
            out = torch.einsum(self.equation, cast_inputs(inputs, self.kernel), self.kernel)
        except RuntimeError as exc:
            raise ShapeError(f"{self._where()}: input of shape {tuple(inputs.shape)} does not "
                             f"fit the equation {self.equation!r} with kernel "
                             f"{tuple(self.kernel.shape)}: {exc}") from None
        if self.bias is not None:
            out = out + self.bias
        return self.activation(out)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(analyze_einsum(self.equation, self.bias_axes, input_shape,
                                    self.partial_output_shape, self._where())[2])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "output_shape": list(self.partial_output_shape),
                "equation": self.equation, "activation": activations.serialize(self.activation),
                "bias_axes": self.bias_axes,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
                "quantization_config": None}
