"""The ``finetune`` task: the run path with a trained run directory (``model.json`` +
``model.safetensors``) or a pretrained encoder (``all-MiniLM-L6-v2``, a Hugging Face BERT
directory) as the model source, adapted as the recipe's ``finetune`` section says (new head,
frozen parts, discriminative learning rates, gradual unfreezing, LoRA; see
:mod:`bigmodel.recipes.finetune_schema` and :mod:`bigmodel.recipes.adaptation`).

Image data: ``fashion_mnist`` / ``mnist`` (``data.classes`` / ``data.per_class`` pick a subset).
Text data: ``fortunes``, tokenized with the model's own tokenizer (``tokenizer.json`` of the run,
or the pretrained model's). Besides the run path's files it writes ``tokenizer.json`` (text) and
``adapter/`` (LoRA: the adapters and head alone; ``model.safetensors`` holds the merged model).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bigmodel.errors import ConfigError, UnknownNameError
from bigmodel.recipes.classification_data import ClassificationData
from bigmodel.recipes.tasks import Evaluation, FitInputs
from bigmodel.recipes.tasks.classification import data_row, evaluate_classifier


@dataclass
class FinetuneData:
    """The fine-tuning data and where the model comes from."""

    data: ClassificationData
    source: str
    is_run_dir: bool
    tokenizer: Any = None  # text: the model's tokenizer (WordPiece), saved as tokenizer.json


def load_source(source: str, num_classes: int, max_length: int | None = None):
    """``(model, tokenizer or None, description)`` for a run directory or a pretrained name.

    Raises:
        CheckpointError / UnknownNameError: neither a readable run directory nor a known name.
    """
    path = Path(source)
    if (path / "model.json").is_file():
        from bigmodel.models import load_model

        model = load_model(path)
        tokenizer = None
        if (path / "tokenizer.json").is_file():
            from bigmodel.data.wordpiece import WordPieceTokenizer
            from bigmodel.utils.loading import confined_path

            tokenizer = WordPieceTokenizer(confined_path(path, "tokenizer.json", "Tokenizer file"))
        return model, tokenizer, f"run directory {path}"
    from bigmodel.models import pretrained_files
    from bigmodel.transfer import pretrained

    try:
        model = pretrained.load(source, num_classes=num_classes, max_length=max_length)
    except UnknownNameError:
        raise UnknownNameError(f"finetune: {source!r} is neither a run directory (no model.json "
                               f"there) nor a pretrained model ({', '.join(pretrained_files.available())})"
                               ) from None
    return model, model.tokenizer, f"pretrained {source}"


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


def prepare_data(data, tokenizer=None, seed: int = 0) -> ClassificationData:
    """Train / validation / test arrays for a fine-tuning recipe's ``data`` section (``unit``
    "texts": token ids; "images": float32 NCHW images in [0, 1]).

    Raises:
        ConfigError: text data without a tokenizer. DataFileError / DataError: data problems.
    """
    import numpy as np

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
        return ClassificationData(
            x, y, xv, yv, test_ids, test_labels, split.class_names, (1, 1, length), unit="texts",
            input_spec={"tokenizer": "tokenizer.json", "max_length": length})
    from bigmodel.recipes.classification_data import load_classification_data

    loaded = load_classification_data(data.model_copy(update={"validation_split": 0.0}), seed=seed)
    x, y, x_test, y_test = loaded.x_train, loaded.y_train, loaded.x_test, loaded.y_test
    names = loaded.class_names
    if data.classes is not None:
        remap = np.full(len(names), -1, dtype=np.int64)
        remap[list(data.classes)] = np.arange(len(data.classes))
        keep, keep_test = remap[y] >= 0, remap[y_test] >= 0
        x, y, x_test, y_test = x[keep], remap[y[keep]], x_test[keep_test], remap[y_test[keep_test]]
        names = tuple(names[c] for c in data.classes)
    order = _pick_per_class(y, data.per_class, seed)
    x, y, xv, yv = _hold_out(x[order], y[order], data.validation_split)
    return ClassificationData(x, y, xv, yv, x_test, y_test, names, loaded.image_shape,
                              input_spec=loaded.input_spec)


def trim_padding(batch):
    """Collate ``(ids, label)`` pairs; drop the columns that are padding (id 0) in every row."""
    import torch

    ids = torch.stack([item[0] for item in batch])
    labels = torch.stack([item[1] for item in batch])
    width = max(int((ids != 0).sum(dim=1).max()), 1)
    return ids[:, :width], labels


def token_batches(x, y, batch_size: int, shuffle: bool, seed: int | None):
    """A DataLoader of ``(ids, labels)`` batches with padding-only columns trimmed."""
    import torch

    dataset = torch.utils.data.TensorDataset(torch.as_tensor(x), torch.as_tensor(y))
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=trim_padding,
        generator=torch.Generator().manual_seed(seed or 0) if shuffle else None)


def predict(model, data: ClassificationData, x, batch_size: int = 128):
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


class FinetuneTask:
    """Fine-tune ``source`` (a run directory or a pretrained name) on a fine-tuning recipe."""

    name = "finetune"

    def __init__(self, source: str) -> None:
        self.source = str(source)
        self.origin = ""
        self.parameters = None
        self.callbacks: list = []

    def prepare(self, recipe, seed: int | None) -> FinetuneData:
        """Check the recipe and the source; load the data (text: with the source's tokenizer).

        Raises:
            ConfigError: options fine-tuning does not support, a max_length past the model's,
                image data for a pretrained text encoder. UnknownNameError: an unknown source.
        """
        train, source = recipe.train, self.source
        if train.strategy != "single" or train.activation_checkpointing or train.compile \
                or train.channels_last or train.l2 or recipe.data.augment:
            raise ConfigError("finetune runs in one process without train.strategy, "
                              "train.activation_checkpointing, train.compile, train.channels_last, "
                              "train.l2 or data.augment (use bigmodel train for those); received "
                              f"strategy={train.strategy!r}")
        is_dir = (Path(source) / "model.json").is_file()
        if not is_dir:
            from bigmodel.models import pretrained_files

            try:
                pretrained_files.model_dir(source)
            except UnknownNameError:
                raise UnknownNameError(
                    f"finetune: {source!r} is neither a run directory (no model.json there) nor a "
                    f"pretrained model ({', '.join(pretrained_files.available())})") from None
        tokenizer = None
        if is_dir and (Path(source) / "tokenizer.json").is_file():
            from bigmodel.data.wordpiece import WordPieceTokenizer

            tokenizer = WordPieceTokenizer(Path(source) / "tokenizer.json")
        elif not is_dir and recipe.data.name == "fortunes":
            from bigmodel.models.pretrained_files import load_pretrained_tokenizer

            tokenizer = load_pretrained_tokenizer(source)
        data_section = recipe.data
        if is_dir and tokenizer is not None and data_section.name == "fortunes":
            from bigmodel.models import read_model_spec

            limit = read_model_spec(source)["config"].get("max_length")
            if data_section.max_length is None and limit:
                data_section = data_section.model_copy(update={"max_length": int(limit)})
            elif limit and data_section.max_length > limit:
                raise ConfigError(f"data.max_length={data_section.max_length} is longer than the "
                                  f"model's max_length={limit} ({source}/model.json)")
        data = prepare_data(data_section, tokenizer, 0 if seed is None else seed)
        if not is_dir and data.unit != "texts":
            raise ConfigError(f"finetune: pretrained {source!r} is a text encoder; data.name "
                              f"'{recipe.data.name}' is an image data set")
        return FinetuneData(data, source, is_dir, tokenizer)

    def build_model(self, recipe, data: FinetuneData) -> Any:
        """The source model, adapted as ``recipe.finetune`` says (its optimizer parameters and
        callbacks are kept for :meth:`fit_inputs`)."""
        from bigmodel.recipes.adaptation import configure

        classes = data.data
        model, tokenizer, self.origin = load_source(self.source, classes.num_classes,
                                                    classes.input_spec.get("max_length"))
        if data.tokenizer is None:
            data.tokenizer = tokenizer
        self.parameters, self.callbacks = configure(model, recipe.finetune, recipe.train,
                                                    classes.num_classes, not data.is_run_dir,
                                                    classes.y_train)
        return model

    def fit_inputs(self, recipe, data: FinetuneData, model) -> FitInputs:
        """Cross-entropy and accuracy; token ids in padding-trimmed batches."""
        from torch import nn

        classes, batch_size = data.data, recipe.train.batch_size
        seed = 0 if recipe.train.seed is None else recipe.train.seed
        train, validation = (classes.x_train, classes.y_train), None
        if classes.x_val is not None:
            validation = (classes.x_val, classes.y_val)
        if classes.unit == "texts":
            train = token_batches(*train, batch_size, True, seed)
            if validation is not None:
                validation = token_batches(*validation, batch_size, False, seed)
        return FitInputs(loss=nn.CrossEntropyLoss(), train=train, validation=validation,
                         metrics=["accuracy"], parameters=self.parameters,
                         callbacks=list(self.callbacks))

    def model_metadata(self, recipe, data: FinetuneData) -> dict[str, Any]:
        return {"class_names": list(data.data.class_names), "data": recipe.data.name,
                "input": data.data.input_spec, "finetuned_from": self.source}

    def finish(self, recipe, model, data: FinetuneData, run_dir: Path) -> Any:
        """Save LoRA adapters alone (``adapter/``) and merge them; write ``tokenizer.json``."""
        if recipe.finetune.lora is not None:
            from bigmodel.transfer.lora import merge_lora, save_lora

            save_lora(model, run_dir / "adapter", metadata={"source": self.source})
            merge_lora(model)
        if data.tokenizer is not None:
            data.tokenizer.save(run_dir / "tokenizer.json")
        return model

    def evaluate(self, recipe, model, data: FinetuneData, run_dir: Path) -> Evaluation:
        classes, section = data.data, recipe.finetune
        how = ", ".join(part for part in (
            f"new head ({classes.num_classes} classes)" if section.head != "keep" else "",
            f"frozen {section.freeze}" if section.freeze else "",
            f"layer decay {section.layer_decay}" if section.layer_decay else "",
            "per-group learning rates" if section.lr_groups else "",
            "gradual unfreezing" if section.gradual_unfreezing else "",
            f"LoRA rank {section.lora.rank} on {section.lora.target}" if section.lora else "")
            if part)
        evaluation = evaluate_classifier(
            model, classes, run_dir, (f"fine-tuned on {recipe.data.name} (test)",
                                      f"fine-tuning on {recipe.data.name}"),
            predict_logits=lambda m, x: predict(m, classes, x),
            summary={"model": self.origin, "adaptation": how or "full fine-tuning",
                     "data": data_row(recipe.data.name, classes, classes=True)})
        evaluation.title = f"Fine-tuning run {run_dir.name}"
        evaluation.extra = {"source": self.source}
        if section.lora:
            evaluation.notes.append("LoRA adapters (and the head) are saved alone in adapter/; "
                                    "model.safetensors holds the merged model.")
        return evaluation


__all__ = ["FinetuneData", "FinetuneTask", "load_source", "predict", "prepare_data",
           "token_batches", "trim_padding"]
