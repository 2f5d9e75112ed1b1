"""Export of a trained run (``bigmodel export``).

``onnx``: the model of a run (or of a compressed stage directory) as an ONNX file with a dynamic
batch axis, checked under ONNX Runtime against PyTorch (above ``atol`` is an error). The example
input it traces is built from the run: an image / waveform of its recorded size, token ids of its
own tokenizer and length (text classifiers), source + decoder-input ids (seq2seq: the graph maps
``source``, ``target_input`` to teacher-forced ``logits``) or ids (language models: next-token
``logits``) below its model's vocabulary sizes. An int8 stage is written as the int8 ONNX graph it
already is. ``safetensors``: the model as ``model.json`` + ``model.safetensors`` in ``out``, with
the tokenizer / vocabulary files ``model.json`` names (checked by reloading it first).
"""

from __future__ import annotations

from pathlib import Path


def _token_ids(vocab_size: int, length: int, reserved: set[int], seed: int = 0):
    """``(1, length)`` ids drawn from ``[0, vocab_size)`` without the ``reserved`` (special) ids."""
    import torch

    allowed = torch.tensor([i for i in range(min(vocab_size, 4096)) if i not in reserved]
                           or [0])
    picks = torch.randint(0, len(allowed), (1, length),
                          generator=torch.Generator().manual_seed(seed))
    return allowed[picks]


def _text_example(run_dir: Path, spec: dict, shape: dict):
    """Token ids as the run's own tokenizer writes them (right-padded to its ``max_length``): a
    text of words from its vocabulary; without a tokenizer file (e.g. a compressed stage), ids
    below the model's ``vocab_size``."""
    from bigmodel.errors import BigModelError, ConfigError
    from bigmodel.recipes.text_data import load_vocabulary

    length = int(shape.get("max_length") or 16)
    try:
        tokenizer = load_vocabulary(run_dir, shape)
    except BigModelError:
        tokenizer = None
    if tokenizer is None:
        vocab_size = spec["config"].get("vocab_size")
        if not isinstance(vocab_size, int):
            raise ConfigError(f"{run_dir}: cannot build an example text input for export: no "
                              "tokenizer file in the directory and no 'vocab_size' in model.json")
        return _token_ids(vocab_size, length, {int(shape.get("pad_id", 0))})
    import torch

    special = {getattr(tokenizer, name, None) for name in
               ("pad_id", "unk_id", "bos_id", "eos_id", "cls_id", "sep_id")}
    itos = list(tokenizer.itos)
    words = _token_ids(len(itos), max(2, (3 * length) // 4), special)[0].tolist()
    text = " ".join(itos[i].removeprefix("##") for i in words)
    ids = torch.as_tensor(tokenizer.encode_batch([text], max_length=length)).long()
    # right-padded to the length the model was trained on, so the graph also sees padding
    return torch.nn.functional.pad(ids, (0, length - ids.shape[1]), value=tokenizer.pad_id)


def _sequence_example(run_dir: Path, spec: dict, task: str):
    """Token inputs of a seq2seq model (source ids, decoder input ids starting with BOS) or of a
    language model (ids), below the vocabulary sizes and length limit of the model's config."""

    from bigmodel.errors import ConfigError

    config = spec["config"]
    keys = ("input_vocab_size", "target_vocab_size") if task == "seq2seq" else ("vocab_size",)
    sizes = [config.get(key) for key in keys]
    if not all(isinstance(size, int) and size > 0 for size in sizes):
        raise ConfigError(f"{run_dir}: model.json of this {task} run lacks "
                          f"{' / '.join(keys)}; cannot build an example input for export")
    max_length = int(config.get("max_length") or 16)
    reserved = {config.get(key) for key in ("pad_id", "bos_id", "eos_id")}
    if task == "language_model":
        return _token_ids(sizes[0], min(16, max_length), set())
    source = _token_ids(sizes[0], min(12, max_length), reserved, seed=0)
    target = _token_ids(sizes[1], min(8, max_length), reserved, seed=1)
    target[:, 0] = int(config.get("bos_id", 1))  # teacher forcing: BOS, then the target
    return source, target


def example_input_for(run_dir: Path, model=None):
    """One input for the run's model, built from the run itself: its recorded input spec (image
    size, waveform length, the text tokenizer and length) or, for seq2seq and language-model runs,
    its model config (vocabulary sizes, length limit); else the registry's example.

    Raises:
        ConfigError: none of these says what the model reads.
    """
    import torch

    from bigmodel.errors import ConfigError
    from bigmodel.models.registry import example_input, read_model_spec

    spec = read_model_spec(run_dir)
    metadata = spec.get("metadata") or {}
    shape = metadata.get("input")
    if isinstance(shape, dict) and {"channels", "height", "width"} <= set(shape):
        return torch.rand(1, int(shape["channels"]), int(shape["height"]), int(shape["width"]))
    if isinstance(shape, dict) and shape.get("kind") == "audio":  # a speech run: one waveform
        return 0.1 * torch.randn(1, int(shape["num_samples"]))
    if isinstance(shape, dict) and (shape.get("kind") == "text" or (
            "finetuned_from" in metadata and shape.get("tokenizer"))):  # fine-tuned: no kind
        return _text_example(run_dir, spec, shape)
    if metadata.get("task") in ("seq2seq", "language_model"):
        return _sequence_example(run_dir, spec, metadata["task"])
    example = example_input(spec["name"], 1)
    if example is None:
        raise ConfigError(f"{run_dir}: no input spec in model.json and model '{spec['name']}' "
                          "registers no example input; cannot trace it for export")
    vocab_size = spec["config"].get("vocab_size")
    if torch.is_tensor(example) and not example.is_floating_point() \
            and isinstance(vocab_size, int) and vocab_size > 1:
        # the registry's ids inside this vocabulary, none of them 0 (the usual padding id)
        example = 1 + example.remainder(vocab_size - 1)
    return example


def _tokenizer_files(run_dir: Path) -> list[str]:
    """The tokenizer / vocabulary files ``model.json``'s metadata names and the directory holds
    (a text, seq2seq or language-model run is unusable without them)."""
    from bigmodel.models.registry import read_model_spec

    metadata = read_model_spec(run_dir).get("metadata") or {}
    shape = metadata.get("input") if isinstance(metadata.get("input"), dict) else {}
    tokenizers = metadata.get("tokenizers")
    names = [shape.get("vocabulary"), shape.get("tokenizer"), metadata.get("vocabulary"),
             metadata.get("tokenizer"),
             *(tokenizers.values() if isinstance(tokenizers, dict) else ())]
    found = []
    for name in names:
        if isinstance(name, str) and name.endswith(".json") and name not in found \
                and (run_dir / name).is_file():
            found.append(name)
    return found


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
    from bigmodel.compress.saving import load_any
    from bigmodel.errors import ConfigError
    from bigmodel.export.onnx import export_onnx
    from bigmodel.utils.io import atomic_path, atomic_write_bytes
    from bigmodel.utils.loading import confined_path

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"Run directory not found: {run_dir}")
    model = load_any(run_dir)
    if fmt == "safetensors":
        target = Path(out) if out else run_dir / "export"
        if target.resolve() == run_dir.resolve():
            raise ConfigError("--out must differ from RUN_DIR for safetensors export")
        target.mkdir(parents=True, exist_ok=True)
        # weights first (model.json names their hash), then the tokenizer files model.json names
        for name in ("model.safetensors", *_tokenizer_files(run_dir), "model.json"):
            with atomic_path(target / name) as tmp:
                shutil.copyfile(confined_path(run_dir, name, "Run file"), tmp)  # no symlink out
        load_any(target)  # the copy loads (checksums verified)
        return {"path": target, "max_abs_diff": None}
    if fmt != "onnx":
        raise ConfigError(f"--format must be onnx or safetensors; received {fmt!r}")
    target = Path(out) if out else run_dir / "model.onnx"
    if isinstance(model, Int8Model):
        atomic_write_bytes(target, model.onnx_bytes())
        return {"path": target, "max_abs_diff": None}
    example = example_input_for(run_dir, model)
    names = ["source", "target_input"] if isinstance(example, tuple) else ["input"]
    result = export_onnx(model, target, example, opset=opset, atol=atol, input_names=names,
                         output_names=["logits"])
    return {"path": target, "max_abs_diff": result.max_abs_diff}


__all__ = ["example_input_for", "export_run"]
