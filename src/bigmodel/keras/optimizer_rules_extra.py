"""Keras 3's Lion, Lamb, Ftrl, Adafactor, Muon and ScheduleFreeAdamW update rules as
``torch.optim`` optimizers.

torch has no Lion, Lamb, Ftrl or Muon, and its ``Adafactor`` differs from Keras's (it has no
``epsilon_2`` floor on the step size, no ``clip_threshold`` and another decay schedule), so these
implement Keras's equations (``keras/src/optimizers/*.py``) exactly; Adadelta is torch's (the
same rule). ``g`` is the gradient, ``t`` the 1-based step, states start at zero unless said.

Lion::   w -= lr sign(beta_1 m + (1 - beta_1) g);  m = beta_2 m + (1 - beta_2) g
Lamb::   m, v as Adam;  u = m_hat / (sqrt(v_hat) + eps);  w -= lr (|w| / |u|) u   (ratio 1 if a norm is 0)
Ftrl::   see :class:`KerasFtrl` (accumulator starts at ``initial_accumulator_value``)
Adafactor:: second moments factored into row and column means over the last two axes (Keras's
         layout), ``rho_t = min(lr, 1/sqrt(t))``, step ``max(eps_2, rms(w)) rho_t`` times the
         clipped ``g / sqrt(v)``
Muon::   2-D weights: Nesterov momentum orthogonalised by 5 Newton-Schulz steps, scaled by
         ``sqrt(max(rows, cols)) * rms_rate``; other weights: Adam (Keras's form)
ScheduleFreeAdamW:: ``z`` starts at ``w``; ``z -= lr g / (sqrt(v_hat) + eps)``;
         ``x = lerp(x, z, 1/t)``; ``w = (1 - beta_1) z + beta_1 x`` (Defazio et al.)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

__all__ = ["KerasAdafactor", "KerasFtrl", "KerasLamb", "KerasLion", "KerasMuon",
           "KerasScheduleFreeAdamW"]


class _Rule(torch.optim.Optimizer):
    """The closure/group loop; a subclass updates one parameter in :meth:`_update`."""

    def __init__(self, params: Iterable[Any], **defaults: Any):
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    self._init_state(p, state, group)
                state["step"] += 1
                self._update(p, p.grad.to(p.dtype), state, group)
        return loss

    def _init_state(self, p: torch.Tensor, state: dict, group: dict) -> None:
        state["m"] = torch.zeros_like(p)

    def _update(self, p: torch.Tensor, g: torch.Tensor, state: dict,
                group: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class KerasLion(_Rule):
    """Keras's Lion (``beta_1``, ``beta_2``)."""

    def _update(self, p, g, state, group):
        m, b1, b2 = state["m"], group["beta_1"], group["beta_2"]
        p.add_(torch.sign(m * b1 + g * (1.0 - b1)), alpha=-group["lr"])
        m.mul_(b2).add_(g, alpha=1.0 - b2)


class KerasLamb(_Rule):
    """Keras's Lamb: Adam's direction rescaled by the trust ratio ``|w| / |update|``."""

    def _init_state(self, p, state, group):
        state["m"], state["v"] = torch.zeros_like(p), torch.zeros_like(p)

    def _update(self, p, g, state, group):
        b1, b2, t = group["beta_1"], group["beta_2"], state["step"]
        m, v = state["m"], state["v"]
        m.add_((g - m) * (1.0 - b1))
        v.add_((g * g - v) * (1.0 - b2))
        update = (m / (1.0 - b1 ** t)) / ((v / (1.0 - b2 ** t)).sqrt() + group["epsilon"])
        w_norm, u_norm = p.norm(), update.norm()
        ratio = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
        p.sub_(ratio * group["lr"] * update)


class KerasFtrl(_Rule):
    """Keras's FTRL-Proximal: with ``n`` the accumulator and ``z`` the linear term,
    ``n' = n + g^2``, ``z += g + 2 s w - (n'^-p - n^-p) / lr * w`` (``p`` the learning-rate power,
    ``s`` the L2 shrinkage), ``w = (clip(z, -l1, l1) - z) / (n'^-p / lr + 2 (l2 + beta / (2 lr)))``."""

    def _init_state(self, p, state, group):
        state["accumulator"] = torch.full_like(p, group["initial_accumulator_value"])
        state["linear"] = torch.zeros_like(p)

    def _update(self, p, g, state, group):
        lr, power = group["lr"], group["learning_rate_power"]
        accum, linear = state["accumulator"], state["linear"]
        l1 = group["l1_regularization_strength"]
        l2 = group["l2_regularization_strength"] + group["beta"] / (2.0 * lr)
        shrunk = g + 2 * group["l2_shrinkage_regularization_strength"] * p
        new_accum = accum + g * g
        linear.add_(shrunk - (new_accum.pow(-power) - accum.pow(-power)) / lr * p)
        quadratic = new_accum.pow(-power) / lr + 2 * l2
        p.copy_((linear.clamp(-l1, l1) - linear) / quadratic)
        accum.copy_(new_accum)


def _keras_layout(p: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    # a Keras layer may store a weight permuted for torch's kernels (see keras/variables.py);
    # Adafactor factors the last two axes of Keras's layout
    perm = p.__dict__.get("_torch_perm")
    return tensor.permute(*np.argsort(perm).tolist()) if perm is not None else tensor


def _torch_layout(p: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    perm = p.__dict__.get("_torch_perm")
    return tensor.permute(*perm) if perm is not None else tensor


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.square().mean().sqrt()


class KerasAdafactor(_Rule):
    """Keras's Adafactor (``beta_2_decay``, ``epsilon_1``, ``epsilon_2``, ``clip_threshold``,
    ``relative_step``; a learning-rate schedule turns ``relative_step`` off, as in Keras)."""

    def _init_state(self, p, state, group):
        shape = tuple(_keras_layout(p, p).shape)
        if len(shape) >= 2:
            state["r"] = p.new_zeros(shape[:-1])
            state["c"] = p.new_zeros(shape[:-2] + shape[-1:])
        state["v"] = p.new_zeros(shape)

    def _update(self, p, g, state, group):
        t = float(state["step"])
        lr = group["lr"]
        if group["relative_step"] and not group["scheduled"]:
            lr = min(lr, 1.0 / math.sqrt(t))
        w, g = _keras_layout(p, p), _keras_layout(p, g)
        rho = min(lr, 1.0 / math.sqrt(t))
        alpha = torch.clamp(_rms(w), min=group["epsilon_2"]) * rho
        squared = g * g + group["epsilon_1"]
        beta_2 = 1.0 - t ** group["beta_2_decay"]
        v = state["v"]
        if w.dim() >= 2:
            r, c = state["r"], state["c"]
            r.mul_(beta_2).add_(squared.mean(dim=-1), alpha=1.0 - beta_2)
            c.mul_(beta_2).add_(squared.mean(dim=-2), alpha=1.0 - beta_2)
            v.copy_((r / r.mean(dim=-1, keepdim=True)).unsqueeze(-1) * c.unsqueeze(-2))
        else:
            v.mul_(beta_2).add_(squared, alpha=1.0 - beta_2)
        u = g / v.sqrt()
        u = u / torch.clamp(_rms(u) / group["clip_threshold"], min=1.0)
        p.sub_(_torch_layout(p, alpha * u))


class KerasMuon(_Rule):
    """Keras's Muon. Which weights take the Muon step: 2-D ones whose Keras path
    (``"layer/kernel"``) matches no ``exclude_layers`` pattern (and has no "embedding" when
    ``exclude_embeddings``); every other weight takes Keras's Adam step at
    ``lr * adam_lr_ratio``. Weight decay is applied here, per kind (Keras's ``weight_decay`` for
    Muon weights, ``adam_weight_decay`` for the others), before the step."""

    @staticmethod
    def uses_adam(p: torch.Tensor, group: dict) -> bool:
        """Whether ``p`` takes the Adam step (``group``: ``exclude_embeddings``,
        ``exclude_layers``)."""
        if p.dim() != 2:
            return True
        path = str(p.__dict__.get("path", ""))
        if group["exclude_embeddings"] and "embedding" in path.lower():
            return True
        return any(re.search(pattern, path) for pattern in group["exclude_layers"])

    def _init_state(self, p, state, group):
        state["m"] = torch.zeros_like(p)
        if self.uses_adam(p, group):
            state["v"] = torch.zeros_like(p)

    def _update(self, p, g, state, group):
        lr = group["lr"]
        adam = "v" in state
        decay = group["adam_weight_decay"] if adam else group["weight_decay"]
        if decay:
            p.mul_(1.0 - decay * lr)
        m = state["m"]
        if adam:
            b1, b2, t, v = group["adam_beta_1"], group["adam_beta_2"], state["step"], state["v"]
            step = lr * group["adam_lr_ratio"] * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            m.add_((g - m) * (1.0 - b1))
            v.add_((g * g - v) * (1.0 - b2))
            p.sub_(m * step / (v.sqrt() + group["epsilon"]))
            return
        momentum = group["momentum"]
        m.add_(g + m * (momentum - 1.0))
        direction = g + momentum * m if group["nesterov"] else m
        update = self._orthogonalise(direction, group) * lr
        if group["rms_rate"] is not None:
            update = update * math.sqrt(max(p.shape[0], p.shape[1])) * group["rms_rate"]
        p.sub_(update)

    @staticmethod
    def _orthogonalise(x: torch.Tensor, group: dict) -> torch.Tensor:
        """Newton-Schulz iteration towards ``U V^T`` of ``x``'s SVD (Keras's coefficients)."""
        a, b, c = group["muon_a"], group["muon_b"], group["muon_c"]
        tall = x.shape[-2] > x.shape[-1]
        if tall:
            x = x.transpose(-2, -1)
        x = x / (torch.linalg.matrix_norm(x, keepdim=True) + 1e-7)
        for _ in range(group["ns_steps"]):
            gram = x @ x.transpose(-2, -1)
            x = a * x + (b * gram + c * gram @ gram) @ x
        return x.transpose(-2, -1) if tall else x


class KerasScheduleFreeAdamW(_Rule):
    """Keras's ScheduleFreeAdamW (``warmup_steps`` scales the rate linearly up to 1).

    Keras 3.15 on its torch backend reads the momentum ``z`` after updating it where the rule
    (and Keras on JAX) reads the value before (its ``momentum.value`` aliases the tensor that
    ``assign_sub`` then changes in place); this follows the rule as written, so the numbers
    differ from Keras-on-torch's after the first step. Weight decay (decoupled, at the
    rate without warm-up) is applied here, after ``z`` is set from the weight, as Keras orders it.
    """

    def _init_state(self, p, state, group):
        state["m"], state["v"] = p.detach().clone(), torch.zeros_like(p)

    def _update(self, p, g, state, group):
        t = float(state["step"])
        b1, b2, lr = group["beta_1"], group["beta_2"], group["lr"]
        if group["weight_decay"]:
            # decoupled decay here, not in a pre-step hook: z starts at the weight before it
            p.mul_(1.0 - group["weight_decay"] * lr)
        if group["warmup_steps"] > 0:
            lr = lr * min(t / group["warmup_steps"], 1.0)
        z, v = state["m"], state["v"]
        z_old = z.clone()
        v.add_((g * g - v) * (1.0 - b2))
        z.sub_(lr * g / ((v / (1.0 - b2 ** t)).sqrt() + group["epsilon"]))
        x_old = (p - (1.0 - b1) * z_old) / b1
        weight = 1.0 / t
        x_new = (1.0 - weight) * x_old + weight * z
        p.copy_((1.0 - b1) * z + b1 * x_new)
