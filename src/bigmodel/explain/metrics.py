"""Faithfulness: do the attributions say what the model actually uses?

Deletion and insertion curves (Petsiuk et al., "RISE", 2018)
-----------------------------------------------------------
Rank the features (pixels, time steps, tokens -- or the segments a perturbation method used) by
their total attribution, most positive first. *Deletion* replaces the top ``k/S`` fraction with the baseline for
``k = 0..S`` and records the probability of the explained class; a faithful ranking makes it fall
fast (small area under the curve). *Insertion* starts from the baseline and restores features in the
same order; it should rise fast (large area). Both are computed in the same call for ``n_random``
random orderings, the reference a ranking has to beat. Ties in the attribution are broken at random.

Completeness / efficiency
-------------------------
Integrated gradients satisfies ``sum(attributions) = f(x) - f(baseline)`` up to the integral's
discretization; SHAP values satisfy it exactly (efficiency: ``f(x) - E f(baseline)``). Both are
checked by running the model, not by trusting the attribution library, and reported as relative
errors ``|sum - (f(x) - f(b))| / |f(x) - f(b)|``.

Token ids explained through an embedding layer are removed the way the methods removed them: the
token's embedding becomes the baseline id's while the ids (and so padding masks) stay the text's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bigmodel.errors import ConfigError
from bigmodel.explain.baselines import make_baseline
from bigmodel.explain.explanation import Explanation
from bigmodel.explain.inputs import InputSpec, ModelSurvey, Scorer, find_module
from bigmodel.explain.runtime import (
    FUNCTIONAL_EMBEDDING,
    EmbeddingSite,
    EmbeddingSpace,
    functional_embedding_weight,
    prepared,
)


@dataclass
class Curves:
    """Deletion / insertion curves ``(B, steps + 1)`` over ``fractions`` of features changed."""

    fractions: torch.Tensor
    deletion: torch.Tensor
    insertion: torch.Tensor
    random_deletion: torch.Tensor
    random_insertion: torch.Tensor
    num_features: list

    @staticmethod
    def area(curve: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
        """Trapezoid area under each row of ``curve`` over ``fractions`` (0..1)."""
        return torch.trapezoid(curve, fractions, dim=-1)

    @property
    def deletion_auc(self) -> torch.Tensor:
        return self.area(self.deletion, self.fractions)

    @property
    def insertion_auc(self) -> torch.Tensor:
        return self.area(self.insertion, self.fractions)

    @property
    def random_deletion_auc(self) -> torch.Tensor:
        return self.area(self.random_deletion, self.fractions)

    @property
    def random_insertion_auc(self) -> torch.Tensor:
        return self.area(self.random_insertion, self.fractions)

    def summary(self) -> dict[str, float]:
        """Means over examples; ``deletion_gain`` = random minus attributed deletion AUC (> 0 is
        better than random), ``insertion_gain`` = attributed minus random insertion AUC."""
        deletion, random_deletion = self.deletion_auc.mean(), self.random_deletion_auc.mean()
        insertion, random_insertion = self.insertion_auc.mean(), self.random_insertion_auc.mean()
        return {"deletion_auc": float(deletion), "random_deletion_auc": float(random_deletion),
                "deletion_gain": float(random_deletion - deletion),
                "insertion_auc": float(insertion), "random_insertion_auc": float(random_insertion),
                "insertion_gain": float(insertion - random_insertion)}


def _features(explanation: Explanation, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature label per position ``(B, *positions)`` and score per position (same shape)."""
    spec = explanation.spec
    scores = spec.position_map(explanation.attributions.float())
    positions = scores.shape[1:]
    if explanation.feature_mask is not None:
        mask = explanation.feature_mask.expand(len(x), *explanation.feature_mask.shape[1:])
        if spec.kind == "image":
            labels = mask.select(spec.channel_axis % mask.ndim, 0)
        elif spec.kind == "sequence":
            labels = mask[..., 0]
        else:
            labels = mask
        return labels.reshape(len(x), -1).long(), scores.reshape(len(x), -1)
    count = int(torch.tensor(positions).prod()) if positions else 1
    labels = torch.arange(count).expand(len(x), count)
    return labels, scores.reshape(len(x), -1)


def deletion_insertion(model: nn.Module, explanation: Explanation, steps: int = 20,
                       baseline: Any = None, n_random: int = 3, seed: int = 0,
                       batch_size: int = 256, data: Any = None) -> Curves:
    """Deletion and insertion curves of the attribution ranking and of random rankings.

    Args:
        model: the model that was explained.
        explanation: from :func:`bigmodel.explain.explain`.
        steps: number of fractions after 0 (``steps + 1`` points from 0 to 1).
        baseline: what removed features become: a baseline name / number / tensor (see
            :mod:`bigmodel.explain.baselines`); default the explanation's own per-example baseline,
            else ``black`` / ``zeros`` / ``pad``. Use the same one to compare methods.
        n_random: random orderings averaged for the reference curves.
        seed: seeds the random orderings and tie-breaking.
        data: reference examples for a ``mean`` removal baseline.

    Raises:
        ConfigError: ``steps`` < 1, ``n_random`` < 1, or a distribution baseline.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"deletion_insertion: steps must be a positive int; received {steps!r}")
    if not isinstance(n_random, int) or n_random < 1:
        raise ConfigError(f"deletion_insertion: n_random must be a positive int; received "
                          f"{n_random!r}")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = explanation.inputs.to(device)
    spec = explanation.spec
    if baseline is None and explanation.baselines is not None \
            and not explanation.baseline_distribution:
        reference = explanation.baselines.to(device)
    else:
        reference = make_baseline(baseline, x, spec, data=data).per_example("deletion_insertion")
    labels, scores = _features(explanation, x)
    targets = explanation.targets.to(device)
    fractions = torch.linspace(0, 1, steps + 1)
    generator = torch.Generator().manual_seed(seed)
    scorer = Scorer(model, explanation.output)
    with prepared(model, channels_last=spec.kind == "image"):
        embedding = _embedding(model, explanation)  # in eval mode: a survey runs the model
        curves = {name: [] for name in ("deletion", "insertion", "random_deletion",
                                         "random_insertion")}
        counts = []
        for i in range(len(x)):
            n = int(labels[i].max()) + 1
            counts.append(n)
            feature_scores = torch.full((n,), -torch.inf).scatter_reduce(
                0, labels[i], scores[i], reduce="sum", include_self=False)
            jitter = torch.randperm(n, generator=generator)
            ordered = jitter[torch.argsort(-feature_scores[jitter], stable=True)]
            orders = [ordered] + [torch.randperm(n, generator=generator) for _ in range(n_random)]
            removed_counts = torch.round(fractions * n).long()  # (S+1,)
            batches = []
            for order in orders:
                rank = torch.empty(n, dtype=torch.long)
                rank[order] = torch.arange(n)
                position_rank = rank[labels[i]]  # (P,)
                hidden = position_rank[None, :] < removed_counts[:, None]  # (S+1, P)
                batches.append(hidden)
            hidden = torch.cat(batches).to(device)  # ((1 + R)(S+1), P)
            if embedding is not None:  # token ids: remove a token by its embedding (see runtime)
                function = EmbeddingSpace(scorer, embedding, x[i: i + 1])
                item = embedding.embed(x[i: i + 1])[0]
                base = embedding.embed(reference[i: i + 1])[0]
                item_spec = InputSpec("sequence")
            else:
                function, item, base, item_spec = scorer, x[i], reference[i], spec
            deleted = _compose(item, base, hidden, item_spec)
            inserted = _compose(item, base, hidden, item_spec, keep_when_true=True)
            probs = _probabilities(function, scorer, torch.cat([deleted, inserted]), batch_size)
            values = probs[:, targets[i]].cpu().view(2, 1 + n_random, steps + 1)
            curves["deletion"].append(values[0, 0])
            curves["random_deletion"].append(values[0, 1:].mean(dim=0))
            curves["insertion"].append(values[1, 0])
            curves["random_insertion"].append(values[1, 1:].mean(dim=0))
    stacked = {name: torch.stack(rows) for name, rows in curves.items()}
    return Curves(fractions, stacked["deletion"], stacked["insertion"],
                  stacked["random_deletion"], stacked["random_insertion"], counts)


def _embedding(model: nn.Module, explanation: Explanation) -> EmbeddingSite | None:
    """The embedding a token explanation worked on; for a method that named none (attention),
    the model's first embedding fed the ids, as the perturbation methods find it: replacing ids
    by padding could leave a row of padding only, which models with padding masks refuse. None
    for other inputs and for models without an embedding (those curves replace the ids)."""
    if explanation.input_type != "tokens":
        return None
    name = explanation.extras.get("embedding_layer")
    if not isinstance(name, str):
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        survey = ModelSurvey(model, explanation.inputs[:1].to(device))
        layers = survey.embedding_layers()
        if layers:
            return EmbeddingSite(layers[0].name, layers[0].module)
        if survey.functional_embedding is not None:
            return EmbeddingSite(FUNCTIONAL_EMBEDDING, weight=survey.functional_embedding)
        return None
    if name == FUNCTIONAL_EMBEDDING:
        ids = explanation.inputs[:1].to(next((p.device for p in model.parameters()),
                                             torch.device("cpu")))
        return EmbeddingSite(name, weight=functional_embedding_weight(model, ids))
    return EmbeddingSite(*find_module(model, name, "embedding_layer"))


def _probabilities(function: nn.Module, scorer: Scorer, x: torch.Tensor,
                   batch_size: int) -> torch.Tensor:
    parts = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            out = function(x[start: start + batch_size]).float()
            parts.append(out if scorer.returns_probabilities else out.softmax(dim=-1))
    return torch.cat(parts)


def _scores(function: nn.Module, x: torch.Tensor, target: torch.Tensor,
            batch_size: int) -> torch.Tensor:
    parts = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            parts.append(function(x[start: start + batch_size]).float()[:, target])
    return torch.cat(parts)


def _compose(x: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor, spec: Any,
             keep_when_true: bool = False) -> torch.Tensor:
    """Inputs ``(N, ...)`` taking ``reference`` where ``mask`` (``(N, P)`` over positions) is True
    (or ``x`` there when ``keep_when_true``), ``x`` / ``reference`` elsewhere."""
    count = len(mask)
    if spec.kind == "image":
        if spec.channels_last:
            height, width = x.shape[0], x.shape[1]
            full = mask.view(count, height, width, 1)
        else:
            height, width = x.shape[1], x.shape[2]
            full = mask.view(count, 1, height, width)
    elif spec.kind == "sequence":
        full = mask.view(count, x.shape[0], 1)
    else:
        full = mask.view(count, x.shape[0])
    if keep_when_true:
        return torch.where(full, x.unsqueeze(0), reference.unsqueeze(0))
    return torch.where(full, reference.unsqueeze(0), x.unsqueeze(0))


@dataclass
class Completeness:
    """Per example: ``sum(attributions)``, ``f(x) - f(baseline)``, and the errors between them."""

    attribution_sum: torch.Tensor
    output_difference: torch.Tensor
    absolute_error: torch.Tensor
    relative_error: torch.Tensor

    @property
    def mean_relative_error(self) -> float:
        return float(self.relative_error.mean())


def completeness(model: nn.Module, explanation: Explanation, batch_size: int = 256,
                 eps: float = 1e-6) -> Completeness:
    """How far ``sum(attributions)`` is from ``f(x) - f(baseline)`` (``E f(baseline)`` for a
    distribution), with ``f`` the explained class score, measured by running the model.

    Raises:
        ConfigError: the explanation has no baseline (saliency, Grad-CAM, attention).
    """
    if explanation.baselines is None:
        raise ConfigError(f"completeness: method {explanation.method!r} has no baseline; "
                          "completeness applies to integrated_gradients, gradient_shap, "
                          "deep_shap, kernel_shap (and lime)")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    scorer = Scorer(model, explanation.output)
    x = explanation.inputs.to(device)
    targets = explanation.targets.to(device)
    with prepared(model, channels_last=explanation.input_type == "image"):
        embedding = _embedding(model, explanation)
        at_input = scorer.scores(x, targets, batch_size).cpu().double()
        baselines = explanation.baselines.to(device)
        rows = []
        for i in range(len(x)):
            samples = baselines if explanation.baseline_distribution else baselines[i: i + 1]
            function = scorer
            if embedding is not None:  # the baseline ids' embeddings under the text's own ids
                function = EmbeddingSpace(scorer, embedding, x[i: i + 1])
                samples = embedding.embed(samples)
            rows.append(_scores(function, samples, targets[i], batch_size).double().mean())
        at_baseline = torch.stack(rows).cpu()
    difference = at_input - at_baseline
    total = explanation.attributions.double().reshape(len(x), -1).sum(dim=1)
    error = (total - difference).abs()
    return Completeness(total, difference, error, error / difference.abs().clamp_min(eps))


def efficiency(model: nn.Module, explanation: Explanation, batch_size: int = 256) -> Completeness:
    """The SHAP efficiency property (same numbers as :func:`completeness`, named for SHAP)."""
    return completeness(model, explanation, batch_size)


def faithfulness(model: nn.Module, explanation: Explanation, steps: int = 20,
                 baseline: Any = None, n_random: int = 3, seed: int = 0,
                 batch_size: int = 256) -> dict[str, float]:
    """Deletion/insertion AUCs vs random and, where a baseline exists, the mean completeness error."""
    result = deletion_insertion(model, explanation, steps, baseline, n_random, seed, batch_size)
    summary = result.summary()
    if explanation.baselines is not None:
        summary["completeness_error"] = completeness(model, explanation, batch_size)\
            .mean_relative_error
    return summary
