"""``bigmodel info``: versions, compute devices, threads, the local data (data sets, fortunes,
espeak-ng; :mod:`bigmodel.recipes.environment`), the optional extras installed, registered models."""

from __future__ import annotations

import argparse
import platform


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser("info", parents=parents, help="show versions, devices and data",
                                   description="Show library versions, the compute device, thread "
                                               "count, which data is available locally (data "
                                               "sets, fortunes, espeak-ng) and which optional "
                                               "extras are installed.")
    parser.set_defaults(func=run)


def collect_info() -> dict[str, str]:
    """The facts ``bigmodel info`` prints, as ordered ``label -> text``."""
    import numpy as np
    import torch

    from bigmodel import __version__

    facts = {"bigmodel": __version__, "python": platform.python_version(),
             "torch": torch.__version__, "numpy": np.__version__}
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        facts["device"] = f"cuda ({torch.cuda.device_count()}: {', '.join(names)})"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        facts["device"] = "mps"
    else:
        facts["device"] = "cpu (no CUDA device)"
    facts["threads"] = f"{torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op"
    from bigmodel.recipes import environment

    for name, where in environment.data_sources().items():
        facts[f"data: {name}"] = where
    facts.update(environment.extra_lines())
    from bigmodel.models import list_models

    facts["models"] = ", ".join(list_models()) or "(none)"
    return facts


def run(args: argparse.Namespace) -> int:
    facts = collect_info()
    width = max(len(label) for label in facts)
    for label, text in facts.items():
        print(f"{label + ':':<{width + 1}} {text}")
    return 0
