"""``bigmodel plan RECIPE.yaml --devices 8 --device-memory 80GB``: per-device memory of the recipe's
training run under each strategy, with and without activation checkpointing, and the deepest model
of the same family that fits (see :mod:`bigmodel.engine.planner` for the formulas)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "plan", parents=parents, help="estimate per-device training memory for a recipe",
        description="Measure the recipe's model (parameters, activation bytes per sample) and print "
                    "per-device memory for parameters, gradients, optimizer state and activations "
                    "under each strategy, with and without activation checkpointing, and the "
                    "largest model of the family (by number of blocks) that fits.")
    parser.add_argument("recipe", metavar="RECIPE.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe value (as for train)")
    parser.add_argument("--devices", type=int, default=1, help="devices (processes) in all (default 1)")
    parser.add_argument("--devices-per-node", type=int, default=None,
                        help="devices per machine; adds the hybrid strategy (shard within a node)")
    parser.add_argument("--device-memory", default="80GB", help="memory of one device, e.g. 80GB, 16GiB")
    parser.add_argument("--overhead", default="0B",
                        help="fixed bytes per device added to every estimate (e.g. 1GB of CUDA context)")
    parser.add_argument("--sequence-length", type=int, default=None, metavar="T",
                        help="for token models: measure with sequences of T tokens (the registered "
                             "example input tiled along its second axis)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.set_defaults(func=run)


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


def run(args: argparse.Namespace) -> int:
    from bigmodel.engine.planner import format_bytes, largest_depth, parse_bytes, plan_table
    from bigmodel.errors import ConfigError
    from bigmodel.recipes.schema import load_recipe

    if args.devices < 1:
        raise ConfigError(f"--devices must be >= 1; received {args.devices}")
    memory = parse_bytes(args.device_memory)
    overhead = parse_bytes(args.overhead) if args.overhead not in ("0", "0B") else 0
    recipe = load_recipe(args.recipe, args.overrides)
    train = recipe.train
    options = {"optimizer": train.optimizer, "momentum": train.momentum, "precision": train.precision,
               "grad_accum_steps": train.grad_accum_steps, "devices_per_node": args.devices_per_node,
               "overhead_bytes": overhead}
    profile, config, depth_name = recipe_profile(recipe, args.sequence_length)
    rows = plan_table(profile, args.devices, train.batch_size, **options)
    report: dict[str, Any] = {
        "model": recipe.model.name, "parameters": profile.parameters, "devices": args.devices,
        "device_memory": memory, "global_batch": train.batch_size, "estimates": []}
    for row in rows:
        entry = {**row.as_dict(), "fits": row.total <= memory}
        if depth_name is not None:
            entry["largest_" + depth_name] = largest_depth(
                profile, memory, row.strategy, args.devices, train.batch_size,
                row.activation_checkpointing, **options)
        report["estimates"].append(entry)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{recipe.model.name}: {profile.parameters:,} parameters; {args.devices} device(s) of "
          f"{format_bytes(memory)}; global batch {train.batch_size}; {train.optimizer}, "
          f"{train.precision}")
    header = ["strategy", "ckpt", "micro-batch", "params", "grads", "optimizer", "activations",
              "working set", "total", "fits"]
    if depth_name is not None:
        header.append(f"largest {depth_name}")
    lines = [header]
    for entry in report["estimates"]:
        line = [entry["strategy"], "yes" if entry["activation_checkpointing"] else "no",
                str(entry["micro_batch"])]
        line += [format_bytes(entry[key]) for key in ("parameters", "gradients", "optimizer",
                                                      "activations", "working_set", "total")]
        line.append("fits" if entry["fits"] else "does not fit")
        if depth_name is not None:
            line.append(f"{entry['largest_' + depth_name]} (now {config[depth_name]})")
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    if depth_name is None:
        print("(this model family has no block-count argument; no larger variant is searched)")
    return 0
