"""The attribution methods ``explain`` offers, each a small adapter around Captum.

====================  =========================================================================
method                what it computes (Captum class; options and defaults)
====================  =========================================================================
saliency              ``|d f_c / d x|`` (``Saliency``; ``abs=True``)
integrated_gradients  ``(x - b) * mean_a d f_c(b + a (x - b)) / d x`` over ``n_steps=50`` points
                      (``IntegratedGradients``, Gauss-Legendre; ``integration=``)
gradient_shap         expected gradients from baseline samples (``GradientShap``; ``n_samples=20``,
                      ``stdevs=0.0``)
deep_shap             DeepLIFT multipliers averaged over baselines (``DeepLiftShap``; functional
                      ReLU / max-pool calls made visible to it, see :mod:`.modular`)
kernel_shap           weighted linear regression on coalitions of features (``KernelShap``;
                      ``n_samples=500``) -- features from :mod:`.segmentation`
lime                  local ridge surrogate on random feature subsets (``Lime``; ``n_samples=500``,
                      ``alpha=1.0``, ``kernel_width=0.25`` cosine kernel in feature space)
gradcam               Grad-CAM on the last convolutional layer (:mod:`.gradcam`; ``layer``,
                      ``relu=True``)
attention             attention rollout and raw per-head maps (:mod:`.attention`; ``query``:
                      default the class token a model prepends and reads, else ``"mean"``;
                      ``head_fusion="mean"``, ``residual=True``)
====================  =========================================================================

Token-id inputs: the gradient methods work at the output of the model's first embedding layer
(found automatically, or ``embedding_layer=``), one example at a time: the baseline ids are embedded,
the embedding output is replaced by the interpolated / sampled values (the rest of the model still
sees the real ids, e.g. for padding masks), and attributions are summed over the embedding
dimension. The perturbation methods switch tokens off the same way (their embedding becomes the
baseline id's); only for a model without an embedding layer do they replace the ids themselves.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from bigmodel.errors import ConfigError
from bigmodel.explain.baselines import Baseline, make_baseline, shared_or_none
from bigmodel.explain.inputs import InputSpec, ModelSurvey, Scorer, display_name, find_module
from bigmodel.explain.runtime import FUNCTIONAL_EMBEDDING, EmbeddingSite, EmbeddingSpace
from bigmodel.explain.segmentation import feature_masks, num_features


@dataclass
class Context:
    """Everything a method needs; built once per ``explain`` call."""

    model: nn.Module
    scorer: Scorer
    x: torch.Tensor
    targets: torch.Tensor
    spec: InputSpec
    survey: ModelSurvey
    baseline: Any = None
    data: Any = None
    pad_id: int = 0
    blur_sigma: float | None = None
    batch_size: int = 256
    seed: int = 0
    _baselines: dict = field(default_factory=dict)

    def baselines(self, num_samples: int = 20) -> Baseline:
        key = num_samples
        if key not in self._baselines:
            self._baselines[key] = make_baseline(
                self.baseline, self.x, self.spec, data=self.data, sigma=self.blur_sigma,
                pad_id=self.pad_id, num_samples=num_samples, seed=self.seed)
        return self._baselines[key]

    def embedding(self, layer: Any = None) -> EmbeddingSite:
        """The embedding whose output token methods work on: ``layer``, the first embedding module
        fed the ids, or the model's own ``F.embedding`` lookup of them."""
        if layer is not None:
            return EmbeddingSite(*find_module(self.model, layer, "embedding_layer="))
        layers = self.survey.embedding_layers()
        if layers:
            return EmbeddingSite(layers[0].name, layers[0].module)
        if self.survey.functional_embedding is not None:
            return EmbeddingSite(FUNCTIONAL_EMBEDDING, weight=self.survey.functional_embedding)
        raise ConfigError(_embedding_reason(self.survey))


@dataclass
class MethodResult:
    attributions: torch.Tensor
    baselines: torch.Tensor | None = None
    baseline_name: str | None = None
    convergence_delta: torch.Tensor | None = None
    feature_mask: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)
    distribution: bool = False  # baselines are samples of a distribution, not one per example


@dataclass(frozen=True)
class Method:
    """A named attribution method: default options, a runner and an applicability check."""

    name: str
    summary: str
    defaults: dict
    run: Callable[[Context, dict], MethodResult]
    applies: Callable[[Context], str | None]
    requires: tuple[str, ...] = ("captum",)

    def missing_packages(self) -> list[str]:
        """The Python packages this method needs that are not installed."""
        import importlib.util

        return [name for name in self.requires if importlib.util.find_spec(name) is None]


def _embedding_reason(survey: ModelSurvey) -> str:
    return (f"explaining token ids with gradients needs an embedding layer fed the ids "
            f"(torch.nn.Embedding, Keras Embedding or an F.embedding lookup); none ran in "
            f"{survey.model_name} (name one with embedding_layer=)")


def _always(_ctx: Context) -> str | None:
    return None


def _gradient_applies(ctx: Context) -> str | None:
    if ctx.spec.kind == "tokens" and not ctx.survey.can_embed():
        return _embedding_reason(ctx.survey)
    return None


def _chunks(count: int, rows_per_example: int, batch_size: int):
    step = max(1, batch_size // max(1, rows_per_example))
    for start in range(0, count, step):
        yield slice(start, min(count, start + step))


def _embedding_space(run: Callable[[Context, dict], MethodResult], gradients: bool = True
                     ) -> Callable[[Context, dict], MethodResult]:
    """``run`` on float inputs. For token ids: ``run`` per example on the embedding output (see
    :class:`~bigmodel.explain.runtime.EmbeddingSpace`), baseline ids embedded, results summed over
    the embedding dimension. Perturbation methods (``gradients=False``) on a model without an
    embedding layer perturb the ids themselves instead."""

    def wrapped(ctx: Context, opts: dict) -> MethodResult:
        if ctx.spec.kind != "tokens":
            return run(ctx, opts)
        if not gradients and opts["embedding_layer"] is None and not ctx.survey.can_embed():
            return run(ctx, opts)
        site = ctx.embedding(opts["embedding_layer"])
        baseline = ctx.baselines(opts.get("n_baselines", 20)) if run is not _saliency else None
        embedded_x = site.embed(ctx.x)
        embedded_b = None if baseline is None else site.embed(baseline.values)
        results = []
        for i in range(len(ctx.x)):
            reference = None
            if embedded_b is not None:
                reference = embedded_b if baseline.distribution else embedded_b[i: i + 1]
            sub = Context(model=ctx.model, scorer=EmbeddingSpace(ctx.scorer, site,
                                                                 ctx.x[i: i + 1]),
                          x=embedded_x[i: i + 1], targets=ctx.targets[i: i + 1],
                          spec=InputSpec("sequence"), survey=ctx.survey, baseline=reference,
                          batch_size=ctx.batch_size, seed=ctx.seed + i)
            results.append(run(sub, opts))
        first = results[0]
        delta = None if first.convergence_delta is None else torch.cat(
            [r.convergence_delta for r in results])
        mask = None if first.feature_mask is None else torch.cat(
            [r.feature_mask[..., 0] for r in results])
        extras = dict(first.extras, embedding_layer=site.name)
        if "num_features" in extras:
            extras["num_features"] = [n for r in results for n in r.extras["num_features"]]
        return MethodResult(torch.cat([r.attributions.sum(dim=-1) for r in results]),
                            None if baseline is None else baseline.values,
                            None if baseline is None else baseline.name, delta,
                            feature_mask=mask, extras=extras,
                            distribution=bool(baseline is not None and baseline.distribution))

    return wrapped


# -- gradient methods ----------------------------------------------------------------------------


def _saliency(ctx: Context, opts: dict) -> MethodResult:
    from captum.attr import Saliency

    method = Saliency(ctx.scorer)
    parts = [method.attribute(ctx.x[part], target=ctx.targets[part], abs=bool(opts["abs"]))
             for part in _chunks(len(ctx.x), 1, ctx.batch_size)]
    return MethodResult(torch.cat(parts))


def _integrated_gradients(ctx: Context, opts: dict) -> MethodResult:
    from captum.attr import IntegratedGradients

    steps = opts["n_steps"]
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"explain: integrated_gradients n_steps must be a positive int; "
                          f"received {steps!r}")
    baseline = ctx.baselines()
    values = baseline.per_example("integrated_gradients")
    method = IntegratedGradients(ctx.scorer)
    attributions, deltas = [], []
    for part in _chunks(len(ctx.x), steps, ctx.batch_size):
        attribution, delta = method.attribute(
            ctx.x[part], baselines=values[part], target=ctx.targets[part], n_steps=steps,
            method=opts["integration"], return_convergence_delta=True)
        attributions.append(attribution)
        deltas.append(delta)
    return MethodResult(torch.cat(attributions), values, baseline.name, torch.cat(deltas))


def _distribution(ctx: Context, opts: dict, minimum: int = 1) -> tuple[Baseline, list]:
    """The baseline and ``[(example slice, baseline samples), ...]`` to run GradientSHAP/DeepSHAP."""
    baseline = ctx.baselines(opts.get("n_baselines", 20))

    def at_least(samples: torch.Tensor) -> torch.Tensor:
        if len(samples) >= minimum:
            return samples
        return samples.repeat(-(-minimum // len(samples)), *([1] * (samples.ndim - 1)))

    if baseline.distribution:
        return baseline, [(slice(0, len(ctx.x)), at_least(baseline.values))]
    shared = shared_or_none(baseline.values)
    if shared is not None:
        return baseline, [(slice(0, len(ctx.x)), at_least(shared))]
    return baseline, [(slice(i, i + 1), at_least(baseline.values[i: i + 1]))
                      for i in range(len(ctx.x))]


def _gradient_shap(ctx: Context, opts: dict) -> MethodResult:
    from captum.attr import GradientShap

    samples, stdevs = opts["n_samples"], float(opts["stdevs"])
    if not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"explain: gradient_shap n_samples must be a positive int; received "
                          f"{samples!r}")
    method = GradientShap(ctx.scorer)
    baseline, jobs = _distribution(ctx, opts)
    out = torch.zeros(ctx.x.shape, dtype=torch.float32, device=ctx.x.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.seed)
        for examples, references in jobs:
            for part in _chunks(examples.stop - examples.start, samples, ctx.batch_size):
                rows = slice(examples.start + part.start, examples.start + part.stop)
                out[rows] = method.attribute(ctx.x[rows], baselines=references,
                                             target=ctx.targets[rows], n_samples=samples,
                                             stdevs=stdevs).float()
    return MethodResult(out, baseline.values, baseline.name, distribution=baseline.distribution)


def _deep_shap(ctx: Context, opts: dict) -> MethodResult:
    from captum.attr import DeepLiftShap

    from bigmodel.explain.modular import ModularNonlinearities

    wrapped = ModularNonlinearities(ctx.scorer, ctx.x[:1])
    try:
        method = DeepLiftShap(wrapped)
        baseline, jobs = _distribution(ctx, opts, minimum=2)
        out = torch.zeros(ctx.x.shape, dtype=torch.float32, device=ctx.x.device)
        deltas = torch.zeros(len(ctx.x))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Setting forward, backward hooks",
                                    category=UserWarning)
            for examples, references in jobs:
                count = len(references)
                for part in _chunks(examples.stop - examples.start, count, ctx.batch_size):
                    rows = slice(examples.start + part.start, examples.start + part.stop)
                    attribution, delta = method.attribute(
                        ctx.x[rows], baselines=references, target=ctx.targets[rows],
                        return_convergence_delta=True)
                    out[rows] = attribution.float()
                    # one delta per (example, baseline): their mean is the example's gap
                    deltas[rows] = delta.detach().float().cpu().view(-1, count).mean(dim=1)
    finally:
        wrapped.close()
    extras = {"rules_for_functional_calls": len(wrapped.routed)}
    return MethodResult(out, baseline.values, baseline.name, deltas, extras=extras,
                        distribution=baseline.distribution)


# -- perturbation methods ------------------------------------------------------------------------


def _masks(ctx: Context, opts: dict) -> torch.Tensor:
    return feature_masks(ctx.x, ctx.spec, opts["segmentation"], n_segments=opts["n_segments"],
                         patch_size=opts["patch_size"], compactness=opts["compactness"],
                         group_size=opts["group_size"])


def _check_samples(name: str, value: Any) -> int:
    if not isinstance(value, int) or value < 2:
        raise ConfigError(f"explain: {name} n_samples must be an int >= 2; received {value!r}")
    return value


def _cosine_kernel(width: float) -> Callable[..., torch.Tensor]:
    """LIME's image kernel: ``exp(-d^2 / (2 w^2))``, d the cosine distance of the on/off vector to
    the all-on vector (as the ``lime`` package computes it)."""

    def similarity(_original: Any, _perturbed: Any, interpretable: torch.Tensor,
                   **_kwargs: Any) -> torch.Tensor:
        z = interpretable.float().reshape(-1)
        on = z.sum()
        cosine = on / (z.numel() ** 0.5 * on.sqrt()) if on > 0 else torch.tensor(0.0)
        distance = 1.0 - cosine
        return torch.exp(-(distance ** 2) / (2 * width ** 2)).reshape(1)

    return similarity


def _perturbation(name: str) -> Callable[[Context, dict], MethodResult]:
    def run(ctx: Context, opts: dict) -> MethodResult:
        from captum._utils.models.linear_model import SkLearnRidge
        from captum.attr import KernelShap, Lime

        samples = _check_samples(name, opts["n_samples"])
        baseline = ctx.baselines()
        values = baseline.per_example(name)
        masks = _masks(ctx, opts)
        if name == "lime":
            method = Lime(ctx.scorer, interpretable_model=SkLearnRidge(alpha=float(opts["alpha"])),
                          similarity_func=_cosine_kernel(float(opts["kernel_width"])))
        else:
            method = KernelShap(ctx.scorer)
        out = torch.zeros(ctx.x.shape, dtype=torch.float32, device=ctx.x.device)
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)
            torch.manual_seed(ctx.seed)
            for i in range(len(ctx.x)):
                one = slice(i, i + 1)
                replicated = method.attribute(
                    ctx.x[one], baselines=values[one], target=int(ctx.targets[i]),
                    feature_mask=masks[one], n_samples=samples,
                    perturbations_per_eval=max(1, min(ctx.batch_size, samples))).float()
                # Captum repeats each group's coefficient on every value of the group; spread it
                # evenly instead, so attributions sum to the coefficients (and to f(x) - f(b)).
                labels = masks[one].expand_as(ctx.x[one]).reshape(-1)
                sizes = torch.bincount(labels).float()
                out[one] = (replicated.reshape(-1) / sizes[labels]).view_as(replicated)
        return MethodResult(out, values, baseline.name, feature_mask=masks,
                            extras={"num_features": num_features(masks)})

    return run


# -- layer / attention methods ---------------------------------------------------------------------


def _gradcam(ctx: Context, opts: dict) -> MethodResult:
    from bigmodel.explain.gradcam import channel_axis_of, find_gradcam_layer, grad_cam, upsample

    name, module = find_gradcam_layer(ctx.model, ctx.survey, ctx.spec, opts["layer"])
    low = grad_cam(ctx.scorer, ctx.x, ctx.targets, module, channel_axis_of(module),
                   relu=bool(opts["relu"]), batch_size=ctx.batch_size)
    positions = upsample(low, ctx.spec.spatial_shape(ctx.x))
    attributions = positions if ctx.spec.kind == "tokens" else ctx.spec.expand_map(positions, ctx.x)
    return MethodResult(attributions.contiguous().float(),
                        extras={"layer": display_name(name, module), "layer_map": low.cpu()})


def _attention_applies(ctx: Context) -> str | None:
    if not ctx.survey.attention:
        return (f"needs attention layers (modules with store_attention_weights, or whose forward "
                f"takes need_weights / return_attention_scores, e.g. torch.nn.MultiheadAttention); "
                f"{ctx.survey.model_name} has none that ran")
    return None


def _attention(ctx: Context, opts: dict) -> MethodResult:
    from bigmodel.explain.attention import (
        attention_rollout,
        collect_attention,
        frames_to_image,
        token_relevance,
        tokens_to_image,
    )
    from bigmodel.explain.spectrogram import spectrogram_axes

    modules = [(r.name, r.module) for r in ctx.survey.attention]
    maps = collect_attention(ctx.model, ctx.x, modules, batch_size=ctx.batch_size)
    chosen = maps
    if opts["layers"] is not None:
        wanted = list(opts["layers"])
        bad = [i for i in wanted if not isinstance(i, int) or not -len(maps) <= i < len(maps)]
        if bad:
            raise ConfigError(f"explain: attention layers {bad} out of range; the model has "
                              f"{len(maps)} attention layers (0..{len(maps) - 1})")
        chosen = [maps[i] for i in wanted]
    rollout = attention_rollout([m for _, m in chosen], opts["head_fusion"], bool(opts["residual"]))
    spec = ctx.spec
    query = opts["query"]
    cls = _class_token(ctx.model, rollout.shape[-1], ctx.x, spec)
    if query is None:  # the class token the model reads, else the mean of the rows
        query = 0 if cls is not None and _reads_class_token(ctx.model) else "mean"
    relevance = token_relevance(rollout, query).to(ctx.x.device)
    if cls is not None:  # the class token the model prepends is not an input token
        relevance = torch.cat([relevance[:, :cls], relevance[:, cls + 1:]], dim=1)
    elif spec.kind != "image" and isinstance(query, int) \
            and relevance.shape[1] == ctx.x.shape[1] + 1:
        keep = [i for i in range(relevance.shape[1]) if i != query % relevance.shape[1]]
        relevance = relevance[:, keep]
    if spec.kind == "image" and cls is None and spectrogram_axes(ctx.model, ctx.x.shape):
        # a speech model's tokens are time frames of its spectrogram, not image patches
        positions = frames_to_image(relevance, spec.spatial_shape(ctx.x))
        attributions = spec.expand_map(positions, ctx.x)
    elif spec.kind == "image":
        drop = query if isinstance(query, int) and cls is None else None
        positions = tokens_to_image(relevance, spec.spatial_shape(ctx.x), drop)
        attributions = spec.expand_map(positions, ctx.x)
    elif spec.kind in ("tokens", "vector"):
        if relevance.shape[1] != ctx.x.shape[1]:
            raise ConfigError(f"explain: the attention maps cover {relevance.shape[1]} tokens but "
                              f"the inputs have {ctx.x.shape[1]}; pass query=<index> / layers= "
                              "or use a gradient method")
        attributions = relevance
    else:
        if relevance.shape[1] != ctx.x.shape[1]:
            raise ConfigError(f"explain: the attention maps cover {relevance.shape[1]} positions "
                              f"but the sequences have {ctx.x.shape[1]} time steps")
        attributions = spec.expand_map(relevance, ctx.x)
    return MethodResult(attributions.contiguous().float(), extras={
        "attention": {name: weights for name, weights in maps}, "rollout": rollout.cpu(),
        "rollout_layers": [name for name, _ in chosen], "query": query,
        "class_token": cls})


def _class_token(model: nn.Module, positions: int, x: torch.Tensor, spec: InputSpec) -> int | None:
    """Index (0) of the class token a model prepends to its inputs -- it has a ``cls_token``
    parameter (ViT, the Transformer classifier with ``[CLS]`` pooling) and the attention maps
    cover one position more than the inputs (tokens) or than a square grid of patches (images)
    -- else None."""
    import math

    if getattr(model, "cls_token", None) is None:
        return None
    if spec.kind == "image":
        side = math.isqrt(positions - 1)
        return 0 if positions > 1 and side * side == positions - 1 else None
    return 0 if x.ndim >= 2 and positions == x.shape[1] + 1 else None


def _reads_class_token(model: nn.Module) -> bool:
    """Whether the model's head reads the class token (``pool`` / ``pooling`` is ``"cls"``)."""
    return getattr(model, "pool", getattr(model, "pooling", None)) == "cls"


_PERTURBATION_DEFAULTS = {"n_samples": 500, "segmentation": "auto", "n_segments": 50,
                          "patch_size": 4, "compactness": 0.2, "group_size": 1,
                          "embedding_layer": None}

METHODS: dict[str, Method] = {m.name: m for m in (
    Method("integrated_gradients", "path integral of gradients from the baseline (Captum)",
           {"n_steps": 50, "integration": "gausslegendre", "embedding_layer": None},
           _embedding_space(_integrated_gradients), _gradient_applies),
    Method("saliency", "absolute input gradient (Captum Saliency)",
           {"abs": True, "embedding_layer": None}, _embedding_space(_saliency), _gradient_applies),
    Method("gradient_shap", "expected gradients over baseline samples (Captum GradientShap)",
           {"n_samples": 20, "stdevs": 0.0, "n_baselines": 20, "embedding_layer": None},
           _embedding_space(_gradient_shap), _gradient_applies),
    Method("deep_shap", "DeepLIFT rescale rule averaged over baselines (Captum DeepLiftShap)",
           {"n_baselines": 20, "embedding_layer": None}, _embedding_space(_deep_shap),
           _gradient_applies),
    Method("kernel_shap", "Shapley values of feature groups by weighted regression (Captum)",
           dict(_PERTURBATION_DEFAULTS), _embedding_space(_perturbation("kernel_shap"), False),
           _always, ("captum", "sklearn")),
    Method("lime", "local linear surrogate on feature groups (Captum Lime, ridge)",
           {**_PERTURBATION_DEFAULTS, "alpha": 1.0, "kernel_width": 0.25},
           _embedding_space(_perturbation("lime"), False), _always, ("captum", "sklearn")),
    Method("gradcam", "Grad-CAM on the last convolutional layer",
           {"layer": None, "relu": True}, _gradcam, lambda ctx: _gradcam_applies(ctx), ()),
    Method("attention", "attention rollout + raw per-head maps",
           {"query": None, "head_fusion": "mean", "residual": True, "layers": None},
           _attention, _attention_applies, ()),
)}


def _gradcam_applies(ctx: Context) -> str | None:
    from bigmodel.explain.gradcam import gradcam_applies

    return gradcam_applies(ctx.survey, ctx.spec)


def applicable(ctx: Context) -> list[str]:
    """Names of the methods that can explain ``ctx``'s model and inputs."""
    return [name for name, method in METHODS.items() if method.applies(ctx) is None]
