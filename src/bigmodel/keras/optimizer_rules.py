"""Keras 3's Nadam and Adamax update rules as ``torch.optim`` optimizers.

``torch.optim.NAdam`` and ``torch.optim.Adamax`` differ from Keras in ways that change the numbers
(NAdam's momentum schedule ``0.96 ** (0.004 t)`` versus Keras's ``0.96 ** t``; Adamax adds
``epsilon`` inside the max), so these implement Keras's rules exactly. With ``g`` the gradient,
``t`` the 1-based step and ``m``, ``v``/``u`` zero-initialised:

Adamax::

    m = m + (g - m) (1 - beta_1);  u = max(beta_2 u, |g|)
    w = w - lr m / ((1 - beta_1^t) (u + epsilon))

Nadam (``mu_t = beta_1 (1 - 0.5 * 0.96^t)``, ``P_t = mu_1 ... mu_t``)::

    m = m + (g - m) (1 - beta_1);  v = v + (g^2 - v) (1 - beta_2)
    m_hat = mu_{t+1} m / (1 - P_t mu_{t+1}) + (1 - mu_t) g / (1 - P_t)
    w = w - lr m_hat / (sqrt(v / (1 - beta_2^t)) + epsilon)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["KerasAdamax", "KerasNadam"]


class _KerasRule(torch.optim.Optimizer):
    """What both rules share: Keras's hyper-parameter names and the closure/group loop; a subclass
    updates one parameter group in :meth:`_update_group`."""

    def __init__(self, params: Iterable[Any], lr: float = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7):
        super().__init__(params, dict(lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon))

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._update_group(group)
        return loss

    def _moments(self, p: torch.Tensor, second: str) -> tuple[dict, torch.Tensor, torch.Tensor]:
        """``p``'s state (step counter advanced) with its first moment and the named second one."""
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["m"] = torch.zeros_like(p)
            state[second] = torch.zeros_like(p)
        state["step"] += 1
        return state, state["m"], state[second]

    def _update_group(self, group: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class KerasAdamax(_KerasRule):
    """Keras's Adamax (see the module docstring)."""

    def _update_group(self, group: dict) -> None:
        lr, b1, b2, eps = group["lr"], group["beta_1"], group["beta_2"], group["epsilon"]
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad
            state, m, u = self._moments(p, "u")
            m.lerp_(g, 1 - b1)
            torch.maximum(u.mul_(b2), g.abs(), out=u)
            p.addcdiv_(m, u + eps, value=-lr / (1 - b1 ** state["step"]))


class KerasNadam(_KerasRule):
    """Keras's Nadam (see the module docstring). ``P_t`` is kept per parameter group, so a group
    added later starts its own momentum product (Keras holds one per optimizer)."""

    def _update_group(self, group: dict) -> None:
        lr, b1, b2, eps = group["lr"], group["beta_1"], group["beta_2"], group["epsilon"]
        t = group.get("iterations", 0) + 1
        mu_t = b1 * (1.0 - 0.5 * 0.96 ** t)
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** (t + 1))
        product = group.get("u_product", 1.0) * mu_t
        product_next = product * mu_next
        group["iterations"], group["u_product"] = t, product
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad
            _, m, v = self._moments(p, "v")
            m.lerp_(g, 1 - b1)
            v.lerp_(g * g, 1 - b2)
            m_hat = m * (mu_next / (1 - product_next)) + g * ((1 - mu_t) / (1 - product))
            denom = (v / (1 - b2 ** t)).sqrt_().add_(eps)
            p.addcdiv_(m_hat, denom, value=-lr)
