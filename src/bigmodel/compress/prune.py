"""Unstructured magnitude pruning: masks, a sparsity schedule callback, sparse storage size.

A :class:`MagnitudePruner` keeps one boolean mask per prunable weight (every parameter with two or
more dimensions: Linear/Dense and convolution kernels, LSTM/GRU matrices; embedding tables, learned
positions and [CLS] tokens are skipped unless asked for). Pruning to a sparsity zeroes the smallest-magnitude weights, per layer or over all
layers at once (``scope="global"``), and never revives a weight pruned before, so iterative rounds
only add zeros. While attached, the pruner keeps pruned weights at exactly zero through training:
each forward re-applies the mask (whatever the optimizer did: momentum, weight decay) and each
gradient is masked, so optimizer state for pruned weights stays zero too. Masks are applied in place,
so the model's ``state_dict`` keeps its keys and ``save_model`` / ``load_model`` work unchanged.

>>> pruner = magnitude_prune(model, 0.8)          # 80% zeros in every prunable weight
>>> trainer.fit(data, epochs=1)                    # fine-tune; zeros stay zeros
>>> pruner.detach()                                # keep the zeros, drop the hooks

Gradual pruning during training (Zhu & Gupta, 2017): pass :class:`SparsitySchedule` to ``fit``.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from bigmodel.engine.callbacks import Callback
from bigmodel.errors import ConfigError

SCOPES = ("layer", "global")


def check_sparsity(value: object, name: str = "sparsity") -> float:
    """``value`` as a float in [0, 1); anything else is a :class:`ConfigError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"'{name}' must be a number in [0, 1); received {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"'{name}' must be in [0, 1) (the fraction of weights set to zero; 1 would "
                          f"remove every weight); received {value!r}")
    return float(value)


def _is_embedding(module: nn.Module) -> bool:
    """Lookup tables (token / position embeddings): pruning them removes rows of data, not compute."""
    name = type(module).__name__
    return isinstance(module, nn.Embedding) or "Embedding" in name or "Positional" in name


def _is_layer_weight(param_name: str) -> bool:
    """Weights of a layer's product (``weight``, ``weight_ih_l0``, ``in_proj_weight``, ``kernel``,
    ``recurrent_kernel``), as opposed to free tensors added to activations (``position``,
    ``cls_token``)."""
    return "weight" in param_name or "kernel" in param_name


def prunable_weights(model: nn.Module, include: Sequence[str] | None = None,
                     exclude: Sequence[str] = (), embeddings: bool = False,
                     tokens: bool = False) -> list[tuple[str, nn.Module, str]]:
    """``(qualified name, owning module, parameter name)`` of each weight magnitude pruning touches.

    By default these are the matrices / kernels of layers (parameters with 2+ dimensions named
    ``*weight*`` or ``*kernel*``: Linear, convolutions, recurrent and attention projections).
    Embedding tables and free tensors added to activations (a ViT's learned positions, a [CLS]
    token) stay dense: zeroing 80% of a position table destroys information the model cannot
    re-learn around, and saves almost nothing.

    Args:
        model: any module.
        include: glob patterns of qualified parameter names to keep (default: all of them).
        exclude: glob patterns to leave dense (e.g. ``["classifier.*"]``).
        embeddings: also prune embedding tables (``nn.Embedding``, modules named
            ``*Embedding*`` / ``*Positional*``).
        tokens: also prune other 2+-dimensional parameters (positions, [CLS] tokens, any
            parameter not named ``*weight*`` / ``*kernel*``).
    """
    found = []
    for module_name, module in model.named_modules():
        if _is_embedding(module) and not embeddings:
            continue
        for param_name, param in module.named_parameters(recurse=False):
            if param is None or param.ndim < 2 or not param.is_floating_point():
                continue
            if not tokens and not _is_layer_weight(param_name):
                continue
            qualified = f"{module_name}.{param_name}" if module_name else param_name
            if include is not None and not any(fnmatch.fnmatch(qualified, p) for p in include):
                continue
            if any(fnmatch.fnmatch(qualified, p) for p in exclude):
                continue
            found.append((qualified, module, param_name))
    return found


class MagnitudePruner:
    """Magnitude masks over a model's prunable weights, kept applied while attached.

    Args:
        model: the module to prune (changed in place).
        scope: ``"layer"`` (every weight reaches the sparsity) or ``"global"`` (one magnitude
            threshold over all weights; layers with small weights lose more).
        include / exclude / embeddings / tokens: which weights, see :func:`prunable_weights`.

    Raises:
        ConfigError: an unknown scope, or no prunable weight matched.
    """

    def __init__(self, model: nn.Module, scope: str = "layer", include: Sequence[str] | None = None,
                 exclude: Sequence[str] = (), embeddings: bool = False,
                 tokens: bool = False) -> None:
        if scope not in SCOPES:
            raise ConfigError(f"MagnitudePruner: 'scope' must be one of {', '.join(SCOPES)}; "
                              f"received {scope!r}")
        self.model = model
        self.scope = scope
        self.targets = prunable_weights(model, include, exclude, embeddings, tokens)
        if not self.targets:
            raise ConfigError(f"MagnitudePruner: {type(model).__name__} has no prunable weight "
                              f"(parameters with 2+ dimensions) matching include={include!r}, "
                              f"exclude={list(exclude)!r}")
        self.masks: dict[str, torch.Tensor] = {
            name: torch.ones_like(getattr(module, attr), dtype=torch.bool)
            for name, module, attr in self.targets}
        self.target_sparsity = 0.0
        self._handles: list = []

    # -- masks --------------------------------------------------------------------------------

    def _weights(self) -> Iterable[tuple[str, torch.Tensor]]:
        for name, module, attr in self.targets:
            yield name, getattr(module, attr)

    @torch.no_grad()
    def prune(self, sparsity: float) -> dict[str, float]:
        """Zero the smallest-magnitude weights until ``sparsity`` of them are zero.

        Weights pruned earlier stay pruned (they have magnitude 0 in the ranking and their mask is
        kept), so a schedule of growing sparsities adds zeros without reviving any.

        Returns:
            The achieved sparsity of each weight, by qualified name.

        Raises:
            ConfigError: ``sparsity`` outside [0, 1).
        """
        sparsity = check_sparsity(sparsity)
        self.target_sparsity = max(self.target_sparsity, sparsity)
        if self.scope == "global":
            weights = list(self._weights())
            scores = torch.cat([(w.detach().abs() * self.masks[n]).flatten().float().cpu()
                                for n, w in weights])
            keep = _lowest_magnitude_mask(scores, int(round(sparsity * scores.numel())))
            offset = 0
            for name, weight in weights:
                part = keep[offset: offset + weight.numel()].view(weight.shape)
                self.masks[name] = self.masks[name] & part.to(self.masks[name].device)
                offset += weight.numel()
        else:
            for name, weight in self._weights():
                count = int(round(sparsity * weight.numel()))
                self.masks[name] = self.masks[name] & _lowest_magnitude_mask(
                    weight.detach().abs() * self.masks[name], count)
        self.apply()
        return self.layer_sparsity()

    @torch.no_grad()
    def apply(self) -> None:
        """Multiply every weight by its mask (in place)."""
        for name, weight in self._weights():
            mask = self.masks[name]
            if mask.device != weight.device:
                mask = self.masks[name] = mask.to(weight.device)
            weight.mul_(mask)

    def layer_sparsity(self) -> dict[str, float]:
        return {name: float((weight == 0).sum()) / weight.numel() for name, weight in self._weights()}

    def sparsity(self) -> float:
        """Fraction of zeros over all pruned weights together."""
        zeros = sum(int((w == 0).sum()) for _, w in self._weights())
        return zeros / sum(w.numel() for _, w in self._weights())

    # -- keeping zeros through training ---------------------------------------------------------

    def attach(self) -> MagnitudePruner:
        """Re-apply masks before every forward and mask every gradient, until :meth:`detach`."""
        if self._handles:
            return self
        owners = {id(module): module for _, module, _ in self.targets}
        for module in owners.values():
            self._handles.append(module.register_forward_pre_hook(self._pre_forward))
        for name, weight in self._weights():
            self._handles.append(weight.register_hook(self._grad_masker(name)))
        self.apply()
        return self

    @torch.no_grad()
    def _pre_forward(self, module: nn.Module, args) -> None:
        # Only this module's weights: another module's may already be saved for backward.
        for name, owner, attr in self.targets:
            if owner is module:
                weight = getattr(owner, attr)
                mask = self.masks[name]
                if mask.device != weight.device:
                    mask = self.masks[name] = mask.to(weight.device)
                weight.mul_(mask)

    def _grad_masker(self, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
        def hook(grad: torch.Tensor) -> torch.Tensor:
            return grad * self.masks[name].to(grad.device)
        return hook

    def detach(self) -> None:
        """Make the pruning permanent: weights keep their zeros, the hooks are removed."""
        self.apply()
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @property
    def attached(self) -> bool:
        return bool(self._handles)


def _lowest_magnitude_mask(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Boolean mask keeping all but exactly the ``count`` smallest entries of ``scores``."""
    keep = torch.ones_like(scores, dtype=torch.bool)
    if count > 0:
        order = torch.argsort(scores.flatten().float(), stable=True)
        keep.view(-1)[order[:count]] = False
    return keep


def magnitude_prune(model: nn.Module, sparsity: float, scope: str = "layer",
                    include: Sequence[str] | None = None, exclude: Sequence[str] = (),
                    attach: bool = True) -> MagnitudePruner:
    """Prune ``model`` in place to ``sparsity`` by weight magnitude; returns the (attached) pruner.

    Raises:
        ConfigError: ``sparsity`` outside [0, 1), an unknown ``scope``, nothing to prune.
    """
    sparsity = check_sparsity(sparsity)
    pruner = MagnitudePruner(model, scope=scope, include=include, exclude=exclude)
    pruner.prune(sparsity)
    return pruner.attach() if attach else pruner


def iterative_prune(model: nn.Module, sparsity: float, rounds: int,
                    fine_tune: Callable[[nn.Module, int], object] | None, scope: str = "layer",
                    include: Sequence[str] | None = None, exclude: Sequence[str] = (),
                    ) -> MagnitudePruner:
    """Prune in ``rounds`` steps of equal kept fraction, calling ``fine_tune(model, round)`` after each.

    Round ``k`` of ``n`` reaches sparsity ``1 - (1 - sparsity) ** (k / n)``, so every round removes
    the same fraction of the weights still alive. The masks stay attached during fine-tuning and are
    detached (made permanent) at the end.

    Raises:
        ConfigError: ``sparsity`` outside [0, 1) or ``rounds`` < 1.
    """
    sparsity = check_sparsity(sparsity)
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigError(f"iterative_prune: 'rounds' must be a positive int; received {rounds!r}")
    pruner = MagnitudePruner(model, scope=scope, include=include, exclude=exclude).attach()
    for k in range(1, rounds + 1):
        pruner.prune(1.0 - (1.0 - sparsity) ** (k / rounds))
        if fine_tune is not None:
            fine_tune(model, k)
    pruner.detach()
    return pruner


class SparsitySchedule(Callback):
    """Training callback raising sparsity gradually: ``s_t = s_f + (s_i - s_f)(1 - p)^3``.

    ``p`` runs from 0 at ``begin_step`` to 1 at ``end_step`` (optimizer steps counted by the
    callback); masks are recomputed every ``frequency`` steps, and kept applied in between, so
    pruned weights stay zero until training ends. Zhu & Gupta (2017), as in TF-MOT's
    ``PolynomialDecay``.

    Args:
        model: the ``nn.Module`` being trained (for a Keras ``Model``, the model itself).
        final_sparsity: sparsity reached at ``end_step`` and held after it.
        end_step: the step at which ``final_sparsity`` is reached.
        begin_step: first pruning step (default 0).
        initial_sparsity: sparsity applied at ``begin_step`` (default 0).
        frequency: steps between mask updates (default 100, at least 1).
        scope / include / exclude: as for :class:`MagnitudePruner`.
        detach_at_end: make the pruning permanent when training ends (default True).

    Raises:
        ConfigError: a sparsity outside [0, 1), ``initial_sparsity > final_sparsity``, or steps that
            are not ``0 <= begin_step < end_step`` with ``frequency >= 1``.
    """

    wants_batch_hooks = True

    def __init__(self, model: nn.Module, final_sparsity: float, end_step: int, begin_step: int = 0,
                 initial_sparsity: float = 0.0, frequency: int = 100, scope: str = "layer",
                 include: Sequence[str] | None = None, exclude: Sequence[str] = (),
                 detach_at_end: bool = True) -> None:
        super().__init__()
        self.final_sparsity = check_sparsity(final_sparsity, "final_sparsity")
        self.initial_sparsity = check_sparsity(initial_sparsity, "initial_sparsity")
        if self.initial_sparsity > self.final_sparsity:
            raise ConfigError(f"SparsitySchedule: 'initial_sparsity' ({initial_sparsity}) must not "
                              f"exceed 'final_sparsity' ({final_sparsity})")
        for name, value in (("begin_step", begin_step), ("end_step", end_step),
                            ("frequency", frequency)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"SparsitySchedule: '{name}' must be a non-negative int; "
                                  f"received {value!r}")
        if end_step <= begin_step or frequency < 1:
            raise ConfigError(f"SparsitySchedule: need begin_step < end_step and frequency >= 1; "
                              f"received begin_step={begin_step}, end_step={end_step}, "
                              f"frequency={frequency}")
        self.begin_step, self.end_step, self.frequency = begin_step, end_step, frequency
        self.detach_at_end = detach_at_end
        self.pruner = MagnitudePruner(model, scope=scope, include=include, exclude=exclude)
        self.step = 0

    @classmethod
    def for_steps(cls, model: nn.Module, final_sparsity: float, total_steps: int,
                  pruning_fraction: float = 0.5, updates: int = 20, **kwargs) -> SparsitySchedule:
        """A schedule for a fine-tuning run of ``total_steps`` optimizer steps: sparsity rises from 0
        over the first ``pruning_fraction`` of them in ``updates`` mask updates, and the rest of the
        run recovers at ``final_sparsity`` (pair it with a decaying learning rate).

        Raises:
            ConfigError: ``total_steps`` < 2, ``pruning_fraction`` outside (0, 1], ``updates`` < 1.
        """
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 2:
            raise ConfigError(f"SparsitySchedule.for_steps: 'total_steps' must be an int >= 2; "
                              f"received {total_steps!r}")
        if not isinstance(pruning_fraction, (int, float)) or not 0.0 < pruning_fraction <= 1.0:
            raise ConfigError(f"SparsitySchedule.for_steps: 'pruning_fraction' must be in (0, 1]; "
                              f"received {pruning_fraction!r}")
        if isinstance(updates, bool) or not isinstance(updates, int) or updates < 1:
            raise ConfigError(f"SparsitySchedule.for_steps: 'updates' must be an int >= 1; "
                              f"received {updates!r}")
        end = max(1, min(total_steps, round(pruning_fraction * total_steps)))
        return cls(model, final_sparsity, end_step=end, frequency=max(1, end // updates), **kwargs)

    def sparsity_at(self, step: int) -> float:
        """Scheduled sparsity at optimizer step ``step`` (0 before ``begin_step``)."""
        if step < self.begin_step:
            return 0.0
        progress = min(1.0, (step - self.begin_step) / (self.end_step - self.begin_step))
        return (self.final_sparsity
                + (self.initial_sparsity - self.final_sparsity) * (1.0 - progress) ** 3)

    def on_train_begin(self, logs=None) -> None:
        self.pruner.attach()
        if self.step >= self.begin_step:
            self.pruner.prune(self.sparsity_at(self.step))

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.step += 1
        due = (self.step - self.begin_step) % self.frequency == 0 or self.step == self.end_step
        if self.begin_step <= self.step <= self.end_step and due:
            self.pruner.prune(self.sparsity_at(self.step))
        if logs is not None:
            logs["sparsity"] = self.pruner.target_sparsity

    def on_train_end(self, logs=None) -> None:
        if self.detach_at_end:
            self.pruner.detach()


# -- size of a sparse model ---------------------------------------------------------------------


def model_sparsity(model: nn.Module) -> float:
    """Fraction of exact zeros over the prunable weights of ``model``."""
    weights = [getattr(m, a) for _, m, a in prunable_weights(model)]
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / total if total else 0.0


def sparse_size_bytes(model: nn.Module) -> int:
    """Bytes to store the state dict with each tensor in its cheapest exact encoding.

    A tensor is stored dense (``numel * itemsize``) or as a bitmap of its nonzeros plus their values
    (``ceil(numel / 8) + nnz * itemsize``), whichever is smaller: the "sparse storage" size that
    unstructured pruning is judged by.
    """
    total = 0
    for tensor in model.state_dict().values():
        if not torch.is_tensor(tensor):
            continue
        dense = tensor.numel() * tensor.element_size()
        nnz = int(torch.count_nonzero(tensor)) if tensor.numel() else 0
        total += min(dense, math.ceil(tensor.numel() / 8) + nnz * tensor.element_size())
    return total


def dense_size_bytes(model: nn.Module) -> int:
    """Bytes of the state dict's tensors stored densely (what ``model.safetensors`` holds)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values() if torch.is_tensor(t))
