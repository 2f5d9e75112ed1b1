"""The Debian ``fortunes`` package as a labelled text-classification set.

Each file of ``/usr/share/games/fortunes/`` is one category; its entries are separated by lines that
hold only ``%``. :func:`load_fortunes` reads the chosen categories, cleans the entries (terminal
overstriking ``x\\bx`` removed, surrounding blank lines stripped), drops texts that occur more than
once (within a category or across categories: a duplicate could otherwise sit in both splits) and
splits every category on its own with a seeded permutation, so each class has the same test
fraction and the split is the same on every machine.

Default categories (the six largest topical files of fortunes-min/fortunes 1:1.99): ``computers``,
``definitions``, ``people``, ``politics``, ``science``, ``songs-poems`` (about 5,300 texts).

Search order for the directory: ``path`` -> ``$BIGMODEL_DATA/fortunes`` ->
``/usr/share/games/fortunes`` (the Debian package ``fortunes``); when no place holds the category
files, the :class:`~bigmodel.errors.DataFileError` lists each place tried.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bigmodel.errors import ConfigError, DataError, DataFileError

__all__ = ["DEFAULT_CATEGORIES", "FortunesSplit", "find_fortunes_dir", "list_categories",
           "load_fortunes", "read_fortune_file", "unlabelled_fortunes"]

DEFAULT_CATEGORIES = ("computers", "definitions", "people", "politics", "science", "songs-poems")
DEBIAN_DIR = Path("/usr/share/games/fortunes")
DATA_ENV = "BIGMODEL_DATA"
_OVERSTRIKE = re.compile(r"[^\x08]\x08")


def _strip_overstrike(text: str) -> str:
    """Apply backspaces as a terminal would (``B\bB`` bold, ``_\bx`` underline -> the last char)."""
    while "\x08" in text:
        stripped = _OVERSTRIKE.sub("", text, count=0)
        if stripped == text:  # a backspace with nothing before it
            return text.replace("\x08", "")
        text = stripped
    return text


def read_fortune_file(path: str | os.PathLike) -> list[str]:
    """The entries of one fortune file (``%`` lines separate them), cleaned, empty ones dropped.

    Raises:
        DataFileError: the file cannot be read.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataFileError(f"Cannot read fortune file {path}: {exc}") from None
    text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n")
    entries, current = [], []
    for line in text.split("\n"):
        if line.strip() == "%":
            entries.append("\n".join(current))
            current = []
        else:
            current.append(line)
    entries.append("\n".join(current))
    cleaned = (_strip_overstrike(entry).strip() for entry in entries)
    return [entry for entry in cleaned if entry]


def _is_category_file(path: Path) -> bool:
    return path.is_file() and "." not in path.name


def _places(path: str | os.PathLike | None) -> list[Path]:
    if path is not None:
        return [Path(path)]
    places = []
    if os.environ.get(DATA_ENV):
        places.append(Path(os.environ[DATA_ENV]) / "fortunes")
    places.append(DEBIAN_DIR)
    return places


def find_fortunes_dir(path: str | os.PathLike | None = None,
                      categories: Sequence[str] = DEFAULT_CATEGORIES) -> Path:
    """The first directory of the search order holding every file in ``categories``.

    Raises:
        DataFileError: none does; the message lists each place and what it lacked.
    """
    tried = []
    for place in _places(path):
        if not place.is_dir():
            tried.append(f"{place} (no such directory)")
            continue
        missing = [c for c in categories if not _is_category_file(place / c)]
        if not missing:
            return place
        tried.append(f"{place} (missing {', '.join(missing)})")
    raise DataFileError("Fortune files not found. Tried: " + "; ".join(tried) + ". Install the "
                        "Debian package 'fortunes' (apt-get install fortunes) or put the category "
                        f"files in ${DATA_ENV}/fortunes")


def list_categories(path: str | os.PathLike | None = None) -> dict[str, int]:
    """``{category: number of entries}`` of every category file in the fortunes directory."""
    directory = find_fortunes_dir(path, categories=())
    return {p.name: len(read_fortune_file(p)) for p in sorted(directory.iterdir())
            if _is_category_file(p)}


@dataclass
class FortunesSplit:
    """Texts and int64 labels of the train and test splits; labels index ``class_names``."""

    train_texts: list[str]
    train_labels: np.ndarray
    test_texts: list[str]
    test_labels: np.ndarray
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_fortunes(categories: Sequence[str] = DEFAULT_CATEGORIES,
                  path: str | os.PathLike | None = None, test_fraction: float = 0.2,
                  seed: int = 0, min_entries: int = 50,
                  max_per_category: int | None = None) -> FortunesSplit:
    """Read ``categories`` and split each one into train/test with a seeded permutation.

    Args:
        categories: category file names; their order fixes the label ids.
        path: directory of the fortune files (default: the search order of the module docstring).
        test_fraction: share of each category held out for testing (rounded, at least one text).
        seed: seed of the per-category permutations.
        min_entries: a category with fewer distinct texts is an error (too few to learn from).
        max_per_category: keep at most this many texts of each category (a seeded choice), to
            balance the classes; None keeps all.

    Returns:
        A :class:`FortunesSplit`, train and test each ordered by category then permutation.

    Raises:
        ConfigError: no or repeated categories, or a bad fraction / count.
        DataFileError: the files cannot be found or read.
        DataError: a category has fewer than ``min_entries`` distinct texts.
    """
    categories = list(categories) if not isinstance(categories, str) else [categories]
    if len(categories) < 2:
        raise ConfigError(f"load_fortunes: 'categories' needs at least 2 categories; received "
                          f"{categories!r}")
    if len(set(categories)) != len(categories):
        raise ConfigError(f"load_fortunes: 'categories' holds a category twice: {categories!r}")
    if not isinstance(test_fraction, (int, float)) or not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"load_fortunes: 'test_fraction' must be in (0, 1); received "
                          f"{test_fraction!r}")
    if not isinstance(min_entries, int) or min_entries < 2:
        raise ConfigError(f"load_fortunes: 'min_entries' must be an int >= 2; received "
                          f"{min_entries!r}")
    if max_per_category is not None and (not isinstance(max_per_category, int)
                                         or max_per_category < 2):
        raise ConfigError(f"load_fortunes: 'max_per_category' must be None or an int >= 2; "
                          f"received {max_per_category!r}")
    directory = find_fortunes_dir(path, categories)
    per_category = {c: read_fortune_file(directory / c) for c in categories}
    def key(text: str) -> str:
        return " ".join(text.split()).lower()

    # Repeats inside a category keep their first copy; a text found in several categories is
    # dropped from all of them (its label is ambiguous and it could land in both splits).
    per_category = {c: list({key(t): t for t in reversed(entries)}.values())[::-1]
                    for c, entries in per_category.items()}
    categories_of: dict[str, int] = {}
    for entries in per_category.values():
        for text in entries:
            categories_of[key(text)] = categories_of.get(key(text), 0) + 1
    train_texts, test_texts, train_labels, test_labels = [], [], [], []
    for label, category in enumerate(categories):
        texts = [t for t in per_category[category] if categories_of[key(t)] == 1]
        if len(texts) < min_entries:
            raise DataError(f"load_fortunes: category '{category}' ({directory / category}) has "
                            f"{len(texts)} distinct texts; at least {min_entries} are needed")
        # One generator per category (seed, label): adding a category leaves the others unchanged.
        order = np.random.default_rng([seed, label]).permutation(len(texts))
        if max_per_category is not None:
            order = order[:max_per_category]
        num_test = max(1, int(round(len(order) * test_fraction)))
        test_texts += [texts[i] for i in order[:num_test]]
        train_texts += [texts[i] for i in order[num_test:]]
        test_labels += [label] * num_test
        train_labels += [label] * (len(order) - num_test)
    return FortunesSplit(train_texts, np.asarray(train_labels, dtype=np.int64), test_texts,
                         np.asarray(test_labels, dtype=np.int64), tuple(categories))


def unlabelled_fortunes(split: FortunesSplit, path: str | os.PathLike | None = None) -> list[str]:
    """Texts for unsupervised pre-training next to ``split``: every entry of the category files
    *not* in ``split.class_names``, then ``split``'s training texts; any text equal to a test text
    (same words, case and spacing aside) is left out, so nothing of the test split leaks in.

    Raises:
        DataFileError: the fortunes directory cannot be found or read.
    """
    def key(text: str) -> str:
        return " ".join(text.split()).lower()

    directory = find_fortunes_dir(path, split.class_names)
    held_out = {key(t) for t in split.test_texts}
    others = [text for p in sorted(directory.iterdir())
              if _is_category_file(p) and p.name not in split.class_names
              for text in read_fortune_file(p)]
    return [t for t in others + list(split.train_texts) if key(t) not in held_out]
