"""Test-session settings: the tests never reach the network (CI machines have none but PyPI)."""

import os

import pytest
import torch

# Hugging Face libraries (the sentence-transformers reference of the MiniLM test) must read only
# the local files they are given, never ask the Hub for updates.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``full`` (the longest end-to-end runs, each covered in kind by quicker tests)
    run when ``BIGMODEL_FULL=1``: ``.ci/run`` runs them after ``make test``, which skips them to
    stay under 10 minutes on 2 cores."""
    if os.environ.get("BIGMODEL_FULL") == "1":
        return
    skip = pytest.mark.skip(reason="long end-to-end run: .ci/run runs it (BIGMODEL_FULL=1)")
    for item in items:
        if item.get_closest_marker("full") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny models: they gain nothing from two, and on a loaded
    machine two threads spin-wait for each other (a speech test step measured 40x slower).
    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
