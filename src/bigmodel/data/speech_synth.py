"""A spoken-digits corpus rendered with espeak-ng, cached as WAV files and a CSV manifest.

No speech corpus can be downloaded on these machines, so bigmodel makes one: every word is spoken
by many *voices* (espeak-ng voice variants: ``f1`` ... ``m8``, ``klatt``, ``Annie``, ...; the
speakers), each rendition with an accent drawn from English espeak-ng languages (``en-us``,
``en-gb-scotland``, ...), a speaking rate, a pitch, a gain, additive white noise at a random SNR and
a random time shift inside the clip. Whole voices are held out as the test set, so a test score
measures generalisation to unheard speakers, not memorisation.

Rendering is seeded per clip (the random draws of clip ``(voice, word, rendition)`` depend only on
``seed`` and those indices), so the corpus is the same whatever the number of worker threads. The
corpus is written into a private temporary folder and renamed into place when complete; two
processes rendering the same corpus at once both succeed and one copy is kept. Layout::

    <cache>/speech-digits/<key>/
        corpus.json        the settings (and the espeak-ng version that rendered it)
        manifest.csv       path,label,speaker,split,accent,rate,pitch,gain,snr_db,offset
        wav/<split>/<word>/<voice>-<word>-<k>.wav      16-bit PCM mono

``<key>`` is a hash of the settings, so changing any of them renders a new corpus.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bigmodel.data.audio import fit_length, read_wav, resample, write_wav
from bigmodel.errors import ConfigError, DataFileError
from bigmodel.utils.io import atomic_write_json, atomic_write_text

__all__ = ["DEFAULT_ACCENTS", "DEFAULT_VOICES", "DIGITS", "MANIFEST", "espeak_available",
           "espeak_variants", "synthesize_digits"]

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# English espeak-ng languages (accents) of espeak-ng 1.51.
DEFAULT_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                   "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
# espeak-ng 1.51 voice variants (files in espeak-ng-data/voices/!v): the speakers.
DEFAULT_VOICES = ("f1", "f2", "f3", "f4", "f5", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
                  "klatt", "klatt2", "klatt3", "klatt4", "klatt6", "Alex", "Andy", "Annie",
                  "adam", "announcer", "aunty", "belinda", "benjamin", "caleb", "david", "ed",
                  "edward", "grandma", "grandpa", "iven", "john", "linda", "max", "michel",
                  "norbert", "paul", "quincy", "rob", "robert", "steph", "travis", "victor",
                  "zac")
MANIFEST = "manifest.csv"
CORPUS_JSON = "corpus.json"
FORMAT_VERSION = 1
ESPEAK_RATE = 22050  # espeak-ng renders at 22.05 kHz
_COLUMNS = ("path", "label", "speaker", "split", "accent", "rate", "pitch", "gain", "snr_db",
            "offset")


def _espeak(espeak: str | None) -> str:
    return espeak or shutil.which("espeak-ng") or "espeak-ng"


def espeak_available(espeak: str | None = None) -> bool:
    """Whether the espeak-ng program can be run."""
    try:
        subprocess.run([_espeak(espeak), "--version"], capture_output=True, timeout=30,
                       check=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _espeak_info(espeak: str | None) -> tuple[str, Path | None]:
    """``(version line, data directory)`` of espeak-ng.

    Raises:
        DataFileError: espeak-ng is not installed (names the Debian package).
    """
    try:
        done = subprocess.run([_espeak(espeak), "--version"], capture_output=True, text=True,
                              timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise DataFileError(f"espeak-ng is needed to synthesize the spoken-digits corpus and "
                            f"could not be run ({_espeak(espeak)}: {exc}). Install it (Debian/"
                            "Ubuntu: apt-get install espeak-ng), or load recorded WAV files with "
                            "bigmodel.data.speech.load_speech_folder") from None
    line = done.stdout.strip().splitlines()[0] if done.stdout.strip() else "espeak-ng"
    data = line.split("Data at:")[-1].strip() if "Data at:" in line else ""
    return line, (Path(data) if data else None)


def espeak_variants(espeak: str | None = None) -> list[str]:
    """Names of the installed espeak-ng voice variants (empty when they cannot be listed)."""
    _, data = _espeak_info(espeak)
    folder = data / "voices" / "!v" if data else None
    if folder is None or not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def _default_root() -> Path:
    base = os.environ.get("BIGMODEL_DATA")
    root = Path(base).expanduser() if base else Path("~/.cache/bigmodel").expanduser()
    return root / "speech-digits"


def _check_range(name: str, value, low: float, high: float) -> tuple[float, float]:
    try:
        lower, upper = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"synthesize_digits: '{name}' must be a pair (low, high); received "
                          f"{value!r}") from None
    if not low <= lower <= upper <= high:
        raise ConfigError(f"synthesize_digits: '{name}' must satisfy {low} <= low <= high <= "
                          f"{high}; received {value!r}")
    return lower, upper


def _settings(words, voices, test_voices, accents, renditions, sample_rate, clip_seconds,
              rate_range, pitch_range, snr_db_range, gain_range, max_shift, seed) -> dict:
    """Validated settings: the cache key and ``corpus.json``."""
    words, voices, accents = list(words), list(voices), list(accents)
    for name, items in (("words", words), ("voices", voices), ("accents", accents)):
        if not items or not all(isinstance(s, str) and s.strip() for s in items):
            raise ConfigError(f"synthesize_digits: '{name}' must be a non-empty list of names; "
                              f"received {items!r}")
        if len(set(items)) != len(items):
            raise ConfigError(f"synthesize_digits: '{name}' has duplicates: {items!r}")
    for word in words:
        if not all(ch.isalpha() or ch in " '-" for ch in word):
            raise ConfigError(f"synthesize_digits: word {word!r} must be letters (and spaces, "
                              "hyphens, apostrophes) only")
    for voice in voices:
        if not all(ch.isalnum() or ch in "_-" for ch in voice):
            raise ConfigError(f"synthesize_digits: voice {voice!r} must be a variant name of "
                              "letters, digits, '_' or '-'")
    if isinstance(test_voices, int) and not isinstance(test_voices, bool):
        if not 1 <= test_voices < len(voices):
            raise ConfigError(f"synthesize_digits: 'test_voices' must be between 1 and "
                              f"{len(voices) - 1} (there are {len(voices)} voices); received "
                              f"{test_voices}")
        order = np.random.default_rng(seed).permutation(len(voices))
        test = sorted(voices[i] for i in order[:test_voices])
    else:
        test = sorted(test_voices)
        unknown = [v for v in test if v not in voices]
        if unknown or not test or len(test) >= len(voices):
            raise ConfigError(f"synthesize_digits: 'test_voices' must be some (not all) of the "
                              f"voices; received {test_voices!r} (unknown: {unknown})")
    if not isinstance(renditions, int) or isinstance(renditions, bool) or renditions < 1:
        raise ConfigError(f"synthesize_digits: 'renditions' must be a positive int; received "
                          f"{renditions!r}")
    if not isinstance(sample_rate, int) or isinstance(sample_rate, bool) or sample_rate < 4000:
        raise ConfigError(f"synthesize_digits: 'sample_rate' must be an int >= 4000; received "
                          f"{sample_rate!r}")
    if not 0.2 <= float(clip_seconds) <= 10.0:
        raise ConfigError(f"synthesize_digits: 'clip_seconds' must be in [0.2, 10]; received "
                          f"{clip_seconds!r}")
    if not 0.0 <= float(max_shift) <= 0.5:
        raise ConfigError(f"synthesize_digits: 'max_shift' (a fraction of the free room in the "
                          f"clip) must be in [0, 0.5]; received {max_shift!r}")
    return {
        "format": FORMAT_VERSION, "words": words, "voices": voices, "test_voices": test,
        "accents": accents, "renditions": renditions, "sample_rate": sample_rate,
        "clip_seconds": float(clip_seconds),
        "rate_range": _check_range("rate_range", rate_range, 80, 450),
        "pitch_range": _check_range("pitch_range", pitch_range, 0, 99),
        "snr_db_range": _check_range("snr_db_range", snr_db_range, -20, 120),
        "gain_range": _check_range("gain_range", gain_range, 0.01, 1.0),
        "max_shift": float(max_shift), "seed": int(seed)}


def _render_clip(job: dict, settings: dict, espeak: str, scratch: Path) -> np.ndarray:
    """One clip: espeak-ng -> trim silence -> resample -> place in the clip -> gain -> noise."""
    rng = np.random.default_rng(job["entropy"])
    accent = settings["accents"][int(rng.integers(len(settings["accents"])))]
    rate = int(round(rng.uniform(*settings["rate_range"])))
    pitch = int(round(rng.uniform(*settings["pitch_range"])))
    gain = float(rng.uniform(*settings["gain_range"]))
    snr_db = float(rng.uniform(*settings["snr_db_range"]))
    shift = float(rng.uniform(-1.0, 1.0))
    tmp = scratch / f"{uuid.uuid4().hex}.wav"
    command = [espeak, "-v", f"{accent}+{job['voice']}", "-s", str(rate), "-p", str(pitch),
               "-w", str(tmp), job["word"]]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if done.returncode != 0 or not tmp.is_file():
            raise DataFileError(f"espeak-ng failed for {' '.join(command)!r} (exit "
                                f"{done.returncode}): {done.stderr.strip()[:300]}")
        samples, rate_in = read_wav(tmp)
    finally:
        tmp.unlink(missing_ok=True)
    samples = samples if samples.ndim == 1 else samples.mean(axis=1)
    loud = np.flatnonzero(np.abs(samples) > 0.02 * max(float(np.abs(samples).max()), 1e-9))
    if len(loud) == 0:
        raise DataFileError(f"espeak-ng rendered silence for {' '.join(command)!r}: is the voice "
                            f"variant {job['voice']!r} installed?")
    speech = resample(samples[loud[0]: loud[-1] + 1], rate_in, settings["sample_rate"])
    size = int(round(settings["clip_seconds"] * settings["sample_rate"]))
    speech = fit_length(speech, size, long_clips="trim") if len(speech) > size else speech
    speech = speech / max(float(np.abs(speech).max()), 1e-9) * gain  # peak = gain
    room = size - len(speech)
    offset = int(round(room / 2 + shift * settings["max_shift"] * room))
    clip = np.zeros(size, dtype=np.float64)
    clip[offset: offset + len(speech)] = speech
    signal_power = float(np.mean(np.square(speech)))  # over the word, not the padded clip
    noise = rng.standard_normal(size) * np.sqrt(signal_power / 10.0 ** (snr_db / 10.0))
    clip = np.clip(clip + noise, -1.0, 1.0)
    job.update(accent=accent, rate=rate, pitch=pitch, gain=round(gain, 4),
               snr_db=round(snr_db, 2), offset=offset)
    return clip


def synthesize_digits(root: str | os.PathLike | None = None, *, words=DIGITS,
                      voices=DEFAULT_VOICES, test_voices: int | list[str] = 8,
                      accents=DEFAULT_ACCENTS, renditions: int = 5, sample_rate: int = 16000,
                      clip_seconds: float = 1.0, rate_range=(130, 210), pitch_range=(25, 75),
                      snr_db_range=(10.0, 30.0), gain_range=(0.3, 0.9), max_shift: float = 0.4,
                      seed: int = 0, workers: int | None = None, espeak: str | None = None,
                      verbose: bool = False,
                      progress: Callable[[int, int], None] | None = None) -> Path:
    """Render (or find in the cache) a spoken-words corpus; returns its folder.

    Every voice speaks every word ``renditions`` times; each rendition draws an accent from
    ``accents``, a rate (words per minute) from ``rate_range``, a pitch (0-99) from ``pitch_range``,
    a peak gain from ``gain_range``, white noise at an SNR (dB) from ``snr_db_range`` and a
    shift of the word from the clip's centre of up to ``max_shift`` of the free room.

    Args:
        root: the cache folder (default ``$BIGMODEL_DATA/speech-digits`` or
            ``~/.cache/bigmodel/speech-digits``); the corpus goes into ``root/<key>``.
        words: the vocabulary (default the ten digits); more keywords may be added.
        voices: espeak-ng voice variants, one speaker each.
        test_voices: how many voices to hold out as the test set (a seeded choice), or their
            names.
        renditions: clips per (voice, word).
        sample_rate, clip_seconds: output format (16-bit PCM mono).
        seed: seeds every random draw.
        workers: espeak-ng processes at once (default: the CPU count).
        espeak: path of the espeak-ng program (default: found on PATH).
        verbose: print one line before rendering.
        progress: ``progress(done, total)`` after each clip rendered (not called when the corpus
            is found in the cache), e.g. :meth:`bigmodel.engine.progress.Phase.update`.

    Returns:
        The corpus folder, holding ``manifest.csv`` (load it with
        :func:`bigmodel.data.speech.load_speech_folder`).

    Raises:
        ConfigError: invalid settings or a voice variant that espeak-ng does not have.
        DataFileError: espeak-ng is missing or fails.
    """
    settings = _settings(words, voices, test_voices, accents, renditions, sample_rate,
                         clip_seconds, rate_range, pitch_range, snr_db_range, gain_range,
                         max_shift, seed)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    root = Path(root).expanduser() if root is not None else _default_root()
    final = root / key
    if (final / MANIFEST).is_file():
        return final
    version, _ = _espeak_info(espeak)
    program = _espeak(espeak)
    installed = espeak_variants(espeak)
    missing = [v for v in settings["voices"] if installed and v not in installed]
    if missing:
        raise ConfigError(f"synthesize_digits: espeak-ng has no voice variant(s) {missing}; "
                          f"installed: {', '.join(installed)}")
    test = set(settings["test_voices"])
    jobs = []
    for v, voice in enumerate(settings["voices"]):
        split = "test" if voice in test else "train"
        for w, word in enumerate(settings["words"]):
            for k in range(renditions):
                relative = f"wav/{split}/{word}/{voice}-{word.replace(' ', '_')}-{k}.wav"
                jobs.append({"voice": voice, "word": word, "split": split, "path": relative,
                             "entropy": [int(seed), v, w, k]})
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    try:
        scratch = staging / ".scratch"
        scratch.mkdir()

        def render(job: dict) -> None:
            clip = _render_clip(job, settings, program, scratch)
            write_wav(staging / job["path"], clip, settings["sample_rate"])

        threads = workers if workers is not None else (os.cpu_count() or 1)
        if verbose:
            print(f"synthesizing {len(jobs)} clips with {threads} espeak-ng workers into {final}")
        with ThreadPoolExecutor(max_workers=max(int(threads), 1)) as pool:
            for done, _ in enumerate(pool.map(render, jobs), 1):
                if progress is not None:
                    progress(done, len(jobs))
        scratch.rmdir()
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(_COLUMNS)
        for job in jobs:
            writer.writerow([job["path"], job["word"], job["voice"], job["split"], job["accent"],
                             job["rate"], job["pitch"], job["gain"], job["snr_db"], job["offset"]])
        atomic_write_json(staging / CORPUS_JSON, {**settings, "espeak": version,
                                                  "clips": len(jobs)})
        atomic_write_text(staging / MANIFEST, out.getvalue())
        try:
            os.rename(staging, final)
        except OSError:
            if not (final / MANIFEST).is_file():  # not another process's finished copy: a failure
                raise
    finally:
        if staging.exists():
            with contextlib.suppress(OSError):
                shutil.rmtree(staging)
    return final
