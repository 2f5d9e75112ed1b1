"""Speech data: a loader for folders of labelled WAV clips, and the synthesized spoken digits.

Two layouts are read, those of the common keyword-spotting corpora (Speech Commands and the like)::

    root/<word>/<file>.wav          labelled by sub-folder (folders starting with '_' or '.' are
                                    skipped, e.g. Speech Commands' _background_noise_; files that do
                                    not end in .wav are ignored)
    root/validation_list.txt        optional: paths (relative to root) of validation clips
    root/testing_list.txt           optional: paths of test clips; every other clip is 'train'

    root/manifest.csv               labelled by a CSV with a header: columns 'path' and 'label'
                                    (required; paths relative to the CSV's folder), 'speaker' and
                                    'split' (train / validation / test) optional; other columns
                                    are ignored

Every clip goes through :func:`bigmodel.data.audio.load_clip`: mono (channels averaged), resampled
to ``sample_rate``, zero-padded to ``clip_seconds``; too-long, empty, silent or non-WAV clips are
errors naming the file (or, with ``bad_clips="skip"``, skipped with a warning that counts them).
The speaker of a Speech Commands file ``<speaker>_nohash_<n>.wav`` is its prefix.

``synthesize_digits`` (re-exported from :mod:`bigmodel.data.speech_synth`) renders the spoken-digits
corpus with espeak-ng into a folder of the second layout; ``load_speech_digits`` renders (or finds
it in the cache) and loads it.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import warnings
from pathlib import Path

import numpy as np

from bigmodel.data.audio import load_clip
from bigmodel.data.speech_synth import DIGITS, MANIFEST, synthesize_digits
from bigmodel.errors import ConfigError, DataError, DataFileError

__all__ = ["DIGITS", "SPLITS", "SpeechData", "load_speech_digits", "load_speech_folder",
           "synthesize_digits"]

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass
class SpeechData:
    """Clips in memory: waveforms ``(N, S)`` float32, labels ``(N,)`` int64 and their names."""

    waveforms: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    sample_rate: int
    speakers: np.ndarray  # (N,) str, "" when unknown
    splits: np.ndarray  # (N,) str: train / validation / test
    paths: np.ndarray  # (N,) str

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_samples(self) -> int:
        return int(self.waveforms.shape[1])

    def subset(self, index) -> SpeechData:
        """The clips selected by a boolean mask or an index array."""
        index = np.asarray(index)
        return dataclasses.replace(self, waveforms=self.waveforms[index],
                                   labels=self.labels[index], speakers=self.speakers[index],
                                   splits=self.splits[index], paths=self.paths[index])

    def split(self, name: str) -> SpeechData:
        """The clips of split ``name`` (``train``, ``validation`` or ``test``)."""
        if name not in SPLITS:
            raise ConfigError(f"SpeechData.split: expected one of {SPLITS}; received {name!r}")
        return self.subset(self.splits == name)


def _speaker_of(path: Path) -> str:
    stem = path.stem
    return stem.split("_nohash_")[0] if "_nohash_" in stem else ""


def _read_list(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {line.strip().replace("\\", "/") for line in path.read_text().splitlines()
            if line.strip()}


def _entries_from_folders(root: Path) -> list[dict]:
    validation = _read_list(root / "validation_list.txt")
    testing = _read_list(root / "testing_list.txt")
    entries = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name.startswith(("_", ".")):
            continue
        for file in sorted(folder.rglob("*")):
            if not file.is_file() or file.suffix.lower() != ".wav":
                continue
            relative = file.relative_to(root).as_posix()
            split = "test" if relative in testing else "validation" if relative in validation \
                else "train"
            entries.append({"path": file, "label": folder.name, "speaker": _speaker_of(file),
                            "split": split})
    return entries


def _entries_from_csv(csv_path: Path) -> list[dict]:
    try:
        with open(csv_path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            fields = reader.fieldnames or []
            missing = [c for c in ("path", "label") if c not in fields]
            if missing:
                raise DataFileError(f"{csv_path}: the manifest needs the columns 'path' and "
                                    f"'label'; missing {missing} (header: {fields})")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataFileError(f"Cannot read the manifest {csv_path}: {exc}") from None
    entries = []
    for line, row in enumerate(rows, start=2):
        path, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
        if not path or not label:
            raise DataFileError(f"{csv_path}, line {line}: empty 'path' or 'label'")
        split = (row.get("split") or "train").strip() or "train"
        if split not in SPLITS:
            raise DataFileError(f"{csv_path}, line {line}: split {split!r} is not one of "
                                f"{SPLITS}")
        file = Path(path) if Path(path).is_absolute() else csv_path.parent / path
        speaker = (row.get("speaker") or "").strip() or _speaker_of(file)
        entries.append({"path": file, "label": label, "speaker": speaker, "split": split})
    return entries


def load_speech_folder(path: str | os.PathLike, *, manifest: str | os.PathLike | None = None,
                       class_names: list[str] | None = None, sample_rate: int = 16000,
                       clip_seconds: float = 1.0, long_clips: str = "error",
                       bad_clips: str = "error", limit: int | None = None) -> SpeechData:
    """Load a folder of labelled WAV clips (layouts in the module doc).

    Args:
        path: the corpus folder.
        manifest: a CSV manifest (default ``path/manifest.csv`` if it exists, else sub-folders).
        class_names: the label order (e.g. a trained model's); default sorted labels found.
        sample_rate, clip_seconds: every clip is converted to this rate and length.
        long_clips: ``"error"`` or ``"trim"`` (keep the loudest window) for longer clips.
        bad_clips: ``"error"`` (raise on the first unreadable, empty, silent or too-long clip) or
            ``"skip"`` (leave such clips out and warn once with their number and the first
            reason).
        limit: load at most this many clips (the first ones in manifest / folder order).

    Returns:
        A :class:`SpeechData` with waveforms ``(N, round(clip_seconds * sample_rate))``.

    Raises:
        DataFileError: the folder or manifest is missing, unreadable, or holds no clips; a clip
            is not a readable WAV file.
        DataError: a clip is empty, silent or too long; a label not in ``class_names``.
        ConfigError: bad arguments.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataFileError(f"Speech folder not found: {root} (expected a folder of <word>/*.wav "
                            f"sub-folders or a {MANIFEST})")
    if bad_clips not in ("error", "skip"):
        raise ConfigError(f"load_speech_folder: 'bad_clips' must be 'error' or 'skip'; received "
                          f"{bad_clips!r}")
    if not 0.05 <= float(clip_seconds) <= 60.0:
        raise ConfigError(f"load_speech_folder: 'clip_seconds' must be in [0.05, 60]; received "
                          f"{clip_seconds!r}")
    csv_path = Path(manifest).expanduser() if manifest is not None else root / MANIFEST
    if manifest is not None and not csv_path.is_file():
        raise DataFileError(f"Manifest not found: {csv_path}")
    entries = _entries_from_csv(csv_path) if csv_path.is_file() else _entries_from_folders(root)
    if limit is not None:
        entries = entries[:limit]
    if not entries:
        raise DataFileError(f"{root}: no WAV clips found (expected <word>/*.wav sub-folders or a "
                            f"{MANIFEST} with path,label columns)")
    names = tuple(class_names) if class_names is not None else tuple(sorted(
        {e["label"] for e in entries}))
    index_of = {name: i for i, name in enumerate(names)}
    unknown = sorted({e["label"] for e in entries} - set(index_of))
    if unknown:
        raise DataError(f"{root}: labels {unknown} are not among class_names {list(names)}")
    num_samples = int(round(float(clip_seconds) * sample_rate))
    waveforms = np.empty((len(entries), num_samples), dtype=np.float32)
    kept, skipped = [], []
    for entry in entries:
        try:
            clip = load_clip(entry["path"], sample_rate, num_samples, long_clips=long_clips)
        except (DataError, DataFileError) as exc:
            if bad_clips == "error":
                raise
            skipped.append(str(exc))
            continue
        waveforms[len(kept)] = clip
        kept.append(entry)
    if skipped:
        warnings.warn(f"{root}: skipped {len(skipped)} of {len(entries)} clips; first: "
                      f"{skipped[0]}", stacklevel=2)
    if not kept:
        raise DataFileError(f"{root}: none of the {len(entries)} clips could be loaded; first "
                            f"problem: {skipped[0] if skipped else '?'}")
    return SpeechData(
        waveforms=waveforms[: len(kept)],
        labels=np.array([index_of[e["label"]] for e in kept], dtype=np.int64),
        class_names=names, sample_rate=sample_rate,
        speakers=np.array([e["speaker"] for e in kept], dtype=str),
        splits=np.array([e["split"] for e in kept], dtype=str),
        paths=np.array([str(e["path"]) for e in kept], dtype=str))


def load_speech_digits(root: str | os.PathLike | None = None, *, sample_rate: int = 16000,
                       clip_seconds: float = 1.0, **synthesis) -> SpeechData:
    """Render (or reuse from the cache) the spoken-digits corpus and load it.

    ``synthesis`` holds further :func:`synthesize_digits` arguments (``voices``, ``test_voices``,
    ``renditions``, ``seed``, ...). Splits: ``train`` (the training voices) and ``test`` (the
    held-out voices); class names are the words in their given order (``zero`` ... ``nine``).
    """
    words = tuple(synthesis.get("words", DIGITS))
    folder = synthesize_digits(root, sample_rate=sample_rate, clip_seconds=clip_seconds,
                               **synthesis)
    return load_speech_folder(folder, class_names=list(words), sample_rate=sample_rate,
                              clip_seconds=clip_seconds)
