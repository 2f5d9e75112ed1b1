"""``Explanation``: what ``explain`` returns -- attributions plus everything needed to judge them.

Saved as one safetensors file (tensors) whose metadata holds the rest as JSON; never a pickle.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bigmodel.errors import CheckpointError
from bigmodel.explain.inputs import InputSpec

FORMAT_NAME = "bigmodel-explanation"
_TENSOR_FIELDS = ("inputs", "attributions", "targets", "predictions", "probabilities", "baselines",
                  "labels", "feature_mask", "convergence_delta")


@dataclass
class Explanation:
    """Attributions of one method for a batch of examples.

    Attributes:
        method: the method name (``"integrated_gradients"``, ...).
        inputs: the explained inputs ``(B, ...)`` (on CPU).
        attributions: float tensor shaped like ``inputs``; for token ids one value per token.
        targets: explained class per example ``(B,)``.
        predictions: predicted class per example ``(B,)``.
        probabilities: class probabilities ``(B, K)``.
        input_type: ``image``, ``sequence``, ``tokens`` or ``vector``.
        channels_last: images only: channel axis last.
        baselines: the baseline(s) compared against: ``(B, ...)`` per example or ``(M, ...)``
            samples of a distribution (``baseline_distribution``); None for saliency, Grad-CAM and
            attention.
        baseline_name: ``black``, ``blurred``, ``tensor``, ...
        labels: true classes ``(B,)`` when given.
        feature_mask: perturbation methods: the feature labels used (broadcastable to inputs).
        convergence_delta: integrated gradients / DeepSHAP: Captum's per-example
            ``sum(attributions) - (f(x) - f(baseline))``.
        timings: ``{"total_s", "method_s", "per_example_s"}``.
        options: the method options used (JSON values).
        output: which model output was explained (``auto``, ``probabilities``, ``logits``).
        scores_are_probabilities: whether the explained outputs were probabilities.
        extras: method-specific results (Grad-CAM ``layer``/``layer_map``; attention ``attention``
            per-layer maps ``(B, H, T, T)``, ``rollout`` ``(B, T, T)``).
        class_names / tokens: optional names for plots (tokens: one list of strings per example).
    """

    method: str
    inputs: torch.Tensor
    attributions: torch.Tensor
    targets: torch.Tensor
    predictions: torch.Tensor
    probabilities: torch.Tensor
    input_type: str
    channels_last: bool = False
    baselines: torch.Tensor | None = None
    baseline_name: str | None = None
    baseline_distribution: bool = False
    labels: torch.Tensor | None = None
    feature_mask: torch.Tensor | None = None
    convergence_delta: torch.Tensor | None = None
    timings: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    output: str = "auto"
    scores_are_probabilities: bool = False
    extras: dict = field(default_factory=dict)
    class_names: list | None = None
    tokens: list | None = None

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def spec(self) -> InputSpec:
        return InputSpec(self.input_type, self.channels_last)

    def position_map(self) -> torch.Tensor:
        """Attribution per position: ``(B, H, W)`` images, ``(B, T)`` sequences/tokens, ``(B, F)``."""
        return self.spec.position_map(self.attributions)

    def per_example_baselines(self) -> torch.Tensor | None:
        """``(B, ...)`` baselines, the mean sample for a distribution, or None."""
        if self.baselines is None:
            return None
        if self.baseline_distribution:
            mean = self.baselines.float().mean(dim=0, keepdim=True)
            if not self.inputs.is_floating_point():
                return None
            return mean.expand_as(self.inputs).to(self.inputs.dtype)
        return self.baselines

    # -- pictures -------------------------------------------------------------------------------

    def plot(self, index: int = 0, path: str | os.PathLike | None = None,
             class_names: list | None = None, title: str | None = None, *,
             spectrogram: dict | None = None, hidden_tokens: Any = None) -> Any:
        """A matplotlib ``Figure`` for example ``index`` (written as PNG to ``path`` if given).

        Images: input, heatmap, overlay (spectrograms stacked, with time and frequency axes);
        sequences: the series and attribution per step; tokens: tokens coloured by attribution
        (padding and framing tokens hidden); vectors: a bar per feature. The title's first line is
        ``title`` (default the method), the second the predicted class (probability), the true
        label when known, and the explained class when it is not the predicted one.
        ``spectrogram`` / ``hidden_tokens``: see :func:`bigmodel.explain.plots.plot_explanation`.
        """
        from bigmodel.explain.plots import plot_explanation, save_figure

        figure = plot_explanation(self, index, class_names or self.class_names, title=title,
                                  spectrogram=spectrogram, hidden_tokens=hidden_tokens)
        if path is not None:
            save_figure(figure, path)
        return figure

    def html(self, index: int | None = None, class_names: list | None = None) -> str:
        """An HTML page colouring each token by its attribution (token inputs)."""
        from bigmodel.explain.plots import tokens_html

        indices = range(len(self)) if index is None else [index]
        return tokens_html(self, list(indices), class_names or self.class_names)

    # -- numbers ----------------------------------------------------------------------------------

    def to_dict(self, attributions: bool = True) -> dict:
        """JSON-ready numbers: per example prediction, probabilities, target, (attributions)."""
        names = self.class_names
        examples = []
        for i in range(len(self)):
            target, predicted = int(self.targets[i]), int(self.predictions[i])
            entry = {"predicted": predicted, "target": target,
                     "probability_predicted": float(self.probabilities[i, predicted]),
                     "probability_target": float(self.probabilities[i, target]),
                     "attribution_sum": float(self.attributions[i].double().sum())}
            if names:
                entry["predicted_name"] = str(names[predicted])
                entry["target_name"] = str(names[target])
            if self.labels is not None:
                entry["label"] = int(self.labels[i])
                if names and 0 <= entry["label"] < len(names):
                    entry["label_name"] = str(names[entry["label"]])
            if self.convergence_delta is not None:
                entry["convergence_delta"] = float(self.convergence_delta[i])
            if attributions:
                entry["attributions"] = self.position_map()[i].tolist()
            examples.append(entry)
        extras = {k: v for k, v in self.extras.items() if _jsonable(v)}
        return {"method": self.method, "input_type": self.input_type,
                "input_shape": list(self.inputs.shape), "baseline": self.baseline_name,
                "output": self.output, "options": self.options, "timings": self.timings,
                "extras": extras, "examples": examples}

    # -- files ------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write a ``.safetensors`` file (tensors + JSON metadata), atomically; returns its path."""
        from safetensors.torch import save_file

        from bigmodel.utils.io import atomic_path

        tensors: dict[str, torch.Tensor] = {}
        for name in _TENSOR_FIELDS:
            value = getattr(self, name)
            if value is not None:
                tensors[name] = value.detach().cpu().contiguous().clone()
        plain_extras = {}
        for key, value in self.extras.items():
            if isinstance(value, torch.Tensor):
                tensors[f"extras.{key}"] = value.detach().cpu().contiguous().clone()
            elif isinstance(value, dict) and value and all(
                    isinstance(v, torch.Tensor) for v in value.values()):
                for sub, tensor in value.items():
                    tensors[f"extras.{key}/{sub}"] = tensor.detach().cpu().contiguous().clone()
            elif _jsonable(value):
                plain_extras[key] = value
        info = {"method": self.method, "input_type": self.input_type,
                "channels_last": self.channels_last, "baseline_name": self.baseline_name,
                "baseline_distribution": self.baseline_distribution, "timings": self.timings,
                "options": self.options, "output": self.output,
                "scores_are_probabilities": self.scores_are_probabilities,
                "extras": plain_extras, "class_names": self.class_names, "tokens": self.tokens}
        path = Path(path)
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"format": FORMAT_NAME, "info": json.dumps(info)})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Explanation:
        """Read a file written by :meth:`save`.

        Raises:
            CheckpointError: missing, unreadable or not an explanation file.
        """
        from safetensors import SafetensorError, safe_open

        from bigmodel.utils.loading import loads_json, read_safetensors_header

        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"No explanation file at {path}")
        read_safetensors_header(path)  # a pickle or a non-safetensors file is refused unread
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"Cannot read explanation {path}: {exc}") from None
        if metadata.get("format") != FORMAT_NAME:
            raise CheckpointError(f"{path} is not a bigmodel explanation file (expected metadata "
                                  f"format {FORMAT_NAME!r})")
        info = loads_json(metadata.get("info", "{}"), f"Explanation {path} (metadata 'info')")
        if not isinstance(info, dict) or not isinstance(info.get("extras", {}), dict):
            raise CheckpointError(f"{path}: metadata 'info' must be a JSON object")
        extras = dict(info.pop("extras", {}))
        for key, tensor in tensors.items():
            if key.startswith("extras."):
                name = key[len("extras."):]
                if "/" in name:
                    group, sub = name.split("/", 1)
                    extras.setdefault(group, {})[sub] = tensor
                else:
                    extras[name] = tensor
        fields = {name: tensors.get(name) for name in _TENSOR_FIELDS}
        try:
            return cls(**fields, **info, extras=extras)
        except TypeError as exc:  # keys in 'info' that are no field of an explanation
            raise CheckpointError(f"{path} is not a valid explanation file: {exc}") from None


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
