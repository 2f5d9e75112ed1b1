"""Helpers shared by the tests of the layers' call paths."""

from __future__ import annotations

from typing import Any


def replace_forward(layer: Any) -> list[int]:
    """Replace ``layer.forward`` by a wrapper of the class's own, as activation checkpointing
    does; the returned list gets one entry per call of the wrapper."""
    calls: list[int] = []

    def forward(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return type(layer).forward(layer, *args, **kwargs)

    layer.forward = forward
    return calls


def seen_by_a_global_hook(run: Any) -> list[str]:
    """The class names of the modules a global forward hook sees while ``run()`` runs."""
    import torch

    seen: list[str] = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda module, inputs, output: seen.append(type(module).__name__))
    try:
        run()
    finally:
        handle.remove()
    return seen
