"""Classification tasks of the run path: ``image_classification`` (Fashion-MNIST, MNIST),
``text_classification`` (fortunes, word or pretrained-embedding token ids) and
``speech_classification`` (spoken words) -- one :class:`Classification` task over
:class:`~bigmodel.recipes.classification_data.ClassificationData`, cross-entropy and accuracy.

Its evaluation measures validation and test loss and accuracy and writes ``confusion_matrix.png``
(test set) and ``training_curves.png`` (from ``metrics.csv``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bigmodel.recipes.classification_data import ClassificationData, load_classification_data
from bigmodel.recipes.tasks import Evaluation, FitInputs


class Classification:
    """Train a registered classifier on a recipe's labelled data (see the module doc)."""

    name = "classification"

    def prepare(self, recipe, seed: int | None) -> ClassificationData:
        """Load the data; refuse a model that cannot read it (text data: a word-id model).

        Raises:
            ConfigError: a model that cannot classify the data. DataFileError / DataError: data.
        """
        from bigmodel.recipes.text_data import TEXT_DATA, check_text_model

        if recipe.data.name in TEXT_DATA:
            check_text_model(recipe.model.name, recipe.data.name)
        return load_classification_data(recipe.data, seed=seed)

    def build_model(self, recipe, data: ClassificationData) -> Any:
        """``create_model(recipe.model.name)`` with the data's shape facts (classes, input size,
        vocabulary) unless the recipe overrides them; skip-gram vectors fill the embedding table."""
        from bigmodel.models import create_model, model_defaults

        accepted = model_defaults(recipe.model.name)
        overrides = {k: v for k, v in data.model_arguments().items() if k in accepted}
        overrides.update(recipe.model.overrides)
        model = create_model(recipe.model.name, **overrides)
        if data.word_vectors is not None:  # data.skipgram: vectors trained for this vocabulary
            from bigmodel.models.word_vectors import copy_embeddings

            model.embeddings_source = copy_embeddings(model.embedding, data.word_vectors,
                                                      recipe.model.name)
        return model

    def fit_inputs(self, recipe, data: ClassificationData, model) -> FitInputs:
        """Cross-entropy and accuracy on the in-memory arrays."""
        from torch import nn

        validation = (data.x_val, data.y_val) if data.x_val is not None else None
        return FitInputs(loss=nn.CrossEntropyLoss(), train=(data.x_train, data.y_train),
                         validation=validation, metrics=["accuracy"])

    def model_metadata(self, recipe, data: ClassificationData) -> dict[str, Any]:
        return {"class_names": list(data.class_names), "data": recipe.data.name,
                "input": data.input_spec}

    def finish(self, recipe, model, data: ClassificationData, run_dir: Path) -> Any:
        """Write the data's files (the text vocabulary / tokenizer) next to the model."""
        for name, write in (data.artifacts or {}).items():
            write(run_dir / name)
        return model

    def evaluate(self, recipe, model, data: ClassificationData, run_dir: Path) -> Evaluation:
        title = f"{recipe.model.name} on {recipe.data.name}"
        return evaluate_classifier(model, data, run_dir, (f"{title} test", title),
                                   summary={"data": data_row(recipe.data.name, data),
                                            "augmentation": augmentation_row(recipe, model)})


class ImageClassification(Classification):
    name = "image_classification"


class TextClassification(Classification):
    name = "text_classification"


class SpeechClassification(Classification):
    name = "speech_classification"


def augmentation_row(recipe, model) -> str:
    """The report's "augmentation" row: what runs while training -- the recipe's
    ``data.augment`` and the model's own SpecAugment when it masks anything -- or "none"."""
    from bigmodel.nn.audio_features import SpecAugment

    parts = [spec.name for spec in recipe.data.augment]
    for module in model.modules():
        if isinstance(module, SpecAugment):
            masks = [f"{module.num_freq_masks} frequency mask"
                     f"{'s' if module.num_freq_masks != 1 else ''} up to {module.freq_mask_param} "
                     "bands" if module.num_freq_masks and module.freq_mask_param else "",
                     f"{module.num_time_masks} time mask{'s' if module.num_time_masks != 1 else ''}"
                     f" up to {module.time_mask_param} frames"
                     if module.num_time_masks and module.time_mask_param else ""]
            masks = [text for text in masks if text]
            if masks:
                parts.append(f"SpecAugment in the model ({', '.join(masks)})")
    return ", ".join(parts) or "none"


def data_row(data_name: str, data: ClassificationData, classes: bool = False) -> str:
    """The report's "data" row: split sizes (and the class names)."""
    num_val = 0 if data.x_val is None else len(data.x_val)
    num_train = 0 if data.x_train is None else len(data.x_train)
    row = (f"{data_name}: {num_train:,} train / {num_val:,} validation / {len(data.x_test):,} "
           f"test {data.unit}")
    return row + (f", classes {', '.join(data.class_names)}" if classes else "")


EVALUATION_CHUNK = 2048  # examples between two progress reports of a long evaluation


def predict_in_chunks(predict, model, inputs, split: str, unit: str):
    """``predict(model, inputs)`` chunk by chunk (logits ``(N, K)`` concatenated), reporting
    progress as "evaluating on the <split> set: i/N <unit>" (a :class:`~bigmodel.engine.progress.
    Phase`: nothing unless it lasts long)."""
    import torch

    from bigmodel.engine.progress import Phase

    total = len(inputs)
    if total <= EVALUATION_CHUNK:
        return predict(model, inputs)
    parts = []
    with Phase(f"evaluating on the {split} set", total=total, unit=unit) as phase:
        for start in range(0, total, EVALUATION_CHUNK):
            parts.append(predict(model, inputs[start:start + EVALUATION_CHUNK]))
            phase.update(min(start + EVALUATION_CHUNK, total))
    return torch.cat(parts)


def evaluate_classifier(model, data: ClassificationData, run_dir: Path, titles: tuple[str, str],
                        predict_logits=None, summary: dict | None = None) -> Evaluation:
    """Validation and test cross-entropy and accuracy, the confusion matrix and the run's plots.

    Args:
        model: the trained classifier (eval mode).
        data: its data.
        run_dir: where ``confusion_matrix.png`` / ``training_curves.png`` go.
        titles: of the confusion matrix and of the training curves.
        predict_logits: ``(model, x) -> logits (N, K)``; default
            :func:`bigmodel.recipes.inference.predict_logits`.
        summary: the report rows to return.
    """
    import numpy as np

    from bigmodel.engine.report import write_run_plots
    from bigmodel.recipes import inference

    predict = predict_logits or inference.predict_logits
    results: dict[str, dict[str, float | None]] = {}
    if data.x_val is not None:
        logits = predict_in_chunks(predict, model, data.x_val, "validation", data.unit)
        val_loss, val_accuracy = inference.loss_and_accuracy(logits, data.y_val)
        results["validation"] = {"loss": val_loss, "accuracy": val_accuracy}
    logits = predict_in_chunks(predict, model, data.x_test, "test", data.unit)
    test_loss, test_accuracy = inference.loss_and_accuracy(logits, data.y_test)
    results["test"] = {"loss": test_loss, "accuracy": test_accuracy}
    predictions = logits.argmax(dim=1).numpy() if len(logits) else np.zeros(0, np.int64)
    matrix, images = write_run_plots(run_dir, data.y_test, predictions, data.class_names,
                                     *titles)
    return Evaluation(results=results, headline=("test accuracy", test_accuracy),
                      num_test=len(data.x_test), unit=data.unit, summary=dict(summary or {}),
                      matrix=matrix, class_names=tuple(data.class_names), images=images)


__all__ = ["Classification", "ImageClassification", "SpeechClassification", "TextClassification",
           "augmentation_row", "data_row", "evaluate_classifier", "predict_in_chunks"]
