"""docs/keras_api.md lists every Keras 3 API with its state in bigmodel, and the code agrees.

The index of Keras 3's public API is checked in (docs/keras_api.json, written by
tools/keras_api_index.py from real Keras); every name in it either resolves on bigmodel's matching
module or raises UnsupportedAPIError naming it and the page.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest

from bigmodel import keras
from bigmodel.errors import BigModelError, NotSupportedError
from bigmodel.keras.config import UnsupportedAPIError, UnsupportedImportError

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("_keras_api_index",
                                               ROOT / "tools" / "keras_api_index.py")
api = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = api  # dataclasses look their module up by name
_spec.loader.exec_module(api)

PAGE = "docs/keras_api.md"


@pytest.fixture(scope="module")
def index():
    return api.load_index()


@pytest.fixture(scope="module")
def built(index):
    return api.build_page(index, api.load_notes())


def test_page_is_up_to_date_with_the_index_notes_and_code(built):
    page, _ = built
    assert (ROOT / PAGE).read_text() == page, (
        "docs/keras_api.md is out of date: run `python tools/keras_api_index.py`")


def test_no_silently_missing_name_and_no_stale_note(built, index):
    _, entries = built
    problems = [f"{e.api}: {e.note}" for e in entries if e.state == api.PROBLEM]
    assert problems == []
    assert api.stale_notes(index, api.load_notes()) == []
    states = {e.state for e in entries}
    assert states == {api.SUPPORTED, api.PARTIAL, api.NOT_SUPPORTED}


def test_every_indexed_name_resolves_or_raises_naming_it_and_the_page(index):
    wrong = []
    checked = 0
    for module, names in index["modules"].items():
        owner = api.bigmodel_module(module)  # every Keras module path is reachable here
        for name in names:
            checked += 1
            try:
                getattr(owner, name)
            except UnsupportedAPIError as error:
                text = str(error)
                if f"{module}.{name} " not in text or PAGE not in text:
                    wrong.append(f"{module}.{name}: message {text!r}")
                if not isinstance(error, (BigModelError, NotImplementedError, AttributeError)):
                    wrong.append(f"{module}.{name}: {type(error).__mro__}")
                if hasattr(owner, name):
                    wrong.append(f"{module}.{name}: hasattr answers True")
            except Exception as error:  # noqa: BLE001 - any other error is what the test reports
                wrong.append(f"{module}.{name}: {type(error).__name__}: {error}")
    assert wrong == []
    assert checked > 1000  # the whole index was looked at


def test_states_on_the_page_match_the_code(index):
    rows = {}
    module = None
    for line in (ROOT / PAGE).read_text().splitlines():
        if line.startswith("## "):
            module = line[3:].strip()
        elif module and (m := re.match(r"\| `([^`]+)` \| (supported|partial|not supported) \|",
                                       line)):
            rows[(module, m.group(1))] = m.group(2)
    expected = {(m, n) for m, names in index["modules"].items() for n in names}
    assert set(rows) == expected  # each indexed name exactly once, nothing else
    for (module, name), state in rows.items():
        owner = api.bigmodel_module(module)
        if state == "not supported":
            with pytest.raises(UnsupportedAPIError):
                getattr(owner, name)
        else:
            assert getattr(owner, name) is not None, f"{module}.{name}"


def test_from_import_of_a_missing_name_names_it_and_the_page():
    with pytest.raises(UnsupportedImportError,
                       match=r"keras\.layers\.TFSMLayer is not supported .*keras_api\.md"):
        from bigmodel.keras.layers import TFSMLayer  # noqa: F401
    with pytest.raises(ImportError,
                       match=r"keras\.legacy\.saving\.serialize_keras_object .*Keras 2"):
        from bigmodel.keras.legacy.saving import serialize_keras_object  # noqa: F401
    with pytest.raises(ImportError, match=r"keras\.config\.is_nnx_enabled"):
        from bigmodel.keras.config import is_nnx_enabled  # noqa: F401
    assert issubclass(UnsupportedImportError, NotSupportedError)
    assert issubclass(UnsupportedImportError, NotImplementedError)
    # what exists still imports, and Python's own probes get a plain AttributeError
    from bigmodel.keras.layers import Dense  # noqa: F401
    from bigmodel.keras.ops.nn import conv  # noqa: F401 - keras.ops.nn holds the conv ops too

    with pytest.raises(AttributeError) as caught:
        keras.layers.__wrapped__  # noqa: B018
    assert type(caught.value) is AttributeError


def test_missing_modules_are_stand_ins_naming_the_full_api():
    from bigmodel.keras.utils import legacy

    with pytest.raises(UnsupportedAPIError,
                       match=r"keras\.utils\.legacy\.deserialize_keras_object .*Keras 2"):
        legacy.deserialize_keras_object([1])
    with pytest.raises(UnsupportedAPIError, match=r"keras\.utils\.legacy\.serialize_keras_object"):
        keras.utils.legacy.serialize_keras_object([1])
    with pytest.raises(UnsupportedAPIError, match=r"keras\.no_such_module"):
        keras.no_such_module  # noqa: B018
    import bigmodel.keras.legacy.saving as legacy_saving

    assert legacy_saving is keras.legacy.saving
    assert not hasattr(legacy_saving, "deserialize_keras_object")


def test_state_rules_catch_wrong_notes_and_a_module_without_getattr(monkeypatch, index):
    notes = {"modules": {}, "names": {"keras.layers.Dense": {"partial": "differs"}}}
    assert api.state_of("keras.layers", "Dense", notes).state == api.PARTIAL
    notes = {"modules": {}, "names": {"keras.layers.TFSMLayer": {"partial": "x"}}}
    assert api.state_of("keras.layers", "TFSMLayer", notes).state == api.PROBLEM
    notes = {"modules": {}, "names": {"keras.layers.Dense": {"supported": "x"}}}
    assert api.state_of("keras.layers", "Dense", notes).state == api.PROBLEM
    no_notes = {"modules": {}, "names": {}}
    entry = api.state_of("keras.layers", "TFSMLayer", no_notes)
    assert (entry.state, entry.note) == (api.NOT_SUPPORTED, api.DEFAULT_REASON)
    assert api.state_of("keras.legacy.saving", "deserialize_keras_object",
                        no_notes).note.startswith("Keras 2 formats")
    # a module that lost its __getattr__ leaves names silently missing: a problem on the page
    monkeypatch.delattr(keras.optimizers, "__getattr__")
    assert api.state_of("keras.optimizers", "LossScaleOptimizer", no_notes).state == api.PROBLEM
    stale = {"modules": {"keras.nope": "x"}, "names": {"keras.layers.Dense2": "x"}}
    assert api.stale_notes(index, stale) == ["keras.layers.Dense2", "keras.nope"]


def test_index_equals_the_installed_keras(index):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    real = pytest.importorskip("keras", reason="real Keras 3 (dev dependency) is not installed")
    fresh = api.collect_keras_api(real)
    assert fresh == index, (f"Keras {fresh['keras_version']} differs from docs/keras_api.json "
                            f"(Keras {index['keras_version']}): run "
                            "`python tools/keras_api_index.py --index` and review the page")
