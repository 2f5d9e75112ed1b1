"""``keras.utils.audio_dataset_from_directory``: a folder of class subfolders of WAV files.

Keras 3 builds a ``tf.data.Dataset`` (TensorFlow needed); here the result is a
:class:`~bigmodel.keras.py_dataset.PyDataset` of NumPy batches: float32 audio ``(batch, samples,
channels)`` in [-1, 1] (as ``tf.audio.decode_wav``), zero-padded to the longest clip of the batch
or cut / padded to ``output_sequence_length``, and labels — with Keras's file order, class names,
labels and validation split. soundfile decodes the files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bigmodel.engine.progress import print_message
from bigmodel.errors import ConfigError, DataError, DataFileError, NotSupportedError
from bigmodel.keras.image_dataset import (
    check_split,
    class_files,
    encode_labels,
    shuffle_files,
    split_files,
)
from bigmodel.keras.py_dataset import PyDataset

__all__ = ["AudioDataset", "audio_dataset_from_directory"]

_PLACE = "audio_dataset_from_directory"


class AudioDataset(PyDataset):
    """Batches of WAV clips read from ``paths`` (with labels unless ``labels`` is None)."""

    def __init__(self, paths: list[str], labels: np.ndarray | None, class_names: list[str],
                 batch_size: int, sampling_rate: int | None,
                 output_sequence_length: int | None, rng: np.random.RandomState | None):
        super().__init__()
        self.paths, self.labels, self.class_names = paths, labels, class_names
        self.file_paths = list(paths)  # Keras's attribute name
        self.batch_size, self.sampling_rate = batch_size, sampling_rate
        self.output_sequence_length = output_sequence_length
        self._rng = rng
        self._order = np.arange(len(paths))

    def __len__(self) -> int:
        return -(-len(self.paths) // self.batch_size)

    def _clip(self, path: str) -> np.ndarray:
        import soundfile  # the `speech` extra

        try:
            audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
        except (RuntimeError, soundfile.LibsndfileError) as error:
            raise DataFileError(f"{_PLACE}: cannot read WAV file {path}: {error}") from None
        if self.sampling_rate is not None and rate != self.sampling_rate:
            from math import gcd

            from scipy.signal import resample_poly  # the `speech` extra

            common = gcd(int(rate), int(self.sampling_rate))
            audio = resample_poly(audio, self.sampling_rate // common, rate // common,
                                  axis=0).astype(np.float32)
        if self.output_sequence_length is not None:
            audio = _fit_length(audio, self.output_sequence_length)
        return audio

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of a dataset of {len(self)} batches")
        chosen = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        clips = [self._clip(self.paths[i]) for i in chosen]
        channels = {clip.shape[1] for clip in clips}
        if len(channels) != 1:
            raise DataError(f"{_PLACE}: the clips of batch {index} have different channel "
                            f"counts {sorted(channels)}")
        longest = max(len(clip) for clip in clips)
        batch = np.stack([_fit_length(clip, longest) for clip in clips])
        return batch if self.labels is None else (batch, self.labels[chosen])

    def on_epoch_end(self) -> None:
        if self._rng is not None:
            self._rng.shuffle(self._order)


def _fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """``audio`` cut to ``length`` samples, or zero-padded at the end up to it."""
    if len(audio) >= length:
        return audio[:length]
    return np.concatenate([audio, np.zeros((length - len(audio), audio.shape[1]), audio.dtype)])


def _check(label_mode: Any, batch_size: Any, sampling_rate: Any, output_sequence_length: Any,
           ragged: bool, labels: Any, validation_split: Any, subset: Any, shuffle: bool,
           seed: Any) -> None:
    if label_mode not in ("int", "categorical", "binary", None):
        raise ConfigError(f"{_PLACE}: label_mode must be 'int', 'categorical', 'binary' or None; "
                          f"received label_mode={label_mode!r}")
    if ragged:
        raise NotSupportedError(f"{_PLACE}: ragged=True is not supported by bigmodel (no ragged "
                                "tensors): use output_sequence_length, or the default padding "
                                "to the longest clip of each batch")
    if batch_size is None or isinstance(batch_size, bool) or not isinstance(batch_size, int) \
            or batch_size < 1:
        raise ConfigError(f"{_PLACE}: batch_size must be a positive int (None is not supported "
                          f"by bigmodel); received batch_size={batch_size!r}")
    for name, value in (("sampling_rate", sampling_rate),
                        ("output_sequence_length", output_sequence_length)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value <= 0):
            raise ConfigError(f"{_PLACE}: {name} must be a positive int or None; received "
                              f"{name}={value!r}")
    if not (labels is None or (isinstance(labels, str) and labels == "inferred")):
        raise NotSupportedError(f"{_PLACE}: labels given as a list are not supported by "
                                "bigmodel; use labels='inferred' (one subfolder per class) or None")
    check_split(_PLACE, validation_split, subset, shuffle, seed)


def audio_dataset_from_directory(directory: Any, labels: Any = "inferred",
                                 label_mode: str | None = "int", class_names: Any = None,
                                 batch_size: int = 32, sampling_rate: int | None = None,
                                 output_sequence_length: int | None = None, ragged: bool = False,
                                 shuffle: bool = True, seed: int | None = None,
                                 validation_split: float | None = None,
                                 subset: str | None = None, follow_links: bool = False,
                                 verbose: bool = True) -> Any:
    """WAV files under ``directory`` (one subfolder per class), as Keras 3's function.

    Args:
        sampling_rate: resample every clip to this rate (scipy's polyphase filter); None keeps
            each file's rate.
        output_sequence_length: cut or zero-pad every clip to this many samples; None pads each
            batch to its longest clip.

    Returns:
        An :class:`AudioDataset` (``.class_names``, ``.file_paths``), or ``[training,
        validation]`` for ``subset="both"``.

    Raises:
        ConfigError: a bad argument. DataError: no WAV files, or ``label_mode="binary"`` without
        exactly 2 classes. DataFileError: a file that cannot be read.
        NotSupportedError: ``ragged=True``, ``labels`` as a list or ``batch_size=None``.
    """
    root = Path(directory)
    if not root.is_dir():
        raise DataFileError(f"{_PLACE}: {root} is not a directory")
    _check(label_mode, batch_size, sampling_rate, output_sequence_length, ragged, labels,
           validation_split, subset, shuffle, seed)
    paths, indices, names = class_files(root, class_names, follow_links, (".wav",), _PLACE)
    if labels is None:
        label_mode = None
    if not paths:
        raise DataError(f"{_PLACE}: no audio files (.wav) in {root}")
    if label_mode == "binary" and len(names) != 2:
        raise DataError(f'{_PLACE}: label_mode="binary" needs exactly 2 classes; found '
                        f"{len(names)}: {names}")
    paths, label_array, seed = shuffle_files(paths, np.asarray(indices, dtype=np.int64), shuffle,
                                             seed)
    if verbose:
        print_message(f"Found {len(paths)} files belonging to {len(names)} classes.")
    encoded = encode_labels(label_array, label_mode, len(names), _PLACE)

    def make(part: slice, what: str) -> AudioDataset:
        if verbose and what:
            print_message(f"Using {len(paths[part])} files for {what}.")
        shuffled = shuffle and what != "validation"  # Keras does not reshuffle validation clips
        return AudioDataset(paths[part], None if encoded is None else encoded[part], names,
                            batch_size, sampling_rate, output_sequence_length,
                            np.random.RandomState(seed) if shuffled else None)

    return split_files(len(paths), validation_split, subset, make)
