"""Export of a trained run (``bigmodel export``).

``onnx``: the model of a run (or of a compressed stage directory) as an ONNX file with a dynamic
batch axis, checked under ONNX Runtime against PyTorch (above ``atol`` is an error). An int8 stage
is written as the int8 ONNX graph it already is. ``safetensors``: the model as ``model.json`` +
``model.safetensors`` in ``out`` (checked by reloading it first).
"""

from __future__ import annotations

from pathlib import Path


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
    """Export the model of ``run_dir`` as ``fmt`` (see the module doc).

    Returns:
        ``{"path": Path, "max_abs_diff": float | None}`` (the ONNX check against PyTorch).

    Raises:
        ConfigError: no such run, an unknown format, ``out`` equal to the run dir (safetensors),
            no example input to trace. ExportError: ONNX Runtime disagrees past ``atol``.
    """
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


__all__ = ["example_input_for", "export_run"]
