"""Baselines: the "absence of signal" an attribution is measured against.

Integrated gradients, the SHAP methods, LIME and the deletion/insertion curves all compare an input
with a reference. Which reference matters (Sturmfels et al., "Visualizing the Impact of Feature
Attribution Baselines", Distill 2020), so the choice is explicit:

=============  ==============================================================  ==================
name           baseline                                                         kind
=============  ==============================================================  ==================
``black``      zeros (a black image)                                            one per example
``zeros``      zeros (same as ``black``; the default for sequences / vectors)   one per example
``white``      ones (a white image in [0, 1])                                   one per example
``blurred``    the input under a Gaussian blur over its spatial / time axes     one per example
``mean``       the per-position mean of ``data`` (e.g. the training set)        one per example
``pad``        token inputs: every id replaced by ``pad_id`` (default 0)        one per example
``uniform``    ``num_samples`` noise inputs uniform in the inputs' value range  a distribution
``data``       ``num_samples`` examples drawn from ``data`` (SHAP background)   a distribution
a number       every value set to it                                            one per example
a tensor       ``x.shape[1:]`` or ``(1, ...)``: shared; ``(B, ...)``: one per    as given
               example; ``(M, ...)`` with ``M != B``: a distribution
=============  ==============================================================  ==================

Integrated gradients, KernelSHAP, LIME and the faithfulness curves need one baseline per example;
GradientSHAP and DeepSHAP accept either (a per-example baseline is a distribution of one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bigmodel.errors import ConfigError, InputTypeError, ShapeError, describe
from bigmodel.explain.inputs import InputSpec

BASELINES = ("black", "zeros", "white", "blurred", "mean", "pad", "uniform", "data")
_DISTRIBUTIONS = ("uniform", "data")


@dataclass
class Baseline:
    """Baseline values and how they pair with the inputs.

    Attributes:
        values: ``(B, ...)`` one per example (``distribution=False``) or ``(M, ...)`` samples of a
            distribution shared by every example (``distribution=True``).
        distribution: see above.
        name: what was asked for (``"black"``, ``"tensor"``, ...).
    """

    values: torch.Tensor
    distribution: bool
    name: str

    def per_example(self, method: str) -> torch.Tensor:
        """``(B, ...)`` values; raises for a distribution, which ``method`` cannot use."""
        if self.distribution:
            singles = [b for b in BASELINES if b not in _DISTRIBUTIONS]
            raise ConfigError(f"explain: method {method!r} needs one baseline per example; "
                              f"baseline {self.name!r} is a distribution of {len(self.values)} "
                              f"samples (use it with gradient_shap or deep_shap). Baselines that "
                              f"apply: {', '.join(singles)}, a number or a tensor")
        return self.values


def default_baseline(spec: InputSpec) -> str:
    """``black`` for images, ``pad`` for token ids, ``zeros`` otherwise."""
    return {"image": "black", "tokens": "pad"}.get(spec.kind, "zeros")


def gaussian_blur(x: torch.Tensor, sigma: float, axes: tuple[int, ...],
                  truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian blur of ``x`` along ``axes`` (mirror padding at the edges).

    The kernel has radius ``int(truncate * sigma + 0.5)`` like ``scipy.ndimage.gaussian_filter``
    with ``mode="mirror"``; where the radius reaches past an axis, edges are replicated instead.
    """
    if sigma <= 0:
        return x.clone()
    radius = int(truncate * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(x.dtype).to(x.device)
    out = x
    for axis in axes:
        axis = axis % x.ndim
        moved = out.movedim(axis, -1)
        shape = moved.shape
        rows = moved.reshape(-1, 1, shape[-1])
        mode = "reflect" if radius < shape[-1] else "replicate"
        rows = F.pad(rows, (radius, radius), mode=mode)
        rows = F.conv1d(rows, kernel.view(1, 1, -1))
        out = rows.reshape(shape).movedim(-1, axis)
    return out


def _spatial_axes(spec: InputSpec) -> tuple[int, ...]:
    if spec.kind == "image":
        return (1, 2) if spec.channels_last else (2, 3)
    return (1,)  # time axis of sequences, feature axis of vectors


def make_baseline(baseline: Any, x: torch.Tensor, spec: InputSpec, *, data: Any = None,
                  sigma: float | None = None, pad_id: int = 0, num_samples: int = 20,
                  seed: int = 0) -> Baseline:
    """The :class:`Baseline` ``baseline`` (a name from :data:`BASELINES`, a number or a tensor).

    Args:
        x: the inputs being explained ``(B, ...)``.
        data: reference examples ``(N, ...)`` laid out like ``x``, for ``mean`` and ``data``.
        sigma: blur width for ``blurred`` (default: a tenth of the largest spatial size).
        pad_id: the padding token id for ``pad``.
        num_samples: size of the ``uniform`` / ``data`` distributions.
        seed: random seed for those distributions.

    Raises:
        ConfigError: an unknown name (lists the known ones) or a name that does
            not fit the input type (e.g. ``blurred`` for token ids).
        ShapeError: a tensor or ``data`` whose shape does not match the inputs.
    """
    if baseline is None:
        baseline = default_baseline(spec)
    tokens = spec.kind == "tokens"
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        if tokens and not float(baseline).is_integer():
            raise ConfigError(f"explain: a token baseline must be an integer id; received "
                              f"{baseline!r}")
        return Baseline(torch.full_like(x, baseline), False, f"constant {baseline:g}")
    if isinstance(baseline, (np.ndarray, torch.Tensor)):
        return _tensor_baseline(torch.as_tensor(baseline), x)
    if not isinstance(baseline, str):
        raise InputTypeError(f"explain: baseline must be a name ({', '.join(BASELINES)}), a number "
                             f"or a tensor; received {describe(baseline)}")
    if baseline not in BASELINES:
        raise ConfigError(f"explain: unknown baseline {baseline!r}; known baselines: "
                          f"{', '.join(BASELINES)} (or a number or a tensor)")
    if tokens and baseline not in ("pad", "data"):
        raise ConfigError(f"explain: baseline {baseline!r} does not apply to token ids; use 'pad' "
                          "(pad_id=...), 'data', an integer or a tensor of ids")
    if baseline == "pad" and not tokens:
        raise ConfigError(f"explain: baseline 'pad' is for token ids; the inputs are "
                          f"{spec.kind}s {describe(x)}")
    if baseline in ("black", "zeros"):
        return Baseline(torch.zeros_like(x), False, baseline)
    if baseline == "white":
        return Baseline(torch.ones_like(x), False, baseline)
    if baseline == "pad":
        return Baseline(torch.full_like(x, int(pad_id)), False, baseline)
    if baseline == "blurred":
        axes = _spatial_axes(spec)
        if sigma is None:
            sigma = 0.1 * max(x.shape[a] for a in axes)
        return Baseline(gaussian_blur(x, float(sigma), axes), False, baseline)
    generator = torch.Generator().manual_seed(seed)
    if baseline == "uniform":
        low, high = float(x.min()), float(x.max())
        values = torch.rand((num_samples, *x.shape[1:]), generator=generator)
        return Baseline((low + (high - low) * values).to(x.dtype).to(x.device), True, baseline)
    reference = _reference_data(data, x, baseline)
    if baseline == "mean":
        mean = reference.double().mean(dim=0, keepdim=True).to(x.dtype)
        return Baseline(mean.expand_as(x).clone(), False, baseline)
    picks = torch.randperm(len(reference), generator=generator)[:num_samples]
    return Baseline(reference[picks.to(reference.device)].clone(), True, baseline)


def _reference_data(data: Any, x: torch.Tensor, name: str) -> torch.Tensor:
    if data is None:
        raise ConfigError(f"explain: baseline {name!r} needs data= (reference examples laid out "
                          f"like the inputs, e.g. training images {tuple(x.shape[1:])})")
    reference = torch.as_tensor(np.asarray(data) if not isinstance(data, torch.Tensor) else data)
    if reference.dtype == torch.float64:
        reference = reference.float()
    if tuple(reference.shape[1:]) != tuple(x.shape[1:]) or len(reference) == 0:
        raise ShapeError(f"explain: data= for baseline {name!r} must be examples shaped "
                         f"(N, {', '.join(map(str, x.shape[1:]))}) like the inputs; received "
                         f"{describe(reference)}")
    if reference.is_floating_point() != x.is_floating_point():
        raise InputTypeError(f"explain: data= has dtype {reference.dtype} but the inputs "
                             f"{x.dtype}")
    return reference.to(x.device, x.dtype)


def _tensor_baseline(values: torch.Tensor, x: torch.Tensor) -> Baseline:
    values = values.to(x.device)
    values = values.to(x.dtype) if x.is_floating_point() or not values.is_floating_point() \
        else values
    if not x.is_floating_point() and values.is_floating_point():
        raise InputTypeError(f"explain: a baseline for token ids must hold integer ids; received "
                             f"{describe(values)}")
    item = tuple(x.shape[1:])
    if tuple(values.shape) == item:
        values = values.unsqueeze(0)
    if tuple(values.shape[1:]) != item:
        raise ShapeError(f"explain: a baseline tensor must be shaped like one input "
                         f"{item}, (1, ...), (B, ...) or (M, ...) samples; received "
                         f"{describe(values)} for inputs {describe(x)}")
    if len(values) == 1:
        return Baseline(values.expand_as(x).clone(), False, "tensor")
    if len(values) == len(x):
        return Baseline(values.clone(), False, "tensor")
    return Baseline(values.clone(), True, "tensor")


def shared_or_none(values: torch.Tensor) -> torch.Tensor | None:
    """``values[:1]`` when every example has the same baseline, else None (batching helper)."""
    first = values[:1]
    return first if torch.equal(values, first.expand_as(values)) else None
