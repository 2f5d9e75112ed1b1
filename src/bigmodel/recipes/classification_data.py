"""The data of a classification recipe, cut into train / validation / test:
``load_classification_data(recipe.data)`` -> :class:`ClassificationData`.

Image data sets (Fashion-MNIST, MNIST) are handled here; speech (``bigmodel.recipes.speech_data``)
and text classification (``bigmodel.recipes.text_data``) fill the same :class:`ClassificationData`.
Used by the classification and fine-tuning tasks and by the evaluate, explain and compress commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MNIST_CLASS_NAMES = tuple(str(digit) for digit in range(10))

@dataclass
class ClassificationData:
    """Inputs and int64 labels per split: images as float32 ``(N, C, H, W)`` in [0, 1], token
    ids ``(N, T)`` int64 (text) or waveforms ``(N, 1, S)`` float32 (speech)."""

    x_train: Any
    y_train: Any
    x_val: Any | None
    y_val: Any | None
    x_test: Any
    y_test: Any
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]  # (C, H, W) of one input; (1, 1, length) for text/speech
    # Non-image data (speech: bigmodel.recipes.speech_data, text: bigmodel.recipes.text_data) sets
    # model_overrides; input_spec is always set (load_classification_data fills it for images).
    unit: str = "images"
    model_overrides: dict | None = None  # model arguments the data fixes (None: from image_shape)
    input_spec: dict | None = None  # saved as model.json's metadata "input"
    artifacts: dict | None = None  # file name -> writer(path), e.g. the text vocabulary
    word_vectors: Any | None = None  # (vocab, dim) tensor for the model's embedding table

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def model_arguments(self) -> dict:
        """Model factory arguments the data fixes (classes, input size, vocabulary, ...)."""
        if self.model_overrides is not None:
            return dict(self.model_overrides)
        channels, height, width = self.image_shape
        return {"in_channels": channels, "num_classes": self.num_classes,
                "image_size": height if height == width else [height, width]}


def to_model_input(images):
    """uint8 ``(N, H, W)`` or ``(N, H, W, C)`` pixels -> float32 NCHW in [0, 1]."""
    import numpy as np

    array = np.asarray(images)
    if array.ndim == 3:
        array = array[:, None, :, :]
    elif array.ndim == 4:
        array = array.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(array, dtype=np.float32) / np.float32(255.0)


def load_classification_data(data, seed: int | None = 0, with_train: bool = True,
                             vocabulary=None) -> ClassificationData:
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
        return ClassificationData(**speech_splits(data, seed=seed, with_train=with_train))
    if data.name in TEXT_DATA:
        return ClassificationData(**text_splits(data, seed=seed, with_train=with_train,
                                                vocabulary=vocabulary))
    if data.name not in ("fashion_mnist", "mnist"):
        from bigmodel.errors import ConfigError

        raise ConfigError(f"data.name '{data.name}' is not classification data (a "
                          "sequence-to-sequence task: the recipe's task is 'seq2seq')")
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
    return ClassificationData(
        x_train, y_train, x_val, y_val, to_model_input(x_test), y_test.astype(np.int64),
        class_names, (channels, height, width),
        input_spec={"channels": channels, "height": height, "width": width, "scale": 1.0 / 255.0})


__all__ = ["MNIST_CLASS_NAMES", "ClassificationData", "load_classification_data", "to_model_input"]
