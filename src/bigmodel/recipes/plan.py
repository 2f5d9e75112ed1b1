"""Memory plan of a recipe's training run (``bigmodel plan``): per-device memory under each
strategy, with and without activation checkpointing, and the deepest model of the same family that
fits (see :mod:`bigmodel.engine.planner` for the formulas)."""

from __future__ import annotations

from typing import Any


def recipe_profile(recipe, sequence_length: int | None = None) -> tuple[Any, Any, str | None]:
    """``(ModelProfile, model defaults, depth key)`` of the recipe's model on its data's input shape."""
    import torch

    from bigmodel.engine.planner import depth_key, profile_model
    from bigmodel.errors import ConfigError
    from bigmodel.models import create_model, example_input, model_defaults

    name = recipe.model.name
    accepted = model_defaults(name)
    overrides: dict[str, Any] = {}
    image_model = "in_channels" in accepted or "image_size" in accepted
    if image_model and recipe.data.name in ("fashion_mnist", "mnist"):  # the train command's images
        derived = {"in_channels": 1, "num_classes": 10, "image_size": 28}
        overrides = {k: v for k, v in derived.items() if k in accepted}

        def make_input(batch: int):
            return torch.rand(batch, 1, 28, 28)
    else:
        def make_input(batch: int):
            tokens = example_input(name, batch)
            if sequence_length is None:
                return tokens
            if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2:
                raise ConfigError(f"--sequence-length needs a model whose example input is (batch, "
                                  f"tokens); '{name}' takes {type(tokens).__name__}")
            repeats = -(-sequence_length // tokens.shape[1])
            return tokens.repeat(1, repeats)[:, :sequence_length]
    overrides.update(recipe.model.overrides)
    torch.manual_seed(0)
    model = create_model(name, **overrides)
    profile = profile_model(model, make_input, precision=recipe.train.precision)
    return profile, {**accepted, **overrides}, depth_key(accepted)


def plan_recipe(recipe, devices: int, device_memory: int, overhead: int = 0,
                devices_per_node: int | None = None,
                sequence_length: int | None = None) -> tuple[dict[str, Any], dict, str | None]:
    """``(report, model config, depth key)``: the plan of ``recipe`` on ``devices`` devices of
    ``device_memory`` bytes (``overhead`` bytes more each); the report holds the model, its
    parameters and one estimate per strategy / checkpointing choice (with ``fits`` and the
    largest depth that fits).

    Raises:
        ConfigError: ``devices`` < 1, a ``sequence_length`` the model cannot take.
    """
    from bigmodel.engine.planner import largest_depth, plan_table
    from bigmodel.errors import ConfigError

    if devices < 1:
        raise ConfigError(f"--devices must be >= 1; received {devices}")
    train = recipe.train
    options = {"optimizer": train.optimizer, "momentum": train.momentum, "precision": train.precision,
               "grad_accum_steps": train.grad_accum_steps, "devices_per_node": devices_per_node,
               "overhead_bytes": overhead}
    profile, config, depth_name = recipe_profile(recipe, sequence_length)
    rows = plan_table(profile, devices, train.batch_size, **options)
    report: dict[str, Any] = {
        "model": recipe.model.name, "parameters": profile.parameters, "devices": devices,
        "device_memory": device_memory, "global_batch": train.batch_size, "estimates": []}
    for row in rows:
        entry = {**row.as_dict(), "fits": row.total <= device_memory}
        if depth_name is not None:
            entry["largest_" + depth_name] = largest_depth(
                profile, device_memory, row.strategy, devices, train.batch_size,
                row.activation_checkpointing, **options)
        report["estimates"].append(entry)
    return report, config, depth_name


__all__ = ["plan_recipe", "recipe_profile"]
