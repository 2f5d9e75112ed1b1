"""The data of a recipe, cut into train / validation / test: ``load_splits(recipe.data)``.

Image data sets (Fashion-MNIST, MNIST) are handled here; speech (``bigmodel.recipes.speech_data``) and
text classification (``bigmodel.recipes.text_data``) hand back the same :class:`Splits`.
Used by the train, evaluate, explain, compress and finetune commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MNIST_CLASS_NAMES = tuple(str(digit) for digit in range(10))

@dataclass
class Splits:
    """Images as float32 ``(N, 1, H, W)`` in [0, 1] and int64 labels, per split."""

    x_train: Any
    y_train: Any
    x_val: Any | None
    y_val: Any | None
    x_test: Any
    y_test: Any
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]  # (C, H, W); (0, 0, 0) for token ids
    # Non-image data (speech: bigmodel.recipes.speech_data, text: bigmodel.recipes.text_data) sets these.
    unit: str = "images"
    model_overrides: dict | None = None  # model arguments the data fixes
    input_spec: dict | None = None  # saved as model.json's metadata "input"
    artifacts: dict | None = None  # file name -> writer(path), e.g. the text vocabulary
    word_vectors: Any | None = None  # (vocab, dim) tensor for the model's embedding table

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def to_model_input(images):
    """uint8 ``(N, H, W)`` or ``(N, H, W, C)`` pixels -> float32 NCHW in [0, 1]."""
    import numpy as np

    array = np.asarray(images)
    if array.ndim == 3:
        array = array[:, None, :, :]
    elif array.ndim == 4:
        array = array.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(array, dtype=np.float32) / np.float32(255.0)


def load_splits(data, seed: int | None = 0, with_train: bool = True, vocabulary=None) -> Splits:
    """Load the recipe's data set and cut it into train / validation / test as the recipe says.

    ``train_subset`` keeps a seeded random choice of at most N training images; ``test_subset`` the
    first N test images (the same ones in every run); ``validation_split`` holds out the last
    fraction of the (subset) training images, as Keras's ``fit(validation_split=...)`` does.

    Raises:
        DataFileError: the data files cannot be found or read.
        DataError: the split leaves no training or validation image.
    """
    import numpy as np

    from bigmodel.errors import DataError
    from bigmodel.recipes.speech_data import SPEECH_DATA, speech_splits
    from bigmodel.recipes.text_data import TEXT_DATA, text_splits

    if data.name in SPEECH_DATA:
        return Splits(**speech_splits(data, seed=seed, with_train=with_train))
    if data.name in TEXT_DATA:
        return Splits(**text_splits(data, seed=seed, with_train=with_train, vocabulary=vocabulary))
    if data.name not in ("fashion_mnist", "mnist"):
        from bigmodel.errors import ConfigError

        raise ConfigError(f"data.name '{data.name}' is a sequence-to-sequence task; the "
                          "train/evaluate/predict commands handle image, speech and text "
                          "classification data. Train it with "
                          "benchmarks/seq2seq_tasks.py --recipe RECIPE")
    if data.name == "fashion_mnist":
        from bigmodel.keras.datasets import fashion_mnist as module

        class_names = tuple(module.CLASS_NAMES)
    else:
        from bigmodel.keras.datasets import mnist as module

        class_names = MNIST_CLASS_NAMES
    (x_train, y_train), (x_test, y_test) = module.load_data(path=data.path)
    if data.test_subset is not None:
        x_test, y_test = x_test[: data.test_subset], y_test[: data.test_subset]
    x_val = y_val = None
    if with_train:
        if data.train_subset is not None and data.train_subset < len(x_train):
            rng = np.random.default_rng(0 if seed is None else seed)
            keep = rng.permutation(len(x_train))[: data.train_subset]
            x_train, y_train = x_train[keep], y_train[keep]
        if data.validation_split > 0:
            split_at = int(len(x_train) * (1.0 - data.validation_split))
            if split_at == 0 or split_at == len(x_train):
                raise DataError(f"data.validation_split={data.validation_split} of {len(x_train)} "
                                "training images leaves an empty training or validation set")
            x_val, y_val = to_model_input(x_train[split_at:]), y_train[split_at:].astype(np.int64)
            x_train, y_train = x_train[:split_at], y_train[:split_at]
        x_train, y_train = to_model_input(x_train), y_train.astype(np.int64)
    else:
        x_train = y_train = None
    height, width = x_test.shape[1:3]
    channels = x_test.shape[3] if x_test.ndim == 4 else 1
    return Splits(x_train, y_train, x_val, y_val, to_model_input(x_test), y_test.astype(np.int64),
                  class_names, (channels, height, width))


__all__ = ["MNIST_CLASS_NAMES", "Splits", "load_splits", "to_model_input"]
