"""Real Keras 3 on its torch backend, the reference the Keras-surface tests compare against."""

from __future__ import annotations

import os
from typing import Any

import pytest


def real_keras() -> Any:
    """The ``keras`` package on the torch backend; the test is skipped where it is not installed
    or was imported with another backend."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    real = pytest.importorskip("keras")
    if real.backend.backend() != "torch":
        pytest.skip("real Keras runs on another backend here")
    return real
