"""``bigmodel plan RECIPE.yaml --devices 8 --device-memory 80GB``: per-device memory of the recipe's
training run under each strategy, with and without activation checkpointing, and the deepest model
of the same family that fits (see :mod:`bigmodel.engine.planner` for the formulas)."""

from __future__ import annotations

import argparse
import json


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


def run(args: argparse.Namespace) -> int:
    from bigmodel.engine.planner import format_bytes, parse_bytes
    from bigmodel.errors import ConfigError
    from bigmodel.recipes.plan import plan_recipe
    from bigmodel.recipes.schema import load_recipe

    if args.devices < 1:
        raise ConfigError(f"--devices must be >= 1; received {args.devices}")
    memory = parse_bytes(args.device_memory)
    overhead = parse_bytes(args.overhead) if args.overhead not in ("0", "0B") else 0
    recipe = load_recipe(args.recipe, args.overrides)
    train = recipe.train
    report, config, depth_name = plan_recipe(recipe, args.devices, memory, overhead,
                                             args.devices_per_node, args.sequence_length)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{recipe.model.name}: {report['parameters']:,} parameters; {args.devices} device(s) of "
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
