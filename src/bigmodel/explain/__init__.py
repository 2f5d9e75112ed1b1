"""Explain a classifier's decisions: attributions, faithfulness scores and pictures.

    from bigmodel.explain import explain
    result = explain(model, images, method="integrated_gradients")   # an Explanation
    result.plot(0, path="ig.png")
    from bigmodel.explain.metrics import faithfulness
    faithfulness(model, result)        # deletion / insertion AUC vs random order, completeness

Works on any ``nn.Module`` returning class scores ``(B, K)`` -- plain PyTorch models, registry
models and Keras-surface models alike -- without per-model code: images (NCHW, or channels-last for
Keras models), sequences ``(B, T, F)``, token ids ``(B, T)`` and vectors ``(B, F)``. Methods:
:data:`bigmodel.explain.methods.METHODS`; see ``docs/explain.md``.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from bigmodel.errors import ConfigError, InputTypeError, UnknownNameError, describe
from bigmodel.explain.explanation import Explanation
from bigmodel.explain.inputs import (
    ModelSurvey,
    Scorer,
    check_names,
    infer_spec,
    resolve_targets,
    run_model,
    to_tensor,
)
from bigmodel.explain.methods import METHODS, Context, applicable
from bigmodel.explain.runtime import model_device, prepared
from bigmodel.explain.spectrogram import spectrogram_axes

__all__ = ["METHODS", "Explanation", "applicable_methods", "explain"]


def _prepare(model: Any, inputs: Any, target: Any, *, input_type: str, channels_last: bool | None,
             output: str, baseline: Any, data: Any, pad_id: int, blur_sigma: float | None,
             batch_size: int | None, seed: int) -> tuple[Context, torch.Tensor]:
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"explain: model must be a torch.nn.Module; received "
                             f"{describe(model)}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"explain: batch_size must be None (automatic) or a positive int; "
                          f"received {batch_size!r}")
    x = to_tensor(inputs, model_device(model))
    spec, x = infer_spec(model, x, input_type, channels_last)
    scorer = Scorer(model, output)
    scores = run_model(scorer, x, batch_size or 256)
    survey = ModelSurvey(model, x[:1])
    if batch_size is None:
        batch_size = survey.batch_rows()
    probabilities = scores if scorer.returns_probabilities else scores.softmax(dim=-1)
    predictions = probabilities.argmax(dim=-1)
    targets = resolve_targets(target, predictions, scores.shape[1])
    ctx = Context(model=model, scorer=scorer, x=x, targets=targets, spec=spec, survey=survey,
                  baseline=baseline, data=data, pad_id=pad_id, blur_sigma=blur_sigma,
                  batch_size=batch_size, seed=seed)
    return ctx, probabilities


def applicable_methods(model: nn.Module, inputs: Any, *, input_type: str = "auto",
                       channels_last: bool | None = None) -> list[str]:
    """Names of the methods that apply to ``model`` on ``inputs`` (one example is enough)."""
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"applicable_methods: model must be a torch.nn.Module; received "
                             f"{describe(model)}")
    with prepared(model):
        ctx, _ = _prepare(model, inputs, None, input_type=input_type, channels_last=channels_last,
                          output="auto", baseline=None, data=None, pad_id=0, blur_sigma=None,
                          batch_size=256, seed=0)
        return applicable(ctx)


def explain(model: nn.Module, inputs: Any, target: Any = None,
            method: str = "integrated_gradients", *, baseline: Any = None, data: Any = None,
            labels: Any = None, input_type: str = "auto", channels_last: bool | None = None,
            output: str = "auto", pad_id: int = 0, blur_sigma: float | None = None,
            batch_size: int | None = None, seed: int = 0, class_names: list | None = None,
            tokens: list | None = None, **options: Any) -> Explanation:
    """Attribute the class scores of ``model`` on ``inputs`` with ``method``.

    Args:
        model: a classifier ``nn.Module`` (plain PyTorch, registry or Keras surface) returning
            ``(B, K)`` scores. It runs in eval mode during the call (mode restored afterwards).
        inputs: a batch (tensor or NumPy): images ``(B, C, H, W)`` / channels-last, sequences
            ``(B, T, F)``, token ids ``(B, T)`` (integers) or vectors ``(B, F)``.
        target: class to explain: None (the predicted class), an int, or one int per example.
        method: one of :data:`METHODS`.
        baseline: reference input (see :mod:`bigmodel.explain.baselines`): a name (``black``,
            ``blurred``, ``mean``, ``pad``, ``uniform``, ``data``...), a number or a tensor.
            Default: ``black`` for images, ``pad`` for tokens, ``zeros`` otherwise.
        data: reference examples laid out like ``inputs`` for the ``mean`` / ``data`` baselines.
        labels: true classes, kept for plots and reports.
        input_type: ``auto`` or one of ``image``, ``sequence``, ``tokens``, ``vector``.
        channels_last: images: whether the channel axis is last (default: True for Keras models,
            else inferred from the shape).
        output: explain the model's own outputs (``auto``), its ``probabilities`` or the
            ``logits`` of a Keras model ending in softmax.
        pad_id: token id of the ``pad`` baseline.
        blur_sigma: width of the ``blurred`` baseline (default a tenth of the image side).
        batch_size: most rows per forward pass (integration steps and perturbations are batched);
            None: as many as fit an activation budget of about 1 GiB, 32..2048 (bigger batches
            run much faster on CPU).
        seed: seeds the sampling methods (global RNG state is left untouched).
        class_names / tokens: names used by plots (tokens: per example, a list of strings).
        **options: method options (see :mod:`bigmodel.explain.methods`), e.g. ``n_steps=50``,
            ``n_samples=500``, ``segmentation="slic"``, ``layer="conv3"``, ``query=0``.

    Returns:
        An :class:`Explanation`.

    Raises:
        UnknownNameError: unknown method (lists the known ones).
        ConfigError: the method does not apply to this model/input (lists the methods that do),
            a target class out of range, an unknown option, a bad baseline.
        ShapeError / InputTypeError: inputs the model cannot take.
    """
    if method not in METHODS:
        raise UnknownNameError(f"Unknown explanation method {method!r}. Known methods: "
                               f"{', '.join(METHODS)}")
    spec_method = METHODS[method]
    missing = spec_method.missing_packages()
    if missing:
        names = " ".join("scikit-learn" if m == "sklearn" else m for m in missing)
        raise ConfigError(f"explain: method {method!r} needs the package(s) {names}, which are not "
                          f"installed (pip install {names})")
    check_names(list(options), list(spec_method.defaults), method)
    opts = {**spec_method.defaults, **options}
    started = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"explain: model must be a torch.nn.Module; received "
                             f"{describe(model)}")
    image_like = isinstance(inputs, (torch.Tensor, np.ndarray)) and inputs.ndim == 4
    with prepared(model, channels_last=image_like):
        ctx, probabilities = _prepare(
            model, inputs, target, input_type=input_type, channels_last=channels_last,
            output=output, baseline=baseline, data=data, pad_id=pad_id, blur_sigma=blur_sigma,
            batch_size=batch_size, seed=seed)
        label_tensor = None
        if labels is not None:
            label_tensor = torch.as_tensor(np.asarray(labels)).reshape(-1).long().cpu()
            if len(label_tensor) != len(ctx.x):
                raise ConfigError(f"explain: labels has {len(label_tensor)} entries for "
                                  f"{len(ctx.x)} examples")
        reason = spec_method.applies(ctx)
        if reason is not None and not (method == "gradcam" and opts.get("layer") is not None):
            raise ConfigError(f"explain: method {method!r} does not apply to "
                              f"{type(model).__name__} on {ctx.spec.kind} inputs: {reason}. "
                              f"Methods that apply: {', '.join(applicable(ctx)) or '(none)'}")
        method_started = time.perf_counter()
        with warnings.catch_warnings():  # Captum notes that it switched requires_grad on: expected
            warnings.filterwarnings("ignore", message=r"Input Tensor \d+ did not already require")
            result = spec_method.run(ctx, opts)
        method_seconds = time.perf_counter() - method_started
    total = time.perf_counter() - started
    extras = dict(result.extras)
    if ctx.spec.kind == "image" and not ctx.spec.channels_last:  # a speech model's spectrogram?
        axes = spectrogram_axes(model, tuple(ctx.x.shape))
        if axes is not None:  # units for its figures: time in s, frequency in Hz / coefficients
            extras.setdefault("spectrogram", axes)
    return Explanation(
        method=method, inputs=ctx.x.detach().cpu(),
        attributions=result.attributions.detach().float().cpu(),
        targets=ctx.targets.cpu(), predictions=probabilities.argmax(dim=-1).cpu(),
        probabilities=probabilities.detach().cpu(), input_type=ctx.spec.kind,
        channels_last=ctx.spec.channels_last,
        baselines=None if result.baselines is None else result.baselines.detach().cpu(),
        baseline_name=result.baseline_name, baseline_distribution=result.distribution,
        labels=label_tensor,
        feature_mask=None if result.feature_mask is None else result.feature_mask.cpu(),
        convergence_delta=None if result.convergence_delta is None
        else result.convergence_delta.detach().float().cpu(),
        timings={"total_s": total, "method_s": method_seconds,
                 "per_example_s": method_seconds / len(ctx.x)},
        options={**{k: v for k, v in opts.items() if _plain(v)}, "batch_size": ctx.batch_size},
        output=output,
        scores_are_probabilities=bool(ctx.scorer.returns_probabilities),
        extras=extras, class_names=list(class_names) if class_names else None,
        tokens=tokens)


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str)) or (
        isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str))
                                                 for v in value))
