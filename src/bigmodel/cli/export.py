"""``bigmodel export RUN_DIR --format onnx|safetensors [--out PATH]``.

``onnx``: the model of a run (or of a compressed stage directory) as an ONNX file with a dynamic
batch axis, checked under ONNX Runtime against PyTorch (max abs difference printed; above ``--atol``
is an error). An int8 stage is written as the int8 ONNX graph it already is.
``safetensors``: the model as ``model.json`` + ``model.safetensors`` in ``--out`` (checked by
reloading it first).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "export", parents=parents, help="export a trained model to ONNX or safetensors",
        description="Export the model of a run directory (or a 'bigmodel compress' stage) to ONNX "
                    "(dynamic batch, checked under ONNX Runtime) or to safetensors + JSON.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run or compressed-stage directory")
    parser.add_argument("--format", choices=("onnx", "safetensors"), default="onnx")
    parser.add_argument("--out", default=None, metavar="PATH",
                        help="output file (onnx, default RUN_DIR/model.onnx) or directory "
                             "(safetensors, default RUN_DIR/export)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    parser.add_argument("--atol", type=float, default=1e-4,
                        help="largest accepted max abs difference from PyTorch (default 1e-4)")
    parser.set_defaults(func=run)


def example_input_for(run_dir: Path, model):
    """One input for the model: from the run's recorded input spec, else the registry's example."""
    import torch

    from bigmodel.errors import ConfigError
    from bigmodel.models.registry import example_input, read_model_spec

    spec = read_model_spec(run_dir)
    shape = (spec.get("metadata") or {}).get("input")
    if isinstance(shape, dict) and {"channels", "height", "width"} <= set(shape):
        return torch.rand(1, int(shape["channels"]), int(shape["height"]), int(shape["width"]))
    if isinstance(shape, dict) and shape.get("kind") == "audio":  # a speech run: one waveform
        return 0.1 * torch.randn(1, int(shape["num_samples"]))
    example = example_input(spec["name"], 1)
    if example is None:
        raise ConfigError(f"{run_dir}: no input spec in model.json and model '{spec['name']}' "
                          "registers no example input; cannot trace it for export")
    return example


def export_run(run_dir: str | Path, fmt: str = "onnx", out: str | None = None, opset: int = 18,
               atol: float = 1e-4) -> dict:
    """Export; returns ``{"path": Path, "max_abs_diff": float | None}``."""
    import shutil

    from bigmodel.compress.quantize import Int8Model
    from bigmodel.compress.saving import load_compressed
    from bigmodel.errors import ConfigError
    from bigmodel.export.onnx import export_onnx
    from bigmodel.utils.io import atomic_path, atomic_write_bytes
    from bigmodel.utils.loading import confined_path

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"Run directory not found: {run_dir}")
    model = load_compressed(run_dir)
    if fmt == "safetensors":
        target = Path(out) if out else run_dir / "export"
        if target.resolve() == run_dir.resolve():
            raise ConfigError("--out must differ from RUN_DIR for safetensors export")
        target.mkdir(parents=True, exist_ok=True)
        for name in ("model.safetensors", "model.json"):  # weights first: json names their hash
            with atomic_path(target / name) as tmp:
                shutil.copyfile(confined_path(run_dir, name, "Run file"), tmp)  # no symlink out
        load_compressed(target)  # the copy loads (checksums verified)
        return {"path": target, "max_abs_diff": None}
    if fmt != "onnx":
        raise ConfigError(f"--format must be onnx or safetensors; received {fmt!r}")
    target = Path(out) if out else run_dir / "model.onnx"
    if isinstance(model, Int8Model):
        atomic_write_bytes(target, model.onnx_bytes())
        return {"path": target, "max_abs_diff": None}
    result = export_onnx(model, target, example_input_for(run_dir, model), opset=opset, atol=atol)
    return {"path": target, "max_abs_diff": result.max_abs_diff}


def run(args: argparse.Namespace) -> int:
    result = export_run(args.run_dir, args.format, args.out, args.opset, args.atol)
    print(f"wrote {result['path']}")
    if result["max_abs_diff"] is not None:
        print(f"ONNX Runtime vs PyTorch max abs difference: {result['max_abs_diff']:.3g}")
    return 0
