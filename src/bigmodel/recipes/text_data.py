"""Text-classification data sources of recipes (``data.name: fortunes``) for train/evaluate/predict.

``fortunes`` reads the recipe's categories of the Debian fortunes package with the seeded
per-category train/test split of :func:`bigmodel.data.fortunes.load_fortunes` and encodes every text
as right-padded ids, cut to ``data.max_length`` tokens, with the recipe's ``data.tokenizer``:

- ``word`` (default): a word vocabulary built on the *training* texts (``data.min_count``), written
  into the run directory as ``vocabulary.json``; with ``data.skipgram`` it is built on the
  unlabelled corpus instead (:func:`bigmodel.data.fortunes.unlabelled_fortunes`: the other
  category files plus the training texts, no test text), and skip-gram vectors trained on that
  corpus fill the model's embedding table (``ClassificationData.word_vectors``);
- the name of pretrained embeddings (``minilm-wordpiece``, :mod:`bigmodel.models.word_vectors`):
  that source's own tokenizer (WordPiece, ``[CLS]`` ... ``[SEP]``), whose ids index the pretrained
  table the model starts from (``model.overrides.embeddings``); its ``tokenizer.json`` is copied
  into the run directory.

The file is named in ``model.json``'s input spec, so ``evaluate`` and ``predict`` encode texts
exactly as training did, offline and without rebuilding anything.

Only classifiers take this data (``text-rcnn``, ``transformer-classifier``, or any registered model
with ``vocab_size`` and ``num_classes`` arguments); a language model on the same texts (``gpt``)
is the ``language_model`` task (:mod:`bigmodel.recipes.tasks.language_model`), which the error
message says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TEXT_DATA = ("fortunes",)
VOCABULARY_FILE = "vocabulary.json"
TOKENIZER_FILE = "tokenizer.json"


def text_tokenizers() -> list[str]:
    """Accepted ``data.tokenizer`` values: ``word`` and the pretrained embeddings' names."""
    from bigmodel.models.word_vectors import available_embeddings

    return ["word", *available_embeddings()]


class PretrainedTextEncoder:
    """A pretrained source's WordPiece tokenizer under the recipe's ``data.tokenizer`` name: a
    :class:`~bigmodel.data.tokenizers.Tokenizer` of kind ``wordpiece`` (same ids, same file) whose
    ``encode_batch`` cuts only at ``max_length`` and refuses a text with no token, as the word
    vocabulary does, so the text recipes treat both alike.

    Args:
        name: the embeddings' name (recorded in the run's input spec).
        tokenizer: a :class:`~bigmodel.data.wordpiece.WordPieceTokenizer`.
    """

    kind = "wordpiece"

    def __init__(self, name: str, tokenizer) -> None:
        self.name = name
        self.tokenizer = tokenizer
        self.pad_id, self.unk_id = tokenizer.pad_id, tokenizer.unk_id
        self.bos_id, self.eos_id = tokenizer.bos_id, tokenizer.eos_id
        self.cls_id, self.sep_id = tokenizer.cls_id, tokenizer.sep_id

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def __len__(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def itos(self) -> list[str]:
        """Token strings by id."""
        return self.tokenizer.itos

    def encode(self, text: str) -> list[int]:
        """Token ids of one text, ``[CLS]`` first and ``[SEP]`` last."""
        return self.tokenizer.encode(text)

    def decode(self, ids) -> str:
        return self.tokenizer.decode(ids)

    def encode_batch(self, texts, max_length: int | None = None):
        """``(N, L)`` int64 ids, ``[CLS]`` first and ``[SEP]`` last, cut to ``max_length``.

        Raises:
            DataError: a text holds no token (empty or only spaces).
        """
        from bigmodel.errors import DataError

        ids = self.tokenizer.encode_batch(texts, max_length=max_length)
        empty = ((ids != self.pad_id).sum(axis=1) <= 2).nonzero()[0]  # [CLS] [SEP] only
        if len(empty):
            raise DataError(f"text {int(empty[0])} is empty (no {self.name} token): "
                            f"{texts[int(empty[0])]!r}")
        return ids

    def save(self, path):
        """Copy the source's ``tokenizer.json`` (read back by ``load_tokenizer`` as ``wordpiece``)."""
        return self.tokenizer.save(path)


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
            "'task: language_model' (configs/fortunes_char_gpt.yaml)")


def text_splits(data, seed: int | None = 0, with_train: bool = True,
                vocabulary: Any = None) -> dict[str, Any]:
    """Keyword arguments of ``bigmodel.recipes.classification_data.ClassificationData`` for a text recipe's data section.

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
    from bigmodel.errors import ConfigError, DataError

    del seed
    split = load_fortunes(data.categories or DEFAULT_CATEGORIES, path=data.path)
    vectors = None
    if vocabulary is None:
        if not with_train:
            raise ConfigError("text_splits(with_train=False) needs the run's vocabulary")
        if data.skipgram is not None:
            vocabulary, vectors = skipgram_vocabulary(data, split)
        else:
            vocabulary = build_text_encoder(data, split.train_texts)
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
        "model_overrides": {"vocab_size": vocabulary.vocab_size, "num_classes": split.num_classes,
                            "max_length": model_length, "pad_id": vocabulary.pad_id,
                            **({} if vectors is None else {"embedding_dim": vectors.shape[1]})},
        "word_vectors": vectors,
        "input_spec": {"kind": "text", "tokenizer": _tokenizer_name(vocabulary),
                       "vocabulary": _encoder_file(vocabulary), "max_length": max_length,
                       "pad_id": vocabulary.pad_id},
        "artifacts": {_encoder_file(vocabulary): vocabulary.save},
    }


def skipgram_vocabulary(data, split):
    """``(vocabulary, vectors)``: a word vocabulary of the unlabelled corpus next to ``split`` and
    skip-gram vectors for its rows (``data.skipgram``)."""
    from bigmodel.data.fortunes import unlabelled_fortunes
    from bigmodel.data.text import WordVocabulary
    from bigmodel.engine.progress import Phase
    from bigmodel.transfer.skipgram import train_skipgram

    spec = data.skipgram
    corpus = unlabelled_fortunes(split, path=data.path)
    vocabulary = WordVocabulary.build(corpus, min_count=data.min_count)
    # Minutes on the whole corpus with one thread: report each pass.
    with Phase(f"training skip-gram word vectors ({spec.dim} dimensions)",
               unit="epochs") as phase:
        vectors = train_skipgram(corpus, vocabulary, dim=spec.dim, window=spec.window,
                                 negatives=spec.negatives, epochs=spec.epochs, seed=spec.seed,
                                 progress=phase.update)
    return vocabulary, vectors


def build_text_encoder(data, train_texts):
    """The encoder ``data.tokenizer`` names: a :class:`~bigmodel.data.text.WordVocabulary` built on
    ``train_texts`` (``word``) or a :class:`PretrainedTextEncoder`.

    Raises:
        ConfigError: an unknown tokenizer name. CheckpointError: the pretrained files are missing.
    """
    from bigmodel.data.text import WordVocabulary
    from bigmodel.errors import ConfigError

    name = data.tokenizer
    if name == "word":
        return WordVocabulary.build(train_texts, min_count=data.min_count)
    if name not in text_tokenizers():
        raise ConfigError(f"data.tokenizer: unknown tokenizer {name!r}; known: "
                          f"{', '.join(text_tokenizers())}")
    from bigmodel.models.word_vectors import embeddings_tokenizer

    return PretrainedTextEncoder(name, embeddings_tokenizer(name))


def _tokenizer_name(encoder) -> str:
    return encoder.name if isinstance(encoder, PretrainedTextEncoder) else "word"


def _encoder_file(encoder) -> str:
    return TOKENIZER_FILE if isinstance(encoder, PretrainedTextEncoder) else VOCABULARY_FILE


def _trim(ids, pad_id: int):
    """Drop the columns that are padding in every row (the batch is as wide as its longest text)."""
    used = (ids != pad_id).any(axis=0).nonzero()[0]
    return ids[:, : (int(used[-1]) + 1 if len(used) else 1)]


def load_vocabulary(run_dir: str | Path, input_spec: dict):
    """The tokenizer a text run was trained with, from its run directory: the one run-dir loader of
    ``evaluate``, ``predict``, ``explain`` and ``bigmodel serve``.

    ``input_spec`` is ``model.json``'s ``metadata.input``; every layout written so far loads:

    - ``{"tokenizer": "word", "vocabulary": "vocabulary.json"}`` (``bigmodel train``, the default):
      the run's :class:`~bigmodel.data.text.WordVocabulary`;
    - ``{"tokenizer": <pretrained embeddings' name>, "vocabulary": "tokenizer.json"}``: a
      :class:`PretrainedTextEncoder` of the copied WordPiece file;
    - ``{"tokenizer": "tokenizer.json", ...}`` (``bigmodel finetune``, which records the file): the
      tokenizer of that file, whatever its kind.

    Files are read by :func:`bigmodel.data.tokenizers.load_tokenizer` (bounded, no pickle); the
    recorded name must stay inside the run dir (no ``..``, no absolute path, no symlink out).

    Returns:
        A :class:`~bigmodel.data.tokenizers.Tokenizer`.

    Raises:
        DataFileError: the file is missing, invalid or of another kind than the spec says, or the
            spec names an unknown tokenizer.
    """
    from bigmodel.data.tokenizers import load_tokenizer
    from bigmodel.errors import DataFileError
    from bigmodel.utils.loading import confined_path

    name = input_spec.get("tokenizer", "word")
    if name == "word":
        file, what, expected = input_spec.get("vocabulary", VOCABULARY_FILE), "Vocabulary", \
            "word-vocabulary"
    elif name in text_tokenizers():
        file, what, expected = input_spec.get("vocabulary", TOKENIZER_FILE), "Tokenizer file", \
            "wordpiece"
    elif isinstance(name, str) and name.endswith(".json"):  # finetune runs record the file
        file, what, expected = name, "Tokenizer file", None
    else:
        raise DataFileError(f"{run_dir}: model.json names tokenizer {name!r}; this bigmodel knows "
                            f"{', '.join(text_tokenizers())}")
    # The recorded name stays inside the run dir (no '..', no symlink out); then read bounded.
    path = confined_path(run_dir, file, what, error=DataFileError)
    tokenizer = load_tokenizer(path)
    if expected is not None and tokenizer.kind != expected:
        raise DataFileError(f"{path} holds a {tokenizer.kind} tokenizer, but model.json says the "
                            f"run was trained with tokenizer {name!r} ({expected})")
    return tokenizer if name == "word" or expected is None else PretrainedTextEncoder(name, tokenizer)


def text_max_length(input_spec: dict) -> int | None:
    """The tokens a text run reads per text (``model.json``'s ``metadata.input.max_length``); a
    fine-tuning run that recorded none used 128, ``bigmodel finetune``'s default."""
    max_length = input_spec.get("max_length")
    finetuned = str(input_spec.get("tokenizer", "word")).endswith(".json")
    return int(max_length or 128) if finetuned else max_length


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


__all__ = ["TEXT_DATA", "TOKENIZER_FILE", "VOCABULARY_FILE", "PretrainedTextEncoder",
           "build_text_encoder", "check_text_model", "load_vocabulary", "read_texts",
           "skipgram_vocabulary", "text_max_length", "text_splits", "text_tokenizers"]
