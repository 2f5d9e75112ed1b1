"""Speech data sources of recipes (``data.name: speech_digits | speech_folder``) for train/evaluate.

``speech_digits`` renders (or reuses from the cache) the espeak-ng spoken-digits corpus: the
training voices form the training set, the held-out voices the test set. ``speech_folder`` loads
``data.path`` (sub-folders per word, or a ``manifest.csv``; see :mod:`bigmodel.data.speech`); its
clips' ``split`` (CSV column, or Speech Commands' ``testing_list.txt`` / ``validation_list.txt``)
chooses the test and validation sets.

Validation: clips marked ``validation`` if there are any; else ``data.validation_split`` holds out
the *last* fraction of the training clips, which in manifest order are whole voices (the synthesized
corpus lists clips voice by voice), so validation also measures unheard voices.
"""

from __future__ import annotations

from typing import Any

SPEECH_DATA = ("speech_digits", "speech_folder")


def _load(data) -> Any:
    from bigmodel.data.speech import load_speech_digits, load_speech_folder
    from bigmodel.engine.progress import Phase
    from bigmodel.errors import ConfigError

    spec = data.speech
    if data.name == "speech_digits":
        synthesis = {"renditions": spec.renditions, "test_voices": spec.test_voices,
                     "seed": spec.seed}
        if spec.words is not None:
            synthesis["words"] = spec.words
        if spec.voices is not None:
            synthesis["voices"] = spec.voices
        # Rendering a new corpus takes about a minute: report it (a cached one prints nothing).
        with Phase("synthesizing the speech corpus with espeak-ng", unit="clips") as phase:
            return load_speech_digits(data.path, sample_rate=spec.sample_rate,
                                      clip_seconds=spec.clip_seconds, progress=phase.update,
                                      **synthesis)
    if data.path is None:
        raise ConfigError("data.path: the 'speech_folder' data source needs the folder of WAV "
                          "clips (sub-folders per word, or a manifest.csv)")
    return load_speech_folder(data.path, manifest=spec.manifest, class_names=spec.words,
                              sample_rate=spec.sample_rate, clip_seconds=spec.clip_seconds,
                              long_clips=spec.long_clips, bad_clips=spec.bad_clips)


def speech_splits(data, seed: int | None = 0, with_train: bool = True) -> dict[str, Any]:
    """Keyword arguments of ``bigmodel.recipes.classification_data.ClassificationData`` for a speech recipe's data section.

    Raises:
        DataError: no test clips, or a validation split that leaves no training clip.
        DataFileError / ConfigError: from the loaders.
    """
    import numpy as np

    from bigmodel.errors import DataError

    corpus = _load(data)
    test = corpus.split("test")
    if len(test) == 0:
        raise DataError(f"{data.path or 'speech corpus'}: no test clips; mark some with a 'split' "
                        "column (test) in manifest.csv or list them in testing_list.txt")
    if data.test_subset is not None:
        test = test.subset(np.arange(min(data.test_subset, len(test))))
    x_train = y_train = x_val = y_val = None
    if with_train:
        train = corpus.split("train")
        validation = corpus.split("validation")
        if data.train_subset is not None and data.train_subset < len(train):
            rng = np.random.default_rng(0 if seed is None else seed)
            train = train.subset(np.sort(rng.permutation(len(train))[: data.train_subset]))
        if len(validation) == 0 and data.validation_split > 0:
            split_at = int(len(train) * (1.0 - data.validation_split))
            if split_at in (0, len(train)):
                raise DataError(f"data.validation_split={data.validation_split} of {len(train)} "
                                "training clips leaves an empty training or validation set")
            validation = train.subset(np.arange(split_at, len(train)))
            train = train.subset(np.arange(split_at))
        if len(train) == 0:
            raise DataError(f"{data.path or 'speech corpus'}: no training clips")
        x_train, y_train = train.waveforms, train.labels
        if len(validation):
            x_val, y_val = validation.waveforms, validation.labels
    spec = data.speech
    num_samples = corpus.num_samples
    return {
        "x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val,
        "x_test": test.waveforms, "y_test": test.labels, "class_names": corpus.class_names,
        "image_shape": (1, 1, num_samples), "unit": "clips",
        "model_overrides": {"num_classes": corpus.num_classes, "sample_rate": spec.sample_rate,
                            "clip_seconds": spec.clip_seconds},
        "input_spec": {"kind": "audio", "sample_rate": spec.sample_rate,
                       "num_samples": num_samples, "clip_seconds": spec.clip_seconds,
                       "long_clips": spec.long_clips}}


def load_wav_inputs(source: str, input_spec: dict, long_clips: str | None = None) -> Any:
    """``(files, clips (N, S) float32)`` from a ``.wav`` file or a folder of them, converted as in
    training (``input_spec``: a speech run's ``model.json`` metadata ``input``; ``long_clips``
    overrides its setting).

    Raises:
        DataFileError: missing, not WAV, or a folder without ``.wav`` files.
        DataError: an empty, silent or too-long clip.
    """
    from pathlib import Path

    import numpy as np

    from bigmodel.data.audio import load_clip
    from bigmodel.errors import DataFileError

    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".wav")
        if not files:
            raise DataFileError(f"{path}: no .wav files in this folder")
    else:
        files = [path]
    rate, size = int(input_spec["sample_rate"]), int(input_spec["num_samples"])
    long_clips = long_clips or input_spec.get("long_clips", "error")
    return files, np.stack([load_clip(f, rate, size, long_clips=long_clips) for f in files])


def spectrogram_images(model, waveforms) -> Any:
    """``(N, 1, F, T)`` float32 spectrograms that ``model`` (a speech model) classifies like the
    waveforms ``(N, S)``: explanations then attribute to time-frequency cells. None stays None."""
    import torch

    if waveforms is None:
        return None
    device = next(model.parameters()).device
    with torch.no_grad():
        batch = torch.as_tensor(waveforms, dtype=torch.float32, device=device)
        return model.spectrogram(batch).unsqueeze(1).cpu().numpy()
