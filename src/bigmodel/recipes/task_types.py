"""The task types a recipe can name (``task:``), the data sets each reads, and the task of a
recipe that names none (recipes and run dirs written before the key existed)."""

from __future__ import annotations

# The task types of the run path (bigmodel.recipes.tasks) and the data sets each one reads.
TASKS = ("image_classification", "text_classification", "speech_classification", "seq2seq",
         "language_model", "finetune")
TASK_DATA = {
    "image_classification": ("fashion_mnist", "mnist"),
    "text_classification": ("fortunes",),
    "speech_classification": ("speech_digits", "speech_folder"),
    "seq2seq": ("numbers_to_words", "dates_to_iso", "reversal"),
    "language_model": ("fortunes",),
    "finetune": ("fashion_mnist", "mnist", "fortunes"),
}
LANGUAGE_MODELS = ("gpt",)  # registry names of decoder-only language models


def infer_task(data_name: str, model_name: str) -> str:
    """The task of a recipe that does not name one (recipes written before ``task:`` existed).

    Image data -> ``image_classification``; speech -> ``speech_classification``; the generated
    sequence tasks -> ``seq2seq``; ``fortunes`` -> ``language_model`` with a language model
    (``gpt``), else ``text_classification``.
    """
    if data_name == "fortunes" and model_name in LANGUAGE_MODELS:
        return "language_model"
    for task, names in TASK_DATA.items():
        if data_name in names:
            return task
    return "image_classification"  # an unknown data.name fails its own check with a clear message


__all__ = ["LANGUAGE_MODELS", "TASKS", "TASK_DATA", "infer_task"]
