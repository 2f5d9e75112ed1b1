"""What ``Model.compile`` builds: the loss over one or several outputs and the metrics container.

``CompileLoss`` takes Keras's forms of ``loss`` / ``loss_weights``: one loss (applied to every
output), a list (one per output, ``None`` to skip one) or a dict keyed by output name; targets may be
a list or a dict keyed the same way. ``CompileMetrics`` holds the compiled metrics, resolved from the
first batch's shapes (``"accuracy"`` depends on them), and reports them as one dict; for several
outputs their names are prefixed with the output's name, as in Keras (``out_a_mae``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from bigmodel.engine.metric_base import Metric as EngineMetric
from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import losses as losses_mod
from bigmodel.keras import metrics as metrics_mod

__all__ = ["CompileLoss", "CompileMetrics", "as_output_list", "per_output_weights"]


def per_output_weights(sample_weight: Any, names: Sequence[str] | None, count: int) -> list[Any]:
    """One ``sample_weight`` per output: a list/dict of per-output weights in output order, or
    the same weights for every output (Keras repeats a single array)."""
    if isinstance(sample_weight, dict):
        return as_output_list(sample_weight, list(names or []), "sample_weight")
    if isinstance(sample_weight, (list, tuple)) and len(sample_weight) == count and count > 1:
        return list(sample_weight)
    return [sample_weight] * count


def as_output_list(value: Any, names: Sequence[str], what: str) -> list[Any]:
    """``value`` (one item, a list or a dict keyed by output name) as one entry per output.

    Raises:
        ConfigError: a list of the wrong length, or a dict with keys that are not output names.
    """
    if isinstance(value, dict):
        unknown = set(value) - set(names)
        if unknown:
            raise ConfigError(f"compile: {what} has keys {sorted(unknown)} that are not output "
                              f"names of the model; its outputs are {list(names)}")
        return [value.get(name) for name in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise ConfigError(f"compile: {what} is a list of {len(value)} entries for a model "
                              f"with {len(names)} outputs ({list(names)})")
        return list(value)
    return [value] * len(names)


def _output_list(y_pred: Any, names: Sequence[str] | None) -> list[Any]:
    """Model outputs as a list in output order (a dict-output model returns a dict)."""
    if isinstance(y_pred, dict):
        return as_output_list(y_pred, list(names or y_pred), "y_pred")
    return list(y_pred) if isinstance(y_pred, (list, tuple)) else [y_pred]


class CompileLoss:
    """The compiled loss: ``loss(y_true, y_pred, sample_weight)`` summed over outputs with
    ``loss_weights``."""

    def __init__(self, loss: Any, loss_weights: Any = None) -> None:
        self.spec, self.weights_spec = loss, loss_weights
        self._losses: list[Any] | None = None
        self._weights: list[float] | None = None
        self._names: list[str] | None = None
        # Several outputs: the unweighted loss of each, as Keras logs it (``out_a_loss``).
        self.metrics: list[Any] = []

    def build(self, output_names: Sequence[str]) -> None:
        names = list(output_names)
        self._names = names
        specs = as_output_list(self.spec, names, "loss") if len(names) > 1 else [self.spec]
        self._losses = [None if spec is None else losses_mod.get(spec) for spec in specs]
        if self.weights_spec is None:
            self._weights = [1.0] * len(names)
        elif len(names) == 1 and isinstance(self.weights_spec, (int, float)):
            self._weights = [float(self.weights_spec)]
        else:
            weights = as_output_list(self.weights_spec, names, "loss_weights")
            self._weights = [1.0 if w is None else float(w) for w in weights]
        self.metrics = [metrics_mod.Mean(name=f"{name}_loss")
                        for name, loss in zip(names, self._losses) if loss is not None] \
            if len(names) > 1 else []

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> torch.Tensor:
        preds = _output_list(y_pred, self._names)
        if self._losses is None:
            self.build([f"output_{i}" for i in range(len(preds))] if len(preds) > 1 else ["output"])
        if len(preds) == 1:
            trues = [y_true]
        elif isinstance(y_true, dict):
            trues = as_output_list(y_true, self._names, "y")
        elif isinstance(y_true, (list, tuple)) and len(y_true) == len(preds):
            trues = list(y_true)
        else:
            raise ShapeError(f"The model has {len(preds)} outputs; y must be a list or a dict "
                             f"of {len(preds)} targets, received {type(y_true).__name__}")
        weights = per_output_weights(sample_weight, self._names, len(preds))
        trackers = iter(self.metrics)
        total = None
        for loss, weight, true, pred, sw in zip(self._losses, self._weights, trues, preds,
                                                weights):
            if loss is None:
                continue
            tracker = next(trackers, None)
            if true is None:
                continue
            value = loss(true, pred, sw)
            if tracker is not None:  # weighted by the batch size, as Keras's trackers are
                tracker.update_state(value.detach(), sample_weight=len(pred))
            value = value * weight
            total = value if total is None else total + value
        return total


class CompileMetrics(metrics_mod.Metric):
    """The metrics given to ``compile``, updated together; ``result()`` is a dict of floats."""

    def __init__(self, metrics: Any, weighted_metrics: Any = None) -> None:
        super().__init__(name="compile_metrics")
        self.spec = metrics
        self.weighted_spec = weighted_metrics
        # (output index, metric, weighted): only ``weighted_metrics`` see ``sample_weight``.
        self._metrics: list[tuple[int, Any, bool]] | None = None
        self._names: list[str] = ["output"]

    def set_output_names(self, names: Sequence[str]) -> None:
        self._names = list(names)

    def _resolve(self, y_true: list[Any], y_pred: list[torch.Tensor]) -> None:
        entries: list[tuple[int, Any, bool]] = []
        single = len(y_pred) == 1
        for weighted, spec in ((False, self.spec), (True, self.weighted_spec)):
            if spec is None:
                continue
            if single:
                items = [spec] if isinstance(spec, (str, EngineMetric)) else spec
                per_output = [list(items)]
            elif isinstance(spec, (dict, list, tuple)) and (
                    isinstance(spec, dict) or all(isinstance(s, (list, tuple, type(None), dict))
                                                  for s in spec)):
                per_output = [[] if s is None else [s] if not isinstance(s, (list, tuple)) else
                              list(s) for s in as_output_list(spec, self._names, "metrics")]
            else:  # a flat list for several outputs: every output gets each metric
                items = [spec] if isinstance(spec, (str, EngineMetric)) else spec
                per_output = [list(items) for _ in self._names]
            for index, items in enumerate(per_output):
                for ident in items:
                    label = tuple(y_true[index].shape) if isinstance(y_true[index], torch.Tensor) \
                        else None
                    metric = metrics_mod.get(ident if single or not isinstance(
                        ident, EngineMetric) else ident, label,
                        tuple(y_pred[index].shape))
                    entries.append((index, metric, weighted))
        self._metrics = entries

    @property
    def metrics(self) -> list[Any]:
        return [metric for _, metric, _ in self._metrics or []]

    def use_metrics(self, resolved: list[Any]) -> None:
        """Hold ``resolved`` (one output: the metrics, then the weighted metrics, as the engine's
        fast path resolved them) instead of resolving its own."""
        spec = self.spec
        unweighted = 0 if spec is None else 1 if isinstance(
            spec, (str, EngineMetric)) else len(spec)
        self._metrics = [(0, metric, i >= unweighted) for i, metric in enumerate(resolved)]

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        preds = _output_list(y_pred, self._names)
        if len(preds) == 1:
            trues = [y_true]
        elif isinstance(y_true, dict):
            trues = as_output_list(y_true, self._names, "y")
        else:
            trues = list(y_true)
        if self._metrics is None:
            self._resolve(trues, preds)
        weights = per_output_weights(sample_weight, self._names, len(preds))
        for index, metric, weighted in self._metrics:
            if trues[index] is not None:
                metric.update(preds[index].detach(), trues[index],
                              weights[index] if weighted else None)

    def result(self) -> dict[str, float]:
        out = {}
        single = len(self._names) == 1
        for index, metric, _ in self._metrics or []:
            value = metric.result()
            # several outputs: prefixed by the output's name, as Keras reports them
            name = metric.name if single else f"{self._names[index]}_{metric.name}"
            out[name] = float(value) if isinstance(value, torch.Tensor) else value
        return out

    def reset_state(self) -> None:
        for _, metric, _ in self._metrics or []:
            metric.reset()
