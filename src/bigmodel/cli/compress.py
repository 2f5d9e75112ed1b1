"""``bigmodel compress RUN_DIR [--prune P] [--quantize int8] [--distill-from TEACHER_RUN]``.

Steps run in this order, each on the previous one's result:

1. pruning (``--prune P``): structured (default) removes channels until ``P`` of the multiply-adds
   are gone; ``--prune-mode unstructured`` zeroes ``P`` of the weights by magnitude. Then
   ``--fine-tune-epochs`` of training (masks kept) recover the accuracy.
2. distillation (``--distill-from``): the fine-tuning (or, without pruning, extra training) learns
   from the teacher's softened outputs as well as the labels.
3. int8 quantization (``--quantize int8``): last, so it quantizes the final weights (static with
   calibration images for CNNs, dynamic otherwise; run by ONNX Runtime).

Every stage is saved under ``--out`` (default ``RUN_DIR/compressed``) and compared with the
original in ``report.md`` + ``compression.png`` (accuracy against size and latency) +
``results.json``.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "compress", parents=parents, help="prune, distill and quantize a trained run",
        description="Prune (with fine-tuning), distill from a teacher run and quantize to int8 the "
                    "model of RUN_DIR; write every stage and a size/speed/accuracy report.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by 'bigmodel train'")
    parser.add_argument("--prune", type=float, default=None, metavar="P",
                        help="fraction in [0, 1): of the multiply-adds (structured) or of the "
                             "weights (unstructured) to remove")
    parser.add_argument("--prune-mode", choices=("structured", "unstructured"), default="structured")
    parser.add_argument("--channel-multiple", type=int, default=1, metavar="K",
                        help="structured pruning keeps a multiple of K channels per layer (8 "
                             "suits ONNX Runtime's and oneDNN's CPU kernels)")
    parser.add_argument("--quantize", choices=("int8",), default=None, help="quantize last")
    parser.add_argument("--distill-from", metavar="TEACHER_RUN", default=None,
                        help="run directory of a teacher model for the same classes")
    parser.add_argument("--fine-tune-epochs", type=int, default=1, metavar="N",
                        help="training epochs after pruning / for distillation (default 1)")
    parser.add_argument("--lr", type=float, default=None, help="fine-tuning learning rate "
                        "(default: the recipe's)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="fine-tuning batch size (default: the recipe's)")
    parser.add_argument("--temperature", type=float, default=2.0, help="distillation temperature")
    parser.add_argument("--alpha", type=float, default=0.5,
                        help="weight of the distillation term against the label loss")
    parser.add_argument("--calibration-size", type=int, default=512,
                        help="training images used to calibrate static int8 (default 512)")
    parser.add_argument("--data-path", default=None, help="directory of the data set's IDX files")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for the speed measurements, PyTorch and ONNX Runtime "
                             "alike (default 1: stable figures on a shared machine)")
    parser.add_argument("--speed-rounds", type=int, default=5, metavar="N",
                        help="interleaved timing rounds; the report keeps medians (default 5)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="where stages and report go (default RUN_DIR/compressed)")
    parser.set_defaults(func=run)


def _check_args(args) -> None:
    from bigmodel.compress.prune import check_sparsity
    from bigmodel.errors import ConfigError

    if args.prune is not None:
        check_sparsity(args.prune, "--prune")
        if args.prune == 0:
            raise ConfigError("--prune 0 removes nothing; give a fraction in (0, 1), e.g. --prune 0.5")
    if args.prune is None and args.quantize is None and args.distill_from is None:
        raise ConfigError("bigmodel compress: nothing to do; give --prune, --quantize and/or "
                          "--distill-from")
    for name, low in (("fine_tune_epochs", 0), ("calibration_size", 1), ("threads", 1),
                      ("speed_rounds", 1)):
        if getattr(args, name) < low:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least {low}; received "
                              f"{getattr(args, name)}")


def _load_module(path: Path, role: str):
    from torch import nn

    from bigmodel.compress.saving import load_compressed
    from bigmodel.errors import ConfigError

    if not path.is_dir():
        raise ConfigError(f"{role} run directory not found: {path}")
    model = load_compressed(path)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{role} {path} holds an int8 model, which cannot be trained further; "
                          "give the run directory of the fp32 model")
    return model


def _fine_tune(model, teacher, splits, epochs: int, lr: float, batch_size: int, args, seed) -> None:
    from torch import nn

    from bigmodel.compress.distill import Distiller
    from bigmodel.engine.trainer import Trainer

    if epochs == 0:
        return
    if teacher is not None:
        trained = Distiller(model, teacher, temperature=args.temperature, alpha=args.alpha)
        loss = trained.loss
    else:
        trained, loss = model, nn.CrossEntropyLoss()
    trainer = Trainer(trained, loss=loss, optimizer="adam", lr=lr, metrics=["accuracy"],
                      device="cpu", seed=seed, verbose=0)
    trainer.fit((splits.x_train, splits.y_train), epochs=epochs, batch_size=batch_size)
    model.eval()


def compress_run(args) -> dict:
    """Run the steps ``args`` asks for; returns ``{"out": Path, "stages": [StageResult, ...]}``."""
    import torch

    from bigmodel.compress import (
        StageResult,
        compare_speed,
        count_macs,
        magnitude_prune,
        quantize_int8,
        save_compressed,
        sparse_size_bytes,
        structured_prune,
        write_report,
    )
    from bigmodel.compress.report import accuracy, files_size
    from bigmodel.errors import ConfigError
    from bigmodel.models.registry import read_model_spec
    from bigmodel.recipes.classification_data import load_classification_data
    from bigmodel.recipes.schema import load_recipe
    from bigmodel.utils.loading import confined_path

    _check_args(args)
    run_dir = Path(args.run_dir)
    model = _load_module(run_dir, "RUN_DIR")
    teacher = _load_module(Path(args.distill_from), "--distill-from") if args.distill_from else None
    recipe = load_recipe(confined_path(
        run_dir, "recipe.yaml", "Run recipe", error=ConfigError, kind=None))
    data = recipe.data.model_copy(update={"path": args.data_path}) if args.data_path else recipe.data
    splits = load_classification_data(data, seed=recipe.train.seed, with_train=True)
    example = torch.as_tensor(splits.x_test[:1])
    if teacher is not None:
        with torch.no_grad():
            t_out, s_out = teacher.eval()(example), model(example)
        if t_out.shape != s_out.shape:
            raise ConfigError(f"--distill-from: the teacher outputs {tuple(t_out.shape[1:])} values "
                              f"per image and the student {tuple(s_out.shape[1:])}; they must "
                              "predict the same classes")
    out = Path(args.out) if args.out else run_dir / "compressed"
    metadata = (read_model_spec(run_dir).get("metadata") or {})
    lr = args.lr or recipe.train.lr
    batch_size = args.batch_size or recipe.train.batch_size
    x_test, y_test = splits.x_test, splits.y_test

    def params(m) -> int:
        return sum(p.numel() for p in m.parameters())

    stages = [StageResult("original", accuracy(model, x_test, y_test), files_size(run_dir),
                          params=params(model), macs=count_macs(model, example))]
    predictors = {"original": model}
    if teacher is not None:
        stages.append(StageResult("teacher", accuracy(teacher, x_test, y_test),
                                  files_size(Path(args.distill_from)), params=params(teacher),
                                  macs=count_macs(teacher, example), note="reference"))
        predictors["teacher"] = teacher
    current = copy.deepcopy(model)
    if args.prune is not None:
        structure, note = None, ""
        if args.prune_mode == "structured":
            result = structured_prune(current, example, flops_ratio=1.0 - args.prune,
                                      heads=True,
                                      channel_multiple=getattr(args, "channel_multiple", 1))
            structure = result.structure
            note = f"structured, {result.macs_ratio:.0%} of MACs kept"
            _fine_tune(current, teacher, splits, args.fine_tune_epochs, lr, batch_size, args,
                       recipe.train.seed)
        else:
            pruner = magnitude_prune(current, args.prune)
            _fine_tune(current, teacher, splits, args.fine_tune_epochs, lr, batch_size, args,
                       recipe.train.seed)
            pruner.detach()
            note = f"unstructured, {pruner.sparsity():.0%} zeros; size as sparse storage"
        if teacher is not None:
            note += ", distilled"
        stage_dir = out / "pruned"
        save_compressed(current, stage_dir, structure, metadata)
        size = files_size(stage_dir)
        if args.prune_mode == "unstructured":
            size = sparse_size_bytes(current) + (stage_dir / "model.json").stat().st_size
        stages.append(StageResult("pruned", accuracy(current, x_test, y_test), size,
                                  params=params(current), macs=count_macs(current, example),
                                  note=note + f" (+{args.fine_tune_epochs} epoch fine-tune)"))
        predictors["pruned"] = current
    elif teacher is not None:
        _fine_tune(current, teacher, splits, args.fine_tune_epochs, lr, batch_size, args,
                   recipe.train.seed)
        save_compressed(current, out / "distilled", None, metadata)
        stages.append(StageResult("distilled", accuracy(current, x_test, y_test),
                                  files_size(out / "distilled"), params=params(current),
                                  macs=count_macs(current, example),
                                  note=f"{args.fine_tune_epochs} epoch(s) with the teacher"))
        predictors["distilled"] = current
    if args.quantize == "int8":
        int8 = quantize_int8(current.eval(), example,
                             calibration=splits.x_train[: args.calibration_size])
        int8.set_threads(args.threads)
        int8.save(out / "int8", metadata=metadata)
        stages.append(StageResult("int8", accuracy(int8, x_test, y_test), files_size(out / "int8"),
                                  params=params(current), note=f"{int8.info['mode']} int8, ONNX Runtime"))
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
    write_report(stages, out, title=f"Compression of {run_dir.name}",
                 notes=f"Test set: {len(x_test)} images. Stages: {', '.join(s.name for s in stages)}.")
    return {"out": out, "stages": stages}


def run(args: argparse.Namespace) -> int:
    from bigmodel.compress.report import markdown_table

    result = compress_run(args)
    print(markdown_table(result["stages"]), end="")
    print(f"report: {result['out'] / 'report.md'}")
    return 0
