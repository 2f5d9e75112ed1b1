"""``bigmodel finetune RUN_DIR_OR_PRETRAINED RECIPE.yaml [--set key=value ...] [--run-dir DIR]``.

Starts from a trained run directory (``model.json`` + ``model.safetensors``) or a pretrained model
(``all-MiniLM-L6-v2``, or a Hugging Face BERT directory), adapts it to the recipe's data as the
``finetune`` section says (new head, frozen parts, discriminative learning rates, gradual
unfreezing, LoRA; see :mod:`bigmodel.recipes.finetune_schema`) and writes a run directory::

    recipe.yaml, model.json + model.safetensors (the fine-tuned model, LoRA merged in),
    adapter/ (LoRA only: adapter.json + adapter.safetensors, the adapters and head alone),
    tokenizer.json (text), checkpoints/, metrics.csv, training_curves.png, confusion_matrix.png,
    results.json, report.md

Image data: ``fashion_mnist`` / ``mnist`` (``data.classes`` / ``data.per_class`` pick a subset).
Text data: ``fortunes``, tokenized with the model's own tokenizer (pretrained models).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bigmodel.recipes.splits import Splits


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "finetune", parents=parents, help="fine-tune a trained run or a pretrained model",
        description="Fine-tune a run directory or a pretrained model (e.g. all-MiniLM-L6-v2) on a "
                    "recipe's data, with freezing, new heads, per-group learning rates, gradual "
                    "unfreezing or LoRA as the recipe's 'finetune' section says.")
    parser.add_argument("source", metavar="RUN_DIR_OR_PRETRAINED",
                        help="a run directory written by bigmodel, or a pretrained model name "
                             "(all-MiniLM-L6-v2) or directory")
    parser.add_argument("recipe", metavar="RECIPE.yaml", help="fine-tuning recipe (configs/finetune_*)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe value, e.g. --set finetune.lora.rank=4")
    parser.add_argument("--run-dir", metavar="DIR", default=None,
                        help="write the run here (must be new or empty)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bigmodel.recipes.finetune_schema import load_finetune_recipe

    recipe = load_finetune_recipe(args.recipe, args.overrides)
    result = finetune(args.source, recipe, run_dir=args.run_dir, default_name=Path(args.recipe).stem)
    print(f"run directory: {result.run_dir}")
    print(f"trainable parameters: {result.trainable:,} of {result.total:,} "
          f"({100 * result.trainable / max(result.total, 1):.2f}%)")
    print(f"test accuracy: {result.test_accuracy:.4f} (test loss {result.test_loss:.4f}, "
          f"{result.num_test} examples)")
    return 0


# -- the model to start from ---------------------------------------------------------------------


def load_source(source: str, num_classes: int, max_length: int | None = None):
    """``(model, tokenizer or None, description)`` for a run directory or a pretrained name.

    Raises:
        CheckpointError / UnknownNameError: neither a readable run directory nor a known name.
    """
    from bigmodel.errors import UnknownNameError

    path = Path(source)
    if (path / "model.json").is_file():
        from bigmodel.models import load_model

        model = load_model(path)
        tokenizer = None
        if (path / "tokenizer.json").is_file():
            from bigmodel.transfer.pretrained import WordPieceTokenizer
            from bigmodel.utils.loading import confined_path

            tokenizer = WordPieceTokenizer(confined_path(path, "tokenizer.json", "Tokenizer file"))
        return model, tokenizer, f"run directory {path}"
    from bigmodel.transfer import pretrained

    try:
        model = pretrained.load(source, num_classes=num_classes, max_length=max_length)
    except UnknownNameError:
        raise UnknownNameError(f"finetune: {source!r} is neither a run directory (no model.json "
                               f"there) nor a pretrained model ({', '.join(pretrained.available())})"
                               ) from None
    return model, model.tokenizer, f"pretrained {source}"


# -- data ----------------------------------------------------------------------------------------


def _pick_per_class(labels, per_class: int | None, seed: int):
    """Indices of at most ``per_class`` examples of each class (seeded), in a shuffled order."""
    import numpy as np

    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        chosen.append(rng.permutation(where)[: per_class] if per_class else where)
    return rng.permutation(np.concatenate(chosen))


def _hold_out(x, y, fraction: float):
    if fraction <= 0:
        return x, y, None, None
    from bigmodel.errors import DataError

    split = int(len(x) * (1.0 - fraction))
    if split == 0 or split == len(x):
        raise DataError(f"data.validation_split={fraction} of {len(x)} training examples leaves an "
                        "empty training or validation set")
    return x[:split], y[:split], x[split:], y[split:]


def prepare_data(data, tokenizer=None, seed: int = 0) -> Splits:
    """Train / validation / test arrays for the recipe's ``data`` section (``unit`` "texts": token
    ids; "images": float32 NCHW images in [0, 1]).

    Raises:
        ConfigError: text data without a tokenizer. DataFileError / DataError: data problems.
    """
    import numpy as np

    from bigmodel.errors import ConfigError

    if data.name == "fortunes":
        if tokenizer is None:
            raise ConfigError("finetune: text data (data.name 'fortunes') needs a model with a "
                              "tokenizer: a pretrained model such as all-MiniLM-L6-v2, or a run "
                              "directory holding tokenizer.json")
        from bigmodel.data.fortunes import DEFAULT_CATEGORIES, load_fortunes

        split = load_fortunes(data.categories or DEFAULT_CATEGORIES, path=data.path, seed=seed)
        order = _pick_per_class(split.train_labels, data.per_class, seed)
        length = data.max_length or 128
        train_ids = tokenizer.encode_batch([split.train_texts[i] for i in order], length)
        test_ids = tokenizer.encode_batch(split.test_texts, length)
        if data.test_subset is not None:
            test_ids, test_labels = test_ids[: data.test_subset], split.test_labels[: data.test_subset]
        else:
            test_labels = split.test_labels
        x, y, xv, yv = _hold_out(train_ids, split.train_labels[order], data.validation_split)
        return Splits(x, y, xv, yv, test_ids, test_labels, split.class_names, (0, 0, 0),
                      unit="texts", input_spec={"tokenizer": "tokenizer.json", "max_length": length})
    from bigmodel.recipes.splits import load_splits

    splits = load_splits(data.model_copy(update={"validation_split": 0.0}), seed=seed)
    x, y, x_test, y_test = splits.x_train, splits.y_train, splits.x_test, splits.y_test
    names = splits.class_names
    if data.classes is not None:
        remap = np.full(len(names), -1, dtype=np.int64)
        remap[list(data.classes)] = np.arange(len(data.classes))
        keep, keep_test = remap[y] >= 0, remap[y_test] >= 0
        x, y, x_test, y_test = x[keep], remap[y[keep]], x_test[keep_test], remap[y_test[keep_test]]
        names = tuple(names[c] for c in data.classes)
    order = _pick_per_class(y, data.per_class, seed)
    x, y, xv, yv = _hold_out(x[order], y[order], data.validation_split)
    channels, height, width = splits.image_shape
    return Splits(x, y, xv, yv, x_test, y_test, names, splits.image_shape,
                  input_spec={"channels": channels, "height": height, "width": width,
                              "scale": 1.0 / 255.0})


def trim_padding(batch):
    """Collate ``(ids, label)`` pairs; drop the columns that are padding (id 0) in every row."""
    import torch

    ids = torch.stack([item[0] for item in batch])
    labels = torch.stack([item[1] for item in batch])
    width = max(int((ids != 0).sum(dim=1).max()), 1)
    return ids[:, :width], labels


def _train_data(data: Splits, x, y, batch_size: int, shuffle: bool, seed: int | None):
    """Arrays for images; a DataLoader that trims padding for token ids."""
    if data.unit != "texts":
        return (x, y)
    import torch

    dataset = torch.utils.data.TensorDataset(torch.as_tensor(x), torch.as_tensor(y))
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=trim_padding,
        generator=torch.Generator().manual_seed(seed or 0) if shuffle else None)


def predict(model, data: Splits, x, batch_size: int = 128):
    """Logits ``(N, K)`` on CPU, eval mode (token ids: padding-only columns trimmed per batch)."""
    import torch

    from bigmodel.recipes.inference import predict_logits

    if len(x) == 0:
        return torch.empty(0, data.num_classes)
    prepare = None
    if data.unit == "texts":
        def prepare(batch):
            return trim_padding([(row, row[0]) for row in batch])[0]
    return predict_logits(model, x, batch_size, prepare=prepare)


# -- the adaptation --------------------------------------------------------------------------------


def configure(model, section, train, data_classes: int, new_head_default: bool, labels=None):
    """Apply the ``finetune`` section to ``model``; return ``(optimizer parameters, callbacks)``.

    Raises:
        ShapeError: ``head: keep`` and the head does not fit the data's classes.
        ConfigError: a pattern / target matching nothing, an unsupported LoRA layer.
    """
    from bigmodel import transfer

    if section.head == "new" or (section.head == "auto" and (
            new_head_default or transfer.head_size(model) != data_classes)):
        transfer.replace_head(model, data_classes)
    transfer.check_head(model, labels if labels is not None else [data_classes - 1],
                        "training labels")
    if section.freeze:
        transfer.freeze(model, section.freeze, norm_eval=section.norm_eval)
    callbacks = []
    if section.lora is not None:
        from bigmodel.transfer.heads import _last_linear
        from bigmodel.transfer.lora import add_lora

        head = model.get_classifier() if callable(getattr(model, "get_classifier", None)) else None
        head_name = next((n for n, m in model.named_modules() if m is head), None) or \
            (_last_linear(model) or ("",))[0]
        spec = section.lora
        add_lora(model, spec.target, rank=spec.rank, alpha=spec.alpha, dropout=spec.dropout,
                 trainable=[head_name] if head_name else ())
    gradual = section.gradual_unfreezing
    include_frozen = gradual is not None
    if gradual is not None:
        callbacks.append(transfer.GradualUnfreezing(model, blocks=gradual.blocks,
                                                    every=gradual.every, initial=gradual.initial))
    if section.layer_decay is not None:
        params = transfer.layerwise_lr(model, train.lr, section.layer_decay,
                                       include_frozen=include_frozen)
    elif section.lr_groups:
        params = transfer.param_groups(model, [(g.pattern, g.lr) for g in section.lr_groups],
                                       default_lr=train.lr, include_frozen=include_frozen)
    else:
        params = [p for p in model.parameters() if include_frozen or p.requires_grad]
    if not params:
        from bigmodel.errors import ConfigError

        raise ConfigError("finetune: nothing is left to train (every parameter is frozen)")
    return params, callbacks


@dataclass
class FinetuneResult:
    run_dir: Path
    test_loss: float
    test_accuracy: float
    num_test: int
    trainable: int
    total: int
    seconds: float
    results: dict[str, dict[str, float | None]] = field(default_factory=dict)


def finetune(source: str, recipe, run_dir: str | None = None, default_name: str = "finetune",
             verbose: int = 1) -> FinetuneResult:
    """Fine-tune ``source`` as ``recipe`` (a :class:`FinetuneRecipe`) says; write the run directory.

    The run directory is created and locked first (:func:`bigmodel.cli.train.claimed_run_dir`);
    everything is loaded and configured before anything is written into it, so a bad recipe or
    source leaves nothing on disk.
    """
    from bigmodel.cli.train import claimed_run_dir

    started = time.perf_counter()
    train = recipe.train
    if train.strategy != "single" or train.activation_checkpointing or train.compile \
            or train.channels_last or train.l2 or recipe.data.augment:
        from bigmodel.errors import ConfigError

        raise ConfigError("finetune runs in one process without train.strategy, "
                          "train.activation_checkpointing, train.compile, train.channels_last, "
                          "train.l2 or data.augment (use bigmodel train for those); received "
                          f"strategy={train.strategy!r}")
    with claimed_run_dir(recipe, run_dir, default_name) as path:
        return _finetune_in(source, recipe, path, verbose, started)


def _finetune_in(source: str, recipe, path: Path, verbose: int, started: float) -> FinetuneResult:
    """:func:`finetune` in the claimed run directory ``path``."""
    import numpy as np
    import torch
    from torch import nn

    from bigmodel import transfer
    from bigmodel.cli.train import build_optimizer
    from bigmodel.engine.callbacks import CSVLogger, EarlyStopping
    from bigmodel.engine.report import format_duration, write_report, write_run_plots
    from bigmodel.engine.trainer import Trainer
    from bigmodel.models import save_model
    from bigmodel.recipes.schema import dump_recipe, save_recipe
    from bigmodel.utils.io import atomic_write_json

    train, section = recipe.train, recipe.finetune
    if train.seed is not None:
        torch.manual_seed(train.seed)
        np.random.seed(train.seed)
    is_dir = (Path(source) / "model.json").is_file()
    if not is_dir:
        from bigmodel.errors import UnknownNameError
        from bigmodel.transfer import pretrained

        try:
            pretrained.model_dir(source)
        except UnknownNameError:
            raise UnknownNameError(
                f"finetune: {source!r} is neither a run directory (no model.json there) nor a "
                f"pretrained model ({', '.join(pretrained.available())})") from None
    tokenizer = None
    if is_dir and (Path(source) / "tokenizer.json").is_file():
        from bigmodel.transfer.pretrained import WordPieceTokenizer

        tokenizer = WordPieceTokenizer(Path(source) / "tokenizer.json")
    elif not is_dir and recipe.data.name == "fortunes":
        from bigmodel.transfer.pretrained import load_tokenizer

        tokenizer = load_tokenizer(source)
    seed = 0 if train.seed is None else train.seed
    data_section = recipe.data
    if is_dir and tokenizer is not None and data_section.name == "fortunes":
        from bigmodel.models import read_model_spec

        limit = read_model_spec(source)["config"].get("max_length")
        if data_section.max_length is None and limit:
            data_section = data_section.model_copy(update={"max_length": int(limit)})
        elif limit and data_section.max_length > limit:
            from bigmodel.errors import ConfigError

            raise ConfigError(f"data.max_length={data_section.max_length} is longer than the "
                              f"model's max_length={limit} ({source}/model.json)")
    data = prepare_data(data_section, tokenizer, seed)
    if not is_dir and data.unit != "texts":
        from bigmodel.errors import ConfigError

        raise ConfigError(f"finetune: pretrained {source!r} is a text encoder; data.name "
                          f"'{recipe.data.name}' is an image data set")
    model, tokenizer, origin = load_source(source, data.num_classes, data.input_spec.get("max_length"))
    params, callbacks = configure(model, section, train, data.num_classes, not is_dir,
                                  data.y_train)
    counts = transfer.summary(model)
    trainer = Trainer(model, loss=nn.CrossEntropyLoss(), metrics=["accuracy"],
                      optimizer=build_optimizer(train, params), device=train.device,
                      precision=train.precision, grad_clip_norm=train.grad_clip_norm,
                      run_dir=str(path), seed=train.seed, verbose=verbose,
                      scheduler=train.scheduler.engine_spec() if train.scheduler else None,
                      grad_accum_steps=train.grad_accum_steps)
    save_recipe(recipe, path / "recipe.yaml")
    stopper = None
    if train.early_stopping is not None:
        spec = train.early_stopping
        stopper = EarlyStopping(monitor=spec.monitor, patience=spec.patience,
                                min_delta=spec.min_delta, restore_best_weights=spec.restore_best_weights)
        callbacks.append(stopper)
    callbacks.append(CSVLogger(path / "metrics.csv"))
    validation = None
    if data.x_val is not None:
        validation = _train_data(data, data.x_val, data.y_val, train.batch_size, False, seed)
    fit_started = time.perf_counter()
    try:
        history = trainer.fit(_train_data(data, data.x_train, data.y_train, train.batch_size, True,
                                          seed), validation, epochs=train.epochs,
                              batch_size=train.batch_size, callbacks=callbacks)
    except BaseException:
        print(f"note: the incomplete run is left in {path}", file=sys.stderr)
        raise
    fit_seconds = time.perf_counter() - fit_started
    model.eval()
    if section.lora is not None:
        from bigmodel.transfer.lora import merge_lora, save_lora

        save_lora(model, path / "adapter", metadata={"source": str(source)})
        merge_lora(model)
    metadata = {"class_names": list(data.class_names), "data": recipe.data.name,
                "input": data.input_spec, "finetuned_from": str(source)}
    save_model(model, path, metadata=metadata)
    if tokenizer is not None:
        tokenizer.save(path / "tokenizer.json")

    from bigmodel.recipes.inference import loss_and_accuracy

    results: dict[str, dict[str, float | None]] = {"train (last epoch, running average)": {
        "loss": history.history.get("loss", [None])[-1],
        "accuracy": history.history.get("accuracy", [None])[-1]}}
    if data.x_val is not None:
        val_loss, val_acc = loss_and_accuracy(predict(model, data, data.x_val), data.y_val)
        results["validation"] = {"loss": val_loss, "accuracy": val_acc}
    logits = predict(model, data, data.x_test)
    test_loss, test_acc = loss_and_accuracy(logits, data.y_test)
    results["test"] = {"loss": test_loss, "accuracy": test_acc}
    matrix, images = write_run_plots(path, data.y_test, logits.argmax(1).numpy(), data.class_names,
                                     f"fine-tuned on {recipe.data.name} (test)",
                                     f"fine-tuning on {recipe.data.name}")
    seconds = time.perf_counter() - started
    epochs_run = len(history.epoch)
    atomic_write_json(path / "results.json", {
        "results": results, "trainable_parameters": counts.trainable,
        "parameters": counts.total, "epochs_run": epochs_run, "seconds": round(seconds, 3),
        "source": str(source), "data": recipe.data.name})
    how = ", ".join(part for part in (
        f"new head ({data.num_classes} classes)" if section.head != "keep" else "",
        f"frozen {section.freeze}" if section.freeze else "",
        f"layer decay {section.layer_decay}" if section.layer_decay else "",
        "per-group learning rates" if section.lr_groups else "",
        "gradual unfreezing" if section.gradual_unfreezing else "",
        f"LoRA rank {section.lora.rank} on {section.lora.target}" if section.lora else "") if part)
    summary = {
        "source": origin,
        "adaptation": how or "full fine-tuning",
        "parameters": f"{counts.trainable:,} trainable of {counts.total:,} "
                      f"({100 * counts.trainable_fraction:.2f}%) as configured",
        "data": f"{recipe.data.name}: {len(data.x_train):,} train / "
                f"{0 if data.x_val is None else len(data.x_val):,} validation / "
                f"{len(data.x_test):,} test examples, classes {', '.join(data.class_names)}",
        "optimizer": f"{train.optimizer}, lr {train.lr:g}, batch {train.batch_size}",
        "epochs": f"{epochs_run} of {train.epochs}",
        "time": f"{format_duration(seconds)} in all, {format_duration(fit_seconds)} training",
        "seed": str(train.seed)}
    write_report(path / "report.md", f"Fine-tuning run {path.name}", summary, results, matrix,
                 data.class_names, images, dump_recipe(recipe),
                 ["LoRA adapters (and the head) are saved alone in adapter/; model.safetensors "
                  "holds the merged model."] if section.lora else [])
    return FinetuneResult(path, test_loss, test_acc, len(data.x_test), counts.trainable,
                          counts.total, seconds, results)
