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

__all__ = ["CompileLoss", "CompileMetrics", "as_output_list", "names_of_outputs",
           "output_keys", "per_output_weights"]


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


def names_of_outputs(y_pred: Any) -> list[str | None]:
    """The output names Keras 3 gives the outputs of a model it has no names for (a subclassed
    model's ``call``): a dict's keys in sorted order (Keras's tree order), ``None`` for each entry
    of a list/tuple and for one tensor."""
    if isinstance(y_pred, dict):
        return sorted(y_pred)
    if isinstance(y_pred, (list, tuple)):
        return [None] * len(y_pred)
    return [None]


def output_keys(names: Sequence[str | None]) -> list[str]:
    """Names to key targets and weights by: an unnamed output ``i`` is ``output_i``."""
    if len(names) == 1 and names[0] is None:
        return ["output"]
    return [f"output_{i}" if name is None else name for i, name in enumerate(names)]


class CompileLoss:
    """The compiled loss: ``loss(y_true, y_pred, sample_weight)`` summed over outputs with
    ``loss_weights``.

    Built from the model's output names at ``compile`` (a functional model) or, as Keras's
    ``CompileLoss`` does, from the outputs of the first call (a subclassed model: its number of
    outputs is known only then). Each output's unweighted loss is tracked as ``<name>_loss``,
    ``<name>`` being the output's name, or the loss's own name for an unnamed output (Keras).
    """

    def __init__(self, loss: Any, loss_weights: Any = None) -> None:
        self.spec, self.weights_spec = loss, loss_weights
        self._losses: list[Any] | None = None
        self._weights: list[float] | None = None
        self._names: list[str] | None = None
        self._trackers: list[Any] = []  # one per output (None: no loss, or one output)
        # Several outputs: the unweighted loss of each, as Keras logs it (``out_a_loss``).
        self.metrics: list[Any] = []

    @property
    def built(self) -> bool:
        return self._losses is not None

    def build(self, output_names: Sequence[str | None], spec_order: bool = False) -> None:
        """Resolve the losses and weights for outputs named ``output_names`` (``None``: unnamed).

        Args:
            output_names: one per output, in the order targets and outputs are listed.
            spec_order: list the loss trackers in the order of a dict ``loss``'s keys (Keras's
                order for a model whose ``call`` returns a dict) instead of the output order.

        Raises:
            ConfigError: a list of losses or weights of another length than the outputs, or dict
                keys that are not output names.
        """
        names = output_keys(list(output_names))
        specs = as_output_list(self.spec, names, "loss") if len(names) > 1 else [self.spec]
        losses = [None if spec is None else losses_mod.get(spec) for spec in specs]
        if self.weights_spec is None:
            weights = [1.0] * len(names)
        elif len(names) == 1 and isinstance(self.weights_spec, (int, float)):
            weights = [float(self.weights_spec)]
        elif len(names) == 1:
            raise ConfigError(f"loss_weights must be a number for a single-output model; "
                              f"received {self.weights_spec!r}")
        else:
            weights = [1.0 if w is None else float(w)
                       for w in as_output_list(self.weights_spec, names, "loss_weights")]
        self._names, self._losses, self._weights = names, losses, weights
        self._trackers = [None if loss is None or len(names) == 1 else
                          metrics_mod.Mean(name=f"{loss.name if given is None else given}_loss")
                          for given, loss in zip(output_names, losses)]
        order = list(range(len(names)))
        if spec_order and isinstance(self.spec, dict):
            keys = list(self.spec)
            order.sort(key=lambda i: keys.index(names[i]) if names[i] in keys else len(keys))
        self.metrics = [self._trackers[i] for i in order if self._trackers[i] is not None]

    def _only_lossy(self, y_true: Any) -> list[Any] | None:
        """Targets given for only the outputs with a loss (Keras: ``loss=[fn, None]`` takes one
        ``y``), spread over all outputs (``None`` for the others); ``None`` if they are not."""
        active = [i for i, loss in enumerate(self._losses) if loss is not None]
        given = list(y_true) if isinstance(y_true, (list, tuple)) else [y_true]
        if len(active) == len(self._losses) or len(given) != len(active):
            return None
        trues: list[Any] = [None] * len(self._losses)
        for index, true in zip(active, given):
            trues[index] = true
        return trues

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> torch.Tensor:
        if self._losses is None:
            self.build(names_of_outputs(y_pred), spec_order=isinstance(y_pred, dict))
        preds = _output_list(y_pred, self._names)
        if len(preds) != len(self._names):
            raise ShapeError(f"The model's call returned {len(preds)} outputs; the compiled loss "
                             f"was built for {len(self._names)} ({self._names})")
        if len(preds) == 1:
            trues = [y_true]
        elif isinstance(y_true, dict):
            trues = as_output_list(y_true, self._names, "y")
        elif isinstance(y_true, (list, tuple)) and len(y_true) == len(preds):
            trues = list(y_true)
        elif self._only_lossy(y_true) is not None:
            trues = self._only_lossy(y_true)
        else:
            raise ShapeError(f"The model has {len(preds)} outputs; y must be a list or a dict "
                             f"of {len(preds)} targets, received {type(y_true).__name__}")
        weights = per_output_weights(sample_weight, self._names, len(preds))
        total = None
        for loss, weight, true, pred, sw, tracker in zip(self._losses, self._weights, trues,
                                                         preds, weights, self._trackers):
            if loss is None or true is None:
                continue
            value = loss(true, pred, sw)
            if tracker is not None:  # weighted by the batch size, as Keras's trackers are
                tracker.update_state(value.detach(), sample_weight=len(pred))
            value = value * weight
            total = value if total is None else total + value
        return total


class CompileMetrics(metrics_mod.Metric):
    """The metrics given to ``compile``, updated together; ``result()`` is a dict of floats.

    Resolved at the first update, as Keras's ``CompileMetrics`` is built: ``"accuracy"`` depends
    on the shapes, and a subclassed model's number of outputs is known only then. For several
    outputs, a list with one entry per output gives each output its entry; a dict is keyed by
    output name. Results are named as Keras names them: prefixed by the output's name where it
    has one (``out_a_mae``), and a repeated name gets ``_1``, ``_2``, ... (weighted metrics
    ``weighted_<name>`` first).
    """

    def __init__(self, metrics: Any, weighted_metrics: Any = None) -> None:
        super().__init__(name="compile_metrics")
        self.spec = metrics
        self.weighted_spec = weighted_metrics
        # (output index, metric, weighted): only ``weighted_metrics`` see ``sample_weight``.
        self._metrics: list[tuple[int, Any, bool]] | None = None
        self._names: list[str | None] | None = None  # None: from the first outputs seen

    def set_output_names(self, names: Sequence[str]) -> None:
        self._names = list(names)

    def _per_output(self, spec: Any, keys: list[str]) -> list[list[Any]]:
        """``spec`` (one metric, a list, a list per output or a dict) as a list per output."""
        if len(keys) == 1:
            return [[spec] if isinstance(spec, (str, EngineMetric)) else list(spec)]
        if isinstance(spec, dict) or (isinstance(spec, (list, tuple)) and all(
                isinstance(s, (list, tuple, type(None), dict)) for s in spec)):
            return [[] if s is None else [s] if not isinstance(s, (list, tuple)) else list(s)
                    for s in as_output_list(spec, keys, "metrics")]
        items = [spec] if isinstance(spec, (str, EngineMetric)) else list(spec)
        if len(items) == len(keys):  # Keras: a flat list of one metric per output
            return [[item] for item in items]
        return [list(items) for _ in keys]  # any other flat list: every output gets each

    def _resolve(self, y_true: list[Any], y_pred: list[torch.Tensor]) -> None:
        entries: list[tuple[int, Any, bool]] = []
        keys = output_keys(self._names)
        for weighted, spec in ((False, self.spec), (True, self.weighted_spec)):
            if spec is None:
                continue
            for index, items in enumerate(self._per_output(spec, keys)):
                for ident in items:
                    label = tuple(y_true[index].shape) if isinstance(y_true[index], torch.Tensor) \
                        else None
                    metric = metrics_mod.get(ident, label, tuple(y_pred[index].shape))
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
        self._names = self._names or [None]
        self._metrics = [(0, metric, i >= unweighted) for i, metric in enumerate(resolved)]

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        if self._names is None:
            self._names = names_of_outputs(y_pred)
        keys = output_keys(self._names)
        preds = _output_list(y_pred, keys)
        if len(preds) == 1:
            trues = [y_true]
        elif isinstance(y_true, dict):
            trues = as_output_list(y_true, keys, "y")
        else:
            trues = list(y_true)
        if self._metrics is None:
            self._resolve(trues, preds)
        weights = per_output_weights(sample_weight, keys, len(preds))
        for index, metric, weighted in self._metrics:
            if trues[index] is not None:
                metric.update(preds[index].detach(), trues[index],
                              weights[index] if weighted else None)

    def result(self) -> dict[str, float]:
        out: dict[str, float] = {}
        names = self._names or [None]
        single = len(names) == 1
        counts: dict[str, int] = {}
        for weighted in (False, True):
            for index, metric, is_weighted in self._metrics or []:
                if is_weighted != weighted:
                    continue
                value = metric.result()
                value = float(value) if isinstance(value, torch.Tensor) else value
                prefix = "" if single or names[index] is None else f"{names[index]}_"
                name = f"{prefix}{metric.name}"
                if name in counts and weighted:
                    name = f"{prefix}weighted_{metric.name}"
                if name in counts:  # Keras: a repeated name gets the count so far
                    counts[name] += 1
                    name = f"{name}_{counts[name] - 1}"
                else:
                    counts[name] = 1
                out[name] = value
        return out

    def reset_state(self) -> None:
        for _, metric, _ in self._metrics or []:
            metric.reset()
