"""``bigmodel train RECIPE.yaml [--set key=value ...] [--run-dir DIR]``.

Builds everything the recipe names, trains with the engine's ``Trainer`` and fills a run directory::

    recipe.yaml            the resolved recipe (every default written out)
    model.json             registry name + config (+ class names, input spec)
    model.safetensors      final weights
    checkpoints/ ...       the Trainer's own checkpoints (it is given the run directory)
    metrics.csv            one row per epoch (CSV logger)
    training_curves.png    loss/accuracy per epoch
    confusion_matrix.png   on the test set
    results.json           final numbers, machine-readable
    report.md              recipe summary, accuracies, parameter count, time

``train_recipe(recipe)`` does the same from Python and returns the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bigmodel.engine import run_lock
from bigmodel.recipes.inference import loss_and_accuracy, predict_logits
from bigmodel.recipes.splits import Splits, load_splits


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "train", parents=parents, help="train a model from a YAML recipe",
        description="Train a model from a YAML recipe and write a run directory (resolved recipe, "
                    "model files, checkpoints, metrics.csv, plots, report.md).")
    parser.add_argument("recipe", metavar="RECIPE.yaml", help="recipe file (see configs/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe value, e.g. --set train.epochs=3 (repeatable; values "
                             "are YAML)")
    parser.add_argument("--run-dir", metavar="DIR", default=None,
                        help="write the run here (must be new or empty) instead of "
                             "<output.root>/<output.name or recipe-timestamp>")
    parser.add_argument("--resume", metavar="RUN_DIR", default=None,
                        help="continue the run in RUN_DIR from its newest valid checkpoint (within an "
                             "epoch when train.checkpoint_every wrote one); the recipe must be the "
                             "run's, except train.epochs, train.checkpoint_every, "
                             "train.keep_checkpoints, train.device and output")
    parser.add_argument("--nproc", type=int, default=0, metavar="N",
                        help="start N processes with torchrun (train.strategy ddp/fsdp/hybrid)")
    parser.add_argument("--max-restarts", type=int, default=0, metavar="M",
                        help="with --nproc: restart all workers up to M times when one fails; they "
                             "resume from the newest complete checkpoint")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bigmodel.cli import launch
    from bigmodel.errors import ConfigError, Preempted
    from bigmodel.recipes.schema import load_recipe

    resume = getattr(args, "resume", None)
    if resume is not None and (args.run_dir is not None or args.nproc):
        raise ConfigError(f"--resume {resume} cannot be combined with --run-dir or --nproc (a "
                          "torchrun job resumes its own run dir with --max-restarts)")
    if args.nproc:
        return launch.launch(args)
    recipe = load_recipe(args.recipe, args.overrides)
    try:
        result = train_recipe(recipe, run_dir=resume if resume is not None else args.run_dir,
                              default_name=Path(args.recipe).stem, resume=resume is not None)
    except Preempted as stop:
        import shlex
        import signal

        run_dir = Path(stop.checkpoint).parent.parent if stop.checkpoint else resume
        command = ["bigmodel", "train", args.recipe,
                   *[part for text in args.overrides for part in ("--set", text)],
                   "--resume", str(run_dir)]
        print(f"{signal.Signals(stop.signal_number).name}: training stopped, checkpoint "
              f"{stop.checkpoint}\nresume with: {shlex.join(command)}", file=sys.stderr)
        return stop.exit_code
    if launch.rank() != 0:
        return 0  # rank 0 reports
    print(f"run directory: {result.run_dir}")
    print(f"test accuracy: {result.test_accuracy:.4f} (test loss {result.test_loss:.4f}, "
          f"{result.num_test} {result.unit})")
    return 0


# -- pieces built from the recipe -----------------------------------------------------------------


def build_augmentation(specs):
    """``nn.Sequential`` of ``bigmodel.nn.augment`` modules (identity in eval mode), or None."""
    if not specs:
        return None
    from torch import nn

    from bigmodel.errors import ConfigError

    try:
        from bigmodel.nn import augment
    except ImportError as exc:
        raise ConfigError(f"data.augment needs bigmodel.nn.augment, which cannot be imported: "
                          f"{exc}") from None
    modules = []
    for index, spec in enumerate(specs):
        cls = getattr(augment, spec.name, None)
        if cls is None:
            raise ConfigError(f"data.augment.{index}.name: bigmodel.nn.augment has no {spec.name!r}")
        try:
            modules.append(cls(**spec.args))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"data.augment.{index}: {spec.name}({spec.args}) failed: {exc}") from None
    return nn.Sequential(*modules)


def _augmented(model, augmentation):
    from torch import nn

    class Augmented(nn.Module):
        """Applies batch augmentation (training mode only) before the model: ``(B, C, H, W)``."""

        def __init__(self) -> None:
            super().__init__()
            self.augment = augmentation
            self.model = model

        def forward(self, x):
            return self.model(self.augment(x))

    return Augmented()


def kernel_l2_penalty(model, l2: float):
    """``extra_loss`` for the Trainer: ``l2 * sum(w**2)`` over conv/linear weights (Keras's ``l2``)."""
    import torch
    from torch import nn

    kernel_types = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)

    def penalty() -> torch.Tensor:
        # Collected per call: the Trainer may move or convert the model after this is built.
        kernels = [m.weight for m in model.modules() if isinstance(m, kernel_types)]
        return l2 * torch.stack([w.pow(2).sum() for w in kernels]).sum()

    return penalty


def build_optimizer(train, parameters):
    """A ``torch.optim`` optimizer with Keras's defaults (``epsilon=1e-7``, RMSprop ``rho=0.9``).

    ``weight_decay`` is torch's: added to the gradient for adam/sgd/rmsprop, decoupled for adamw.
    """
    import torch

    from bigmodel.engine.resolve import fused_kwargs

    parameters = list(parameters)
    name, lr, decay = train.optimizer, train.lr, train.weight_decay
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, eps=1e-7, weight_decay=decay,
                                **fused_kwargs(torch.optim.Adam, parameters))
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, eps=1e-7, weight_decay=decay,
                                 **fused_kwargs(torch.optim.AdamW, parameters))
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=train.momentum, weight_decay=decay,
                               **fused_kwargs(torch.optim.SGD, parameters))
    return torch.optim.RMSprop(parameters, lr=lr, alpha=0.9, eps=1e-7, momentum=train.momentum,
                               weight_decay=decay)


# -- the run directory ------------------------------------------------------------------------------


def _explicit_run_dir(recipe, run_dir: str | None) -> Path | None:
    """The run directory named by ``--run-dir`` or ``output.name``, checked to be new or empty.

    Raises:
        ConfigError: it exists and is not an empty directory.
    """
    from bigmodel.errors import ConfigError

    if run_dir is None and recipe.output.name is None:
        return None
    path = Path(run_dir) if run_dir is not None else Path(recipe.output.root) / recipe.output.name
    if path.exists() and (not path.is_dir() or any(not run_lock.is_lock_file(entry)
                                                   for entry in path.iterdir())):
        raise ConfigError(f"Run directory {path} already exists and is not empty; choose another "
                          "(--run-dir / output.name) or remove it")
    return path


def make_run_dir(recipe, run_dir: str | None, default_name: str) -> Path:
    """Create the run directory: ``run_dir`` / ``output.name`` if given (new or empty), else a fresh
    ``<default_name>-<timestamp>`` under ``output.root``.

    Raises:
        ConfigError: an explicitly named directory exists and is not empty.
    """
    path = _explicit_run_dir(recipe, run_dir)
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        return path
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(recipe.output.root) / f"{default_name}-{stamp}"
    path, suffix = base, 1
    while True:
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            path = base.with_name(f"{base.name}-{suffix}")
            suffix += 1


@contextlib.contextmanager
def claimed_run_dir(recipe, run_dir: str | None, default_name: str,
                    workers: bool = False) -> Iterator[Path]:
    """Create the run directory (as :func:`make_run_dir`) and hold its lock for the block
    (:mod:`bigmodel.engine.run_lock`), before anything is loaded or written: two runs started
    together on one directory cannot both pass the emptiness check. The check is made again
    under the lock. A directory left empty (an error before anything was written) is removed.
    Torchrun workers share the directory (:func:`bigmodel.cli.launch.worker_run_dir`); rank 0
    holds the lock for them.

    Raises:
        ConfigError: the directory is not empty, or another process holds it (names its pid).
    """
    from bigmodel.cli import launch

    if workers:
        path = launch.worker_run_dir(recipe, run_dir, default_name)
        with run_lock.hold(path, enabled=launch.rank() == 0):
            yield path
        return
    path = make_run_dir(recipe, run_dir, default_name)
    try:
        with run_lock.hold(path):
            if run_dir is not None or recipe.output.name is not None:
                _explicit_run_dir(recipe, str(path))  # again, now that no one else can write
            yield path
    finally:
        _remove_if_empty(path)


# Recipe keys a resumed run may change: how long, how often it checkpoints, where it runs.
RESUMABLE_CHANGES = ("description", "output.", "train.epochs", "train.checkpoint_every",
                     "train.keep_checkpoints", "train.device")


def _flatten(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        flat = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat or {prefix[:-1]: {}}
    return {prefix[:-1]: tree}


def check_resumable(recipe, run_dir: str | None) -> Path:
    """Check that ``run_dir`` is a run of ``recipe`` that can be continued; returns its path.

    Raises:
        ConfigError: no such run directory, no ``recipe.yaml`` or checkpoint in it, or a recipe
            that differs from the run's in a key that matters (names each key and both values).
    """
    from bigmodel.errors import ConfigError
    from bigmodel.recipes.schema import read_recipe_yaml, validate_recipe

    path = Path(run_dir) if run_dir is not None else None
    if path is None or not path.is_dir():
        raise ConfigError(f"--resume: {run_dir} is not a run directory")
    if not (path / "recipe.yaml").is_file() or not (path / "checkpoints").is_dir():
        raise ConfigError(f"--resume: {path} holds no recipe.yaml or no checkpoints/; nothing to resume "
                          "(start a new run with --run-dir)")
    saved = _flatten(validate_recipe(read_recipe_yaml(path / "recipe.yaml"),
                                     str(path / "recipe.yaml")).model_dump(mode="json"))
    wanted = _flatten(recipe.model_dump(mode="json"))
    differences = [f"{key}: the run has {saved.get(key)!r}, this recipe {wanted.get(key)!r}"
                   for key in sorted(set(saved) | set(wanted))
                   if saved.get(key) != wanted.get(key)
                   and not any(key == allowed or (allowed.endswith(".") and key.startswith(allowed))
                               for allowed in RESUMABLE_CHANGES)]
    if differences:
        raise ConfigError(f"--resume: the recipe differs from {path / 'recipe.yaml'} in "
                          f"{'; '.join(differences)}. Only {', '.join(RESUMABLE_CHANGES)} may change "
                          "when a run is resumed")
    return path


@dataclass
class TrainResult:
    run_dir: Path
    test_loss: float
    test_accuracy: float
    num_test: int
    results: dict[str, dict[str, float | None]] = field(default_factory=dict)
    parameters: int = 0
    seconds: float = 0.0
    epochs_run: int = 0
    unit: str = "images"


def _remove_if_empty(path: Path) -> None:
    """Remove a run directory this command created if nothing was written into it yet."""
    with contextlib.suppress(OSError):
        path.rmdir()


def train_recipe(recipe, run_dir: str | None = None, default_name: str = "run",
                 verbose: int = 1, resume: bool = False) -> TrainResult:
    """Train what ``recipe`` describes and write the run directory (see the module doc).

    The run directory is created and locked first (:func:`claimed_run_dir`); data, model and
    trainer are all built before anything is written into it, so an error in the recipe leaves no
    run directory behind. With ``resume``, ``run_dir`` is an existing run of the same recipe
    (:func:`check_resumable`), continued from its newest valid checkpoint.

    Raises:
        ConfigError / DataFileError / TrainingError / ...: any :class:`BigModelError`;
        :class:`~bigmodel.errors.Preempted` when SIGTERM/SIGINT stopped the training.
    """
    import torch

    from bigmodel.cli import launch

    started = time.perf_counter()
    train = recipe.train
    workers = launch.under_torchrun()  # one of several processes: a shared, resumable run dir
    if workers:
        from bigmodel.engine.distributed import check_strategy

        check_strategy(train.strategy, train.precision, torch.device("cpu") if train.device == "cpu"
                       else torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    if resume and not workers:
        path = check_resumable(recipe, run_dir)
        with run_lock.hold(path):
            return _train_in(recipe, path, workers, verbose, started, resume=True)
    with claimed_run_dir(recipe, run_dir, default_name, workers) as path:
        return _train_in(recipe, path, workers, verbose, started)


def _train_in(recipe, path: Path, workers: bool, verbose: int, started: float,
              resume: bool = False) -> TrainResult:
    """:func:`train_recipe` in the claimed run directory ``path``."""
    import numpy as np
    import torch
    from torch import nn

    from bigmodel.engine.callbacks import CSVLogger, EarlyStopping
    from bigmodel.engine.trainer import Trainer
    from bigmodel.models import create_model, model_defaults, save_model
    from bigmodel.recipes.schema import save_recipe
    from bigmodel.recipes.text_data import TEXT_DATA, check_text_model

    train = recipe.train
    if recipe.data.name in TEXT_DATA:
        check_text_model(recipe.model.name, recipe.data.name)
    if train.seed is not None:
        torch.manual_seed(train.seed)
        np.random.seed(train.seed)
    splits = load_splits(recipe.data, seed=train.seed)
    channels, height, width = splits.image_shape
    # Shape facts the data fixes, unless the recipe overrides them.
    derived = splits.model_overrides or {
        "in_channels": channels, "num_classes": splits.num_classes,
        "image_size": height if height == width else [height, width]}
    accepted = model_defaults(recipe.model.name)
    overrides = {k: v for k, v in derived.items() if k in accepted}
    overrides.update(recipe.model.overrides)
    model = create_model(recipe.model.name, **overrides)
    if splits.word_vectors is not None:  # data.skipgram: vectors trained for this vocabulary
        from bigmodel.transfer.word_vectors import copy_embeddings

        model.embeddings_source = copy_embeddings(model.embedding, splits.word_vectors,
                                                  recipe.model.name)
    augmentation = build_augmentation(recipe.data.augment)
    trained = _augmented(model, augmentation) if augmentation is not None else model

    trainer = Trainer(
        trained, loss=nn.CrossEntropyLoss(), lr=train.lr, metrics=["accuracy"],
        optimizer=build_optimizer(train, trained.parameters()), device=train.device,
        precision=train.precision, grad_clip_norm=train.grad_clip_norm, run_dir=str(path),
        seed=train.seed, verbose=verbose, channels_last=train.channels_last,
        scheduler=train.scheduler.engine_spec() if train.scheduler is not None else None,
        extra_loss=kernel_l2_penalty(model, train.l2) if train.l2 > 0 else None,
        strategy=train.strategy, activation_checkpointing=train.activation_checkpointing,
        compile=train.compile, grad_accum_steps=train.grad_accum_steps,
        checkpoint_every=train.checkpoint_every, keep_checkpoints=train.keep_checkpoints)
    main_process = trainer._dist is None or trainer._dist.is_main
    if main_process:
        save_recipe(recipe, path / "recipe.yaml")
    callbacks = []
    stopper = None
    if train.early_stopping is not None:
        spec = train.early_stopping
        stopper = EarlyStopping(monitor=spec.monitor, patience=spec.patience,
                                min_delta=spec.min_delta, verbose=min(verbose, 1),
                                restore_best_weights=spec.restore_best_weights)
        callbacks.append(stopper)
    if main_process:  # every process sees the same (averaged) logs; one writes them
        callbacks.append(CSVLogger(path / "metrics.csv", append=workers or resume))
    validation = (splits.x_val, splits.y_val) if splits.x_val is not None else None
    fit_started = time.perf_counter()
    try:
        history = trainer.fit((splits.x_train, splits.y_train), validation, epochs=train.epochs,
                              batch_size=train.batch_size, shuffle=True, callbacks=callbacks,
                              resume=workers or resume)
    except BaseException:
        print(f"note: the incomplete run is left in {path}", file=sys.stderr)
        raise
    fit_seconds = time.perf_counter() - fit_started
    if trainer._dist is not None:  # gather the (possibly sharded) weights; rank 0 measures alone
        from bigmodel.engine.dist_checkpoint import full_state_dict

        state = full_state_dict(trained)
        trainer.close()
        if not main_process:
            return TrainResult(path, math.nan, math.nan, len(splits.x_test))
        model = create_model(recipe.model.name, **overrides)
        plain = _augmented(model, build_augmentation(recipe.data.augment)) if augmentation else model
        plain.load_state_dict(state)
        model.to(trainer.device)

    model.eval()
    save_model(model, path, metadata={
        "class_names": list(splits.class_names), "data": recipe.data.name,
        "input": splits.input_spec or {"channels": channels, "height": height, "width": width,
                                       "scale": 1.0 / 255.0}})
    for name, write in (splits.artifacts or {}).items():
        write(path / name)
    return _write_results(recipe, path, model, splits, history, stopper, trainer.device,
                          time.perf_counter() - started, fit_seconds)


def _write_results(recipe, path: Path, model, splits: Splits, history, stopper, device,
                   seconds: float, fit_seconds: float) -> TrainResult:
    """Measure the trained model; write results.json, the plots and report.md."""
    import numpy as np
    import torch

    from bigmodel.engine.report import format_duration, write_report, write_run_plots
    from bigmodel.recipes.schema import dump_recipe
    from bigmodel.utils.io import atomic_write_json

    train = recipe.train
    logs = {key: values[-1] for key, values in history.history.items() if values}
    epochs_run = len(history.epoch)
    results: dict[str, dict[str, float | None]] = {
        "train (last epoch, running average)": {"loss": logs.get("loss"),
                                                "accuracy": logs.get("accuracy")}}
    if splits.x_val is not None:
        val_loss, val_accuracy = loss_and_accuracy(predict_logits(model, splits.x_val), splits.y_val)
        results["validation"] = {"loss": val_loss, "accuracy": val_accuracy}
    test_logits = predict_logits(model, splits.x_test)
    test_loss, test_accuracy = loss_and_accuracy(test_logits, splits.y_test)
    results["test"] = {"loss": test_loss, "accuracy": test_accuracy}

    predictions = test_logits.argmax(dim=1).numpy() if len(test_logits) else np.zeros(0, np.int64)
    matrix, images = write_run_plots(path, splits.y_test, predictions, splits.class_names,
                                     f"{recipe.model.name} on {recipe.data.name} test",
                                     f"{recipe.model.name} on {recipe.data.name}")

    num_parameters = sum(p.numel() for p in model.parameters())
    num_val = 0 if splits.x_val is None else len(splits.x_val)
    summary = {
        "model": f"{recipe.model.name} ({num_parameters:,} parameters)",
        "data": f"{recipe.data.name}: {len(splits.x_train):,} train / {num_val:,} validation / "
                f"{len(splits.x_test):,} test {splits.unit}",
        "augmentation": ", ".join(spec.name for spec in recipe.data.augment) or "none",
        "optimizer": f"{train.optimizer}, lr {train.lr:g}, batch {train.batch_size}"
                     + (f", weight decay {train.weight_decay:g}" if train.weight_decay else "")
                     + (f", L2 {train.l2:g}" if train.l2 else ""),
        "epochs": f"{epochs_run} of {train.epochs}"
                  + (" (stopped early)" if epochs_run < train.epochs else ""),
        "time": f"{format_duration(seconds)} in all, {format_duration(fit_seconds)} training "
                f"({format_duration(fit_seconds / max(epochs_run, 1))} per epoch)",
        "device": f"{device}, precision {train.precision}, {torch.get_num_threads()} CPU threads",
        "seed": str(train.seed),
    }
    notes = []
    if train.l2 > 0:
        notes.append("Validation and test losses are the cross-entropy alone; the training loss "
                     "(and the losses in metrics.csv) include the L2 penalty, as Keras reports them.")
    if stopper is not None and stopper.best is not None:
        restored = train.early_stopping.restore_best_weights
        notes.append(f"Early stopping on '{stopper.monitor}': best epoch {stopper.best_epoch + 1} "
                     f"({stopper.monitor} {stopper.best:.4f})" + (
                         "; its weights were restored, so the validation and test numbers are "
                         "for that epoch." if restored else "; the final weights are the last "
                         "epoch's."))
    title = f"Run {path.name}" + (f": {recipe.description}" if recipe.description else "")
    atomic_write_json(path / "results.json", {
        "results": results, "parameters": num_parameters, "epochs_run": epochs_run,
        "seconds": round(seconds, 3), "model": recipe.model.name, "data": recipe.data.name})
    write_report(path / "report.md", title, summary, results, matrix, splits.class_names, images,
                 dump_recipe(recipe), notes)
    return TrainResult(path, test_loss, test_accuracy, len(splits.x_test), results, num_parameters,
                       seconds, epochs_run, splits.unit)
