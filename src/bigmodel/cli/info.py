"""``bigmodel info``: versions, compute devices, threads, data sets found, registered models."""

from __future__ import annotations

import argparse
import platform


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser("info", parents=parents, help="show versions, devices and data",
                                   description="Show library versions, the compute device, thread "
                                               "count and which data sets are available locally.")
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
    try:
        from bigmodel.data.datasets import find_datasets

        found = find_datasets()
        missing = "not found locally (downloaded on first use unless BIGMODEL_OFFLINE=1)"
        for name, path in found.items():
            facts[f"data: {name}"] = str(path) if path is not None else missing
    except ImportError as exc:
        facts["data"] = f"unavailable ({exc})"
    from bigmodel.models import list_models

    facts["models"] = ", ".join(list_models()) or "(none)"
    return facts


def run(args: argparse.Namespace) -> int:
    facts = collect_info()
    width = max(len(label) for label in facts)
    for label, text in facts.items():
        print(f"{label + ':':<{width + 1}} {text}")
    return 0
