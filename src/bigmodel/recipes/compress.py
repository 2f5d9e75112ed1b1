"""Compression of a trained run (``bigmodel compress``). Steps run in this order, each on the
previous one's result:

1. pruning (``--prune P``): structured (default) removes channels until ``P`` of the multiply-adds
   are gone; ``--prune-mode unstructured`` zeroes ``P`` of the weights by magnitude. Then
   ``--fine-tune-epochs`` of training (masks kept) recover the accuracy.
2. distillation (``--distill-from``): the fine-tuning (or, without pruning, extra training) learns
   from the teacher's softened outputs as well as the labels.
3. int8 quantization (``--quantize int8``): last, so it quantizes the final weights (static with
   calibration images for CNNs, dynamic otherwise; run by ONNX Runtime). ``--keep-fp32`` names
   layers to leave in fp32.

Every stage is saved under ``--out`` (default ``RUN_DIR/compressed``) and compared with the
original in ``report.md`` + ``compression.png`` (accuracy against size and latency) +
``results.json``, all or nothing, each stage a model directory that ``evaluate`` / ``predict``
read (:mod:`bigmodel.recipes.compress_output`). What cannot work is refused before any data,
training, calibration or export: a seq2seq / language-model run (:func:`check_run`), layers int8 has no kernel for (naming them and ``--keep-fp32``), a model
structured pruning cannot slice (naming ``--prune-mode unstructured``).

Fine-tuning goes through the run path's trainer (:func:`bigmodel.recipes.training.build_trainer`):
the run's own ``train`` settings (optimizer with Keras's epsilon, as the model was trained), with
``--lr`` / ``--batch-size`` / ``--fine-tune-epochs`` applied. Without ``--lr`` a LoRA run of
``bigmodel finetune`` fine-tunes at a full-model rate, not its adapters' (:func:`fine_tune_lr`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path


@dataclass
class CompressOptions:
    """What ``bigmodel compress`` does (its command-line options; see the module doc)."""

    run_dir: str
    prune: float | None = None
    prune_mode: str = "structured"
    channel_multiple: int = 1
    quantize: str | None = None
    distill_from: str | None = None
    fine_tune_epochs: int = 1
    lr: float | None = None
    batch_size: int | None = None
    temperature: float = 2.0
    alpha: float = 0.5
    calibration_size: int = 512
    data_path: str | None = None
    threads: int = 1
    speed_rounds: int = 5
    out: str | None = None
    keep_fp32: tuple[str, ...] = ()


def check_options(args: CompressOptions) -> None:
    """Raises ConfigError: nothing to do, or a value out of range (names the option)."""
    from bigmodel.compress.prune import check_sparsity
    from bigmodel.errors import ConfigError

    if args.prune is not None:
        check_sparsity(args.prune, "--prune")
        if args.prune == 0:
            raise ConfigError("--prune 0 removes nothing; give a fraction in (0, 1), e.g. --prune 0.5")
    if args.prune is None and args.quantize is None and args.distill_from is None:
        raise ConfigError("bigmodel compress: nothing to do; give --prune, --quantize and/or "
                          "--distill-from")
    if args.lr is not None and not args.lr > 0:
        raise ConfigError(f"--lr must be a positive learning rate; received {args.lr}")
    for name, low in (("fine_tune_epochs", 0), ("calibration_size", 1), ("threads", 1),
                      ("speed_rounds", 1)):
        if getattr(args, name) < low:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least {low}; received "
                              f"{getattr(args, name)}")


def load_module(path: Path, role: str):
    """The trainable (fp32) model of a run directory or compressed stage.

    Raises:
        ConfigError: no such directory, or an int8 model (which cannot be trained).
    """
    from torch import nn

    from bigmodel.compress.saving import load_any
    from bigmodel.errors import ConfigError

    if not path.is_dir():
        raise ConfigError(f"{role} run directory not found: {path}")
    model = load_any(path)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{role} {path} holds an int8 model, which cannot be trained further; "
                          "give the run directory of the fp32 model")
    return model


def fine_tune_settings(train, epochs: int, lr: float, batch_size: int):
    """The run's ``train`` section for compression's fine-tuning: its optimizer (name, epsilon,
    momentum, weight decay) and seed, ``epochs`` / ``lr`` / ``batch_size`` as given, one CPU process
    in fp32 without schedule, early stopping or checkpoints."""
    return train.model_copy(update={
        "epochs": epochs, "lr": lr, "batch_size": batch_size, "device": "cpu", "precision": "fp32",
        "scheduler": None, "early_stopping": None, "checkpoint_every": None, "strategy": "single",
        "activation_checkpointing": False, "compile": False, "channels_last": False,
        "grad_accum_steps": 1, "l2": 0.0, "grad_clip_norm": None})


#: The fine-tuning rate compress uses by default for a LoRA run of ``bigmodel finetune``. Its
#: recipe's ``lr`` was chosen for the adapters (a few small matrices starting at zero; LoRA rates
#: run ~10x those of full fine-tuning), but compress trains every weight of the merged model: at
#: the adapter rate (3e-3 in the tests) one epoch moved MiniLM off 6 of 9 test texts (100% -> 92%),
#: at 1e-4 it kept 100%. 1e-4 is the top of the usual full fine-tuning range of pretrained
#: Transformers (BERT: 2e-5 .. 5e-5; 1e-4 for small models).
FULL_MODEL_LR = 1e-4


def fine_tune_lr(recipe, lr: float | None = None) -> tuple[float, str]:
    """The learning rate of compression's fine-tuning and where it comes from: ``lr`` when given
    (``--lr``); for a LoRA run of ``bigmodel finetune`` (its recipe's ``finetune.lora``) the
    recipe's rate only if below :data:`FULL_MODEL_LR`, else :data:`FULL_MODEL_LR` (the recipe's
    was for the adapters, and here every weight trains); otherwise the recipe's ``train.lr``.

    Returns:
        ``(lr, source)``, ``source`` a few words for the report and the console.
    """
    if lr is not None:
        return lr, "--lr"
    finetune = getattr(recipe, "finetune", None)
    if finetune is not None and finetune.lora is not None and recipe.train.lr > FULL_MODEL_LR:
        return FULL_MODEL_LR, (f"full-model rate for the merged LoRA model; the recipe's "
                               f"{recipe.train.lr:g} was for its adapters")
    return recipe.train.lr, "the recipe's train.lr"


def fine_tune(model, teacher, data, train, temperature: float = 2.0, alpha: float = 0.5):
    """Train ``model`` on ``data``'s training split as ``train`` (:func:`fine_tune_settings`) says,
    learning from ``teacher``'s softened outputs too when given; returns the Trainer (None for 0
    epochs). ``model`` is left in eval mode."""
    from torch import nn

    from bigmodel.compress.distill import Distiller
    from bigmodel.recipes.tasks import FitInputs
    from bigmodel.recipes.training import build_trainer, fit

    if train.epochs == 0:
        return None
    if teacher is not None:
        trained = Distiller(model, teacher, temperature=temperature, alpha=alpha)
        loss = trained.loss
    else:
        trained, loss = model, nn.CrossEntropyLoss()
    inputs = FitInputs(loss=loss, train=(data.x_train, data.y_train), metrics=["accuracy"])
    trainer = build_trainer(trained, train, inputs, verbose=0)
    fit(trainer, train, inputs)
    model.eval()
    return trainer


def check_run(run_dir: Path):
    """The recipe of a run ``bigmodel compress`` can work on, checked before any work: a
    classification run of ``bigmodel train`` or a run of ``bigmodel finetune``.

    Raises:
        ConfigError: no such directory, no recipe, or a task that is not classification
            (seq2seq, language model): the message names the task.
    """
    from bigmodel.errors import ConfigError
    from bigmodel.recipes.finetune_schema import load_finetune_recipe
    from bigmodel.recipes.runs import CLASSIFICATION_TASKS, is_finetune_run
    from bigmodel.recipes.schema import load_recipe
    from bigmodel.utils.loading import confined_path

    if not run_dir.is_dir():
        raise ConfigError(f"RUN_DIR run directory not found: {run_dir}")
    path = confined_path(run_dir, "recipe.yaml", "Run recipe", error=ConfigError, kind=None)
    if is_finetune_run(run_dir):
        return load_finetune_recipe(path)
    recipe = load_recipe(path)
    if recipe.task not in CLASSIFICATION_TASKS:
        raise ConfigError(
            f"{run_dir} is a {recipe.task} run; compress prunes, distills and quantizes "
            f"classifiers ({', '.join(CLASSIFICATION_TASKS)}), measuring each stage's test "
            f"accuracy, which a {recipe.task} run does not have. Export it with 'bigmodel export "
            "--format onnx' for ONNX Runtime instead")
    return recipe


def load_splits(run_dir: Path, recipe, metadata: dict, data_path: str | None = None):
    """The run's train / test data, prepared as the run was: its recipe's data section (a
    fine-tuning recipe's for a run of ``bigmodel finetune``), its own vocabulary / tokenizer.

    Returns:
        A :class:`~bigmodel.recipes.classification_data.ClassificationData`.
    """
    from bigmodel.recipes.classification_data import load_classification_data
    from bigmodel.recipes.runs import is_finetune_run
    from bigmodel.recipes.text_data import TEXT_DATA, load_vocabulary

    data = recipe.data.model_copy(update={"path": data_path}) if data_path else recipe.data
    spec = metadata.get("input") or {}
    if is_finetune_run(run_dir):
        from bigmodel.recipes.tasks.finetune import prepare_data

        tokenizer = load_vocabulary(run_dir, spec) if spec.get("tokenizer") else None
        if tokenizer is not None and data.max_length is None and spec.get("max_length"):
            data = data.model_copy(update={"max_length": int(spec["max_length"])})
        return prepare_data(data, tokenizer, 0 if recipe.train.seed is None else recipe.train.seed)
    vocabulary = load_vocabulary(run_dir, spec) if data.name in TEXT_DATA else None
    return load_classification_data(data, seed=recipe.train.seed, with_train=True,
                                    vocabulary=vocabulary)


def _prune(current, example, args: CompressOptions):
    """Structured or unstructured pruning of ``current`` in place; returns ``(structure, note,
    pruner)`` (``pruner`` to detach after fine-tuning, unstructured only)."""
    from bigmodel.compress import magnitude_prune, structured_prune
    from bigmodel.errors import ConfigError

    if args.prune_mode == "structured":
        try:
            result = structured_prune(current, example, flops_ratio=1.0 - args.prune, heads=True,
                                      channel_multiple=args.channel_multiple)
        except ConfigError as err:  # before any training: name the mode that works on any layer
            raise ConfigError(f"{err}. --prune-mode unstructured zeroes the smallest weights "
                              "of every layer instead") from None
        return result.structure, f"structured, {result.macs_ratio:.0%} of MACs kept", None
    return None, "", magnitude_prune(current, args.prune)


def compress_run(args: CompressOptions) -> dict:
    """Run the steps ``args`` asks for; returns ``{"out": Path, "stages": [StageResult, ...],
    "unit": str, "fine_tune_lr": (lr, source) or None}`` (:func:`fine_tune_lr`; None when nothing
    was fine-tuned). All or nothing: the stages are built in a hidden folder that becomes ``out``
    at the end (:mod:`bigmodel.recipes.compress_output`).

    Raises:
        ConfigError: bad options, a run compress does not apply to (seq2seq, language model),
            a run without a trainable fp32 model, a teacher for other classes, an
            ``--out`` that is not an earlier compress output, layers int8 cannot quantize (unless
            ``--keep-fp32`` names them) or structured pruning cannot slice: all before any
            training, calibration or export.
        DataFileError: the run's data cannot be loaded.
    """
    import torch

    from bigmodel.compress import (
        StageResult,
        compare_speed,
        count_macs,
        quantize_int8,
        save_compressed,
        sparse_size_bytes,
        write_report,
    )
    from bigmodel.compress.int8_plan import check_int8
    from bigmodel.compress.report import accuracy, files_size
    from bigmodel.errors import ConfigError
    from bigmodel.models.registry import read_model_spec
    from bigmodel.recipes.compress_output import (
        check_out,
        complete_stage,
        run_files,
        staged_output,
    )

    check_options(args)
    run_dir = Path(args.run_dir)
    recipe = check_run(run_dir)
    model = load_module(run_dir, "RUN_DIR")
    teacher = load_module(Path(args.distill_from), "--distill-from") if args.distill_from else None
    if args.quantize == "int8":  # layer types int8 refuses: before any data, training or export
        check_int8(model, keep_fp32=args.keep_fp32, option="--keep-fp32")
    out = Path(args.out) if args.out else run_dir / "compressed"
    check_out(out)
    metadata = (read_model_spec(run_dir).get("metadata") or {})
    files = run_files(run_dir, metadata)
    splits = load_splits(run_dir, recipe, metadata, args.data_path)
    example = torch.as_tensor(splits.x_test[:1])
    if teacher is not None:
        with torch.no_grad():
            t_out, s_out = teacher.eval()(example), model(example)
        if t_out.shape != s_out.shape:
            raise ConfigError(f"--distill-from: the teacher outputs {tuple(t_out.shape[1:])} values "
                              f"per image and the student {tuple(s_out.shape[1:])}; they must "
                              "predict the same classes")
    lr, lr_source = fine_tune_lr(recipe, args.lr)
    train = fine_tune_settings(recipe.train, args.fine_tune_epochs, lr,
                               args.batch_size or recipe.train.batch_size)
    x_test, y_test = splits.x_test, splits.y_test
    current = copy.deepcopy(model)
    if args.prune is not None:  # slicing is checked here, before any training
        structure, note, pruner = _prune(current, example, args)

    def params(m) -> int:
        return sum(p.numel() for p in m.parameters())

    with staged_output(out) as staging:
        stages = [StageResult("original", accuracy(model, x_test, y_test), files_size(run_dir),
                              params=params(model), macs=count_macs(model, example))]
        predictors = {"original": model}
        if teacher is not None:
            stages.append(StageResult("teacher", accuracy(teacher, x_test, y_test),
                                      files_size(Path(args.distill_from)), params=params(teacher),
                                      macs=count_macs(teacher, example), note="reference"))
            predictors["teacher"] = teacher
        if args.prune is not None:
            fine_tune(current, teacher, splits, train, args.temperature, args.alpha)
            if pruner is not None:
                pruner.detach()
                note = f"unstructured, {pruner.sparsity():.0%} zeros; size as sparse storage"
            if teacher is not None:
                note += ", distilled"
            stage_dir = staging / "pruned"
            save_compressed(current, stage_dir, structure, metadata)
            size = files_size(stage_dir)
            if args.prune_mode == "unstructured":
                size = sparse_size_bytes(current) + (stage_dir / "model.json").stat().st_size
            complete_stage(stage_dir, files)
            stages.append(StageResult("pruned", accuracy(current, x_test, y_test), size,
                                      params=params(current), macs=count_macs(current, example),
                                      note=note + f" (+{args.fine_tune_epochs} epoch fine-tune)"))
            predictors["pruned"] = current
        elif teacher is not None:
            fine_tune(current, teacher, splits, train, args.temperature, args.alpha)
            save_compressed(current, staging / "distilled", None, metadata)
            size = files_size(staging / "distilled")
            complete_stage(staging / "distilled", files)
            stages.append(StageResult("distilled", accuracy(current, x_test, y_test), size,
                                      params=params(current), macs=count_macs(current, example),
                                      note=f"{args.fine_tune_epochs} epoch(s) with the teacher"))
            predictors["distilled"] = current
        if args.quantize == "int8":
            int8 = quantize_int8(current.eval(), example, keep_fp32=args.keep_fp32,
                                 calibration=splits.x_train[: args.calibration_size])
            int8.set_threads(args.threads)
            int8.save(staging / "int8", metadata=metadata)
            size = files_size(staging / "int8")
            complete_stage(staging / "int8", files)
            kept = int8.info["layers"].get("fp32") or []
            stages.append(StageResult(
                "int8", accuracy(int8, x_test, y_test), size, params=params(current),
                note=f"{int8.info['mode']} int8, ONNX Runtime"
                     + (f"; fp32: {', '.join(kept)}" if kept else "")))
            predictors["int8"] = int8
        batch = torch.as_tensor(x_test[:256])
        threads = torch.get_num_threads()
        torch.set_num_threads(args.threads)
        try:
            speeds = compare_speed(predictors, example, batch, rounds=args.speed_rounds,
                                   min_seconds=0.2 if args.speed_rounds > 1 else 0.02)
        finally:
            torch.set_num_threads(threads)
        for stage in stages:
            stage.latency_ms, stage.throughput = speeds[stage.name]
        tuned = (args.prune is not None or teacher is not None) and args.fine_tune_epochs > 0
        lr_note = f" Fine-tuning lr: {lr:g} ({lr_source})." if tuned else ""
        write_report(stages, staging, title=f"Compression of {run_dir.name}",
                     notes=f"Test set: {len(x_test)} {splits.unit}. Stages: "
                           f"{', '.join(s.name for s in stages)}.{lr_note}", unit=splits.unit)
    return {"out": out, "stages": stages, "unit": splits.unit,
            "fine_tune_lr": (lr, lr_source) if tuned else None}


__all__ = ["FULL_MODEL_LR", "CompressOptions", "check_options", "check_run", "compress_run",
           "load_splits", "fine_tune", "fine_tune_lr", "fine_tune_settings", "load_module"]
