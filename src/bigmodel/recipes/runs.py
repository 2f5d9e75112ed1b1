"""Trained run directories: rebuild a run's model and data, measure it again, predict with it.

``evaluate_run(run_dir)`` scores the saved model (``model.json`` + ``model.safetensors``, never a
pickle) on its resolved recipe's test split (same data set, path, ``test_subset``; runs of
``bigmodel finetune`` on their fine-tuning recipe's split, with the run's tokenizer);
``predict_run(run_dir, source)`` classifies images, clips or texts prepared as in training.
Both also take a stage folder that ``bigmodel compress`` wrote (``RUN/compressed/pruned``,
``.../int8``): it holds the run's recipe and tokenizer beside the compressed model, which
:func:`bigmodel.compress.load_any` loads by its format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLASSIFICATION_TASKS = ("image_classification", "text_classification", "speech_classification")

def evaluate_run(run_dir: str | Path, batch_size: int = 256, data_path: str | None = None,
                 device: str = "auto") -> dict[str, float]:
    """``{"loss", "accuracy", "num_images"}`` of a run's saved model on its recipe's test set.

    Seq2seq and language-model runs repeat their task's own measurement instead
    (:func:`bigmodel.recipes.generation.evaluate_sequence_run`: exact match, token accuracy /
    bits per character, with ``"headline"`` and ``"results"``; ``batch_size`` is the recipe's).

    Raises:
        CheckpointError: the run has no (valid) model files.
        ConfigError: the run's recipe is missing or invalid, ``batch_size`` < 1, or the run is not
            a classification, seq2seq or language-model run.
        DataFileError: the test data cannot be loaded.
    """
    from bigmodel.compress.saving import load_any
    from bigmodel.engine.resolve import resolve_device
    from bigmodel.errors import ConfigError
    from bigmodel.recipes.classification_data import load_classification_data
    from bigmodel.recipes.inference import loss_and_accuracy, predict_logits
    from bigmodel.recipes.schema import load_recipe
    from bigmodel.recipes.tasks.classification import predict_in_chunks
    from bigmodel.recipes.text_data import TEXT_DATA, load_vocabulary
    from bigmodel.utils.loading import confined_path

    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1; received {batch_size}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"Run directory not found: {run_dir}")
    if is_finetune_run(run_dir):
        return evaluate_finetune_run(run_dir, batch_size, data_path, device)
    recipe = load_recipe(confined_path(
        run_dir, "recipe.yaml", "Run recipe", error=ConfigError, kind=None))
    if recipe.task in ("seq2seq", "language_model"):  # the task's own measurement, repeated
        from bigmodel.recipes.generation import evaluate_sequence_run

        return evaluate_sequence_run(run_dir, data_path, device)
    if recipe.task not in CLASSIFICATION_TASKS:
        raise ConfigError(f"{run_dir} is a {recipe.task} run; evaluate measures the loss and "
                          "accuracy of classification runs (the run's own measurement is in its "
                          "results.json and report.md)")
    model = load_any(run_dir, device=resolve_device(device))  # a compressed stage too
    data = recipe.data.model_copy(update={"path": data_path}) if data_path else recipe.data
    vocabulary = None
    if data.name in TEXT_DATA:  # encode the test texts with the run's own vocabulary
        from bigmodel.compress.saving import read_any_spec

        spec = (read_any_spec(run_dir).get("metadata") or {}).get("input") or {}
        vocabulary = load_vocabulary(run_dir, spec)
    splits = load_classification_data(data, seed=recipe.train.seed, with_train=False, vocabulary=vocabulary)
    # in chunks: a large test set through a slow model reports its progress
    logits = predict_in_chunks(lambda m, x: predict_logits(m, x, batch_size), model,
                               splits.x_test, "test", splits.unit)
    loss, accuracy = loss_and_accuracy(logits, splits.y_test)
    return {"loss": loss, "accuracy": accuracy, "num_images": len(splits.x_test),
            "unit": splits.unit}


def is_finetune_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` was written by ``bigmodel finetune`` (its model metadata says so)."""
    from bigmodel.compress.saving import read_any_spec

    metadata = read_any_spec(run_dir).get("metadata") or {}
    return "finetuned_from" in metadata


def evaluate_finetune_run(run_dir: str | Path, batch_size: int = 256, data_path: str | None = None,
                          device: str = "auto") -> dict[str, Any]:
    """``{"loss", "accuracy", "num_images", "unit"}`` of a fine-tuning run's saved model on the
    test split its recipe defines (the split ``bigmodel finetune`` scored; same seed, same classes,
    same tokenizer and text length).

    Raises:
        CheckpointError: no (valid) model files. ConfigError: a missing or invalid recipe.
        DataFileError: the test data cannot be loaded.
    """
    from bigmodel.compress.saving import load_any, read_any_spec
    from bigmodel.engine.resolve import resolve_device
    from bigmodel.errors import ConfigError
    from bigmodel.recipes.finetune_schema import load_finetune_recipe
    from bigmodel.recipes.inference import loss_and_accuracy
    from bigmodel.recipes.tasks.finetune import predict, prepare_data
    from bigmodel.recipes.text_data import load_vocabulary
    from bigmodel.utils.loading import confined_path

    run_dir = Path(run_dir)
    recipe = load_finetune_recipe(confined_path(
        run_dir, "recipe.yaml", "Run recipe", error=ConfigError, kind=None))
    model = load_any(run_dir, device=resolve_device(device))  # a compressed stage too
    spec = (read_any_spec(run_dir).get("metadata") or {}).get("input") or {}
    tokenizer = load_vocabulary(run_dir, spec) if spec.get("tokenizer") else None
    section = recipe.data.model_copy(update={"path": data_path}) if data_path else recipe.data
    if tokenizer is not None and section.max_length is None and spec.get("max_length"):
        section = section.model_copy(update={"max_length": int(spec["max_length"])})
    data = prepare_data(section, tokenizer, 0 if recipe.train.seed is None else recipe.train.seed)
    loss, accuracy = loss_and_accuracy(predict(model, data, data.x_test, batch_size), data.y_test)
    return {"loss": loss, "accuracy": accuracy, "num_images": len(data.x_test),
            "unit": data.unit}


@dataclass
class Prediction:
    """One input's top-k classes: ``label`` names the input (its row, file or text)."""

    label: str
    classes: list[tuple[str, int, float]]  # (class name, class index, probability), best first


def predict_run(run_dir: str | Path, source: str, top_k: int = 1, batch_size: int = 256,
                device: str = "auto", long_clips: str | None = None) -> tuple[str, list[Prediction]]:
    """The top-k classes of a run's model for the inputs in ``source``, prepared as in training.

    ``source``: images in a ``.npy`` file (uint8 0..255 or float 0..1; ``(H, W)``, ``(N, H, W)``,
    ``(N, H, W, C)`` or ``(N, C, H, W)``); for a speech run a ``.wav`` file or a folder of them;
    for a text run a text or a ``.txt`` file (one text per line, encoded with the run's vocabulary
    or tokenizer). Returns ``(kind, predictions)``, kind "image" (labels are row numbers),
    "audio" or "text".

    Raises:
        ConfigError: ``top_k`` or ``batch_size`` < 1, ``top_k`` past the classes, audio for a
            model not trained on audio, a run that is not a classifier (seq2seq, language model). DataFileError / InputTypeError / ShapeError: bad inputs.
    """
    import torch

    from bigmodel.compress.saving import load_any, read_any_spec
    from bigmodel.data.image_input import load_images, prepare_images
    from bigmodel.engine.resolve import resolve_device
    from bigmodel.errors import ConfigError
    from bigmodel.recipes.inference import predict_logits

    if top_k < 1:
        raise ConfigError(f"--top-k must be at least 1; received {top_k}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1; received {batch_size}")
    spec = read_any_spec(run_dir)  # a compressed stage's too (an int8 one has no "config")
    metadata = spec.get("metadata") or {}
    shape = metadata.get("input") or {}
    if metadata.get("task", "image_classification") not in (*CLASSIFICATION_TASKS, "finetune"):
        from bigmodel.recipes.generation import COMMAND_OF

        hint = (f"; use '{COMMAND_OF[metadata['task']]}'" if metadata["task"] in COMMAND_OF
                else "")
        raise ConfigError(f"{run_dir} is a {metadata['task']} run; predict classifies images, "
                          f"clips or texts with classification runs{hint}")
    if shape.get("kind") == "audio" or Path(source).suffix.lower() == ".wav":
        from bigmodel.recipes.speech_data import load_wav_inputs

        if shape.get("kind") != "audio":
            raise ConfigError(f"{source} is audio, but the model of {run_dir} was not trained "
                              "on audio (its model.json has no audio input); pass a .npy array of "
                              "images")
        files, inputs = load_wav_inputs(source, shape, long_clips)
        kind, labels = "audio", [str(file) for file in files]
    elif shape.get("kind") == "text" or ("finetuned_from" in metadata and shape.get("tokenizer")):
        from bigmodel.recipes.text_data import read_texts

        labels, texts = read_texts(source)
        inputs, kind = _encode_texts(run_dir, metadata, shape, texts), "text"
    else:
        config = spec.get("config") or {}
        size = config.get("image_size", 28)
        height, width = (size, size) if isinstance(size, int) else size
        channels = int(shape.get("channels", config.get("in_channels", 1)))
        height, width = int(shape.get("height", height)), int(shape.get("width", width))
        inputs = prepare_images(load_images(source), channels, height, width, source=source)
        kind, labels = "image", [str(row) for row in range(len(inputs))]
    model = load_any(run_dir, device=resolve_device(device))
    probabilities = torch.softmax(predict_logits(model, inputs, batch_size), dim=1)
    num_classes = probabilities.shape[1]
    if top_k > num_classes:
        raise ConfigError(f"--top-k {top_k} exceeds the model's {num_classes} classes")
    names = list(metadata.get("class_names") or [str(i) for i in range(num_classes)])
    top_p, top_i = probabilities.topk(top_k, dim=1)
    return kind, [Prediction(label, [(names[i], i, p) for p, i in zip(ps, ids)])
                  for label, ps, ids in zip(labels, top_p.tolist(), top_i.tolist())]


def _encode_texts(run_dir, metadata: dict, shape: dict, texts: list[str]):
    """Token ids of ``texts`` as the run was trained: its own vocabulary / tokenizer (text runs)
    or the WordPiece tokenizer saved by ``bigmodel finetune`` (cut to the run's ``max_length``).

    Raises:
        DataFileError: the run's tokenizer file is missing, invalid or outside the run dir.
    """
    from bigmodel.recipes.text_data import load_vocabulary, text_max_length

    # The one run-dir tokenizer loader (serve uses it too): every layout, names confined.
    return load_vocabulary(run_dir, shape).encode_batch(texts, max_length=text_max_length(shape))


__all__ = ["Prediction", "evaluate_finetune_run", "evaluate_run", "is_finetune_run", "predict_run"]
