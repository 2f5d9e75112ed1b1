"""Text-classification data sources of recipes (``data.name: fortunes``) for train/evaluate/predict.

``fortunes`` reads the recipe's categories of the Debian fortunes package with the seeded
per-category train/test split of :func:`bigmodel.data.fortunes.load_fortunes`, builds a word
vocabulary on the *training* texts (``data.min_count``) and encodes every text as right-padded word
ids, cut to ``data.max_length`` tokens. The vocabulary is written into the run directory
(``vocabulary.json``) and named in ``model.json``'s input spec, so ``evaluate`` and ``predict``
encode texts exactly as training did, without rebuilding anything.

Only classifiers take this data (``text-rcnn``, ``transformer-classifier``, or any registered model
with ``vocab_size`` and ``num_classes`` arguments); a language model on the same texts (``gpt``)
is trained by ``benchmarks/char_lm_fortunes.py``, which the error message says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TEXT_DATA = ("fortunes",)
VOCABULARY_FILE = "vocabulary.json"


def check_text_model(model_name: str, data_name: str) -> None:
    """Refuse a model that cannot classify word ids (names the model, the data and the way out).

    Raises:
        ConfigError: the model has no ``vocab_size``/``num_classes`` arguments.
    """
    from bigmodel.errors import ConfigError
    from bigmodel.models import model_defaults

    accepted = model_defaults(model_name)
    if "vocab_size" not in accepted or "num_classes" not in accepted:
        raise ConfigError(
            f"model.name '{model_name}' is not a text classifier (it takes no vocab_size and "
            f"num_classes), so `bigmodel train` cannot fit it to the '{data_name}' categories; "
            "use text-rcnn or transformer-classifier, or train a language model with "
            "benchmarks/char_lm_fortunes.py --recipe RECIPE")


def text_splits(data, seed: int | None = 0, with_train: bool = True,
                vocabulary: Any = None) -> dict[str, Any]:
    """Keyword arguments of ``bigmodel.cli.train.Splits`` for a text recipe's data section.

    Args:
        data: the recipe's ``data`` section (``name: fortunes``).
        seed: unused by the split (the fortunes split has its own fixed seed, so every run of a
            recipe sees the same test texts); kept for the common signature.
        with_train: False for evaluate (test texts only; then ``vocabulary`` is required).
        vocabulary: the run's :class:`~bigmodel.data.text.WordVocabulary`; None builds one from the
            training texts.

    Raises:
        DataFileError: the fortunes files are missing. DataError: an empty split.
        ConfigError: ``with_train=False`` without a vocabulary.
    """
    import numpy as np

    from bigmodel.data.fortunes import DEFAULT_CATEGORIES, load_fortunes
    from bigmodel.data.text import WordVocabulary
    from bigmodel.errors import ConfigError, DataError

    del seed
    split = load_fortunes(data.categories or DEFAULT_CATEGORIES, path=data.path)
    if vocabulary is None:
        if not with_train:
            raise ConfigError("text_splits(with_train=False) needs the run's vocabulary")
        vocabulary = WordVocabulary.build(split.train_texts, min_count=data.min_count)
    max_length = data.max_length
    x_test = vocabulary.encode_batch(split.test_texts, max_length=max_length)
    x_train = y_train = x_val = y_val = None
    if with_train:
        x_train = vocabulary.encode_batch(split.train_texts, max_length=max_length)
        y_train = split.train_labels.astype(np.int64)
        if data.validation_split > 0:
            # The last fraction of a seeded shuffle, so validation has every category.
            order = np.random.default_rng(0).permutation(len(x_train))
            split_at = int(len(order) * (1.0 - data.validation_split))
            if split_at in (0, len(order)):
                raise DataError(f"data.validation_split={data.validation_split} of {len(order)} "
                                "training texts leaves an empty training or validation set")
            val, keep = np.sort(order[split_at:]), np.sort(order[:split_at])
            x_val, y_val = x_train[val], y_train[val]
            x_train, y_train = x_train[keep], y_train[keep]
        x_train, x_val = (None if x is None else _trim(x, vocabulary.pad_id) for x in (x_train, x_val))
    width = max(x.shape[1] for x in (x_train, x_val, x_test) if x is not None)
    model_length = max_length or width
    return {
        "x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val,
        "x_test": _trim(x_test, vocabulary.pad_id), "y_test": split.test_labels.astype(np.int64),
        "class_names": tuple(split.class_names), "image_shape": (1, 1, model_length),
        "unit": "texts",
        "model_overrides": {"vocab_size": len(vocabulary), "num_classes": split.num_classes,
                            "max_length": model_length, "pad_id": vocabulary.pad_id},
        "input_spec": {"kind": "text", "vocabulary": VOCABULARY_FILE, "max_length": max_length,
                       "pad_id": vocabulary.pad_id},
        "artifacts": {VOCABULARY_FILE: vocabulary.save},
    }


def _trim(ids, pad_id: int):
    """Drop the columns that are padding in every row (the batch is as wide as its longest text)."""
    used = (ids != pad_id).any(axis=0).nonzero()[0]
    return ids[:, : (int(used[-1]) + 1 if len(used) else 1)]


def load_vocabulary(run_dir: str | Path, input_spec: dict):
    """The vocabulary a text run was trained with.

    Raises:
        DataFileError: the run's vocabulary file is missing or invalid.
    """
    from bigmodel.data.text import WordVocabulary

    return WordVocabulary.load(Path(run_dir) / input_spec.get("vocabulary", VOCABULARY_FILE))


def read_texts(source: str) -> tuple[list[str], list[str]]:
    """``(labels, texts)`` to classify: a ``.txt`` file (one text per line, blank lines skipped;
    labels ``file:line``) or, when no such file exists, ``source`` itself as one text.

    Raises:
        DataError: the file holds no text.
        DataFileError: the file cannot be read as UTF-8.
    """
    from bigmodel.errors import DataError, DataFileError

    path = Path(source)
    if path.suffix.lower() == ".txt" and path.is_file():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataFileError(f"{path}: cannot be read as UTF-8 text: {exc}") from None
        rows = [(f"{path.name}:{number}", line.strip()) for number, line in enumerate(lines, 1)
                if line.strip()]
        if not rows:
            raise DataError(f"{path}: no text in this file (one text per line)")
        return [label for label, _ in rows], [text for _, text in rows]
    if path.suffix.lower() == ".txt":
        raise DataFileError(f"{path}: text file not found")
    if not source.strip():
        raise DataError("predict: the text to classify is empty")
    return ["text"], [source]


__all__ = ["TEXT_DATA", "VOCABULARY_FILE", "check_text_model", "load_vocabulary", "read_texts",
           "text_splits"]
