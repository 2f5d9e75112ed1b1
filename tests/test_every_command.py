"""Every recipe in configs/ through every command, at tiny sizes, in-process through
``bigmodel.cli.main.main``: train -> evaluate -> predict (and generate / translate) -> explain (each
method) -> export (ONNX, safetensors) -> compress (prune, int8, distill) -> evaluate / predict on each
compressed model. Each step asserts its real output (the loss fell, evaluate agrees with
results.json, predictions name the model's classes, explanation files load, ONNX Runtime matches
PyTorch within 1e-4, a compressed model predicts the original's class on most inputs).

The recipe list is read from configs/, so a new recipe is covered automatically (its tiny settings
go in tests/tiny_recipes.py). A step that does not apply to a recipe is in ``NOT_APPLICABLE`` with
the reason (and must be refused with a clear error, not crash); a step that is broken today is in
``BROKEN`` with a fragment of its error, a strict xfail: when it is fixed the test fails until the
entry is removed. Each recipe trains once (module-scoped cache) and its steps share the run.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bigmodel.cli.main import main
from tiny_recipes import CONFIGS, FINETUNE, RUN_FILES, TINY, data_sets, needs, write_tiny_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RECIPES = sorted(path.name for path in CONFIGS.glob("*.yaml"))
METHODS = ("integrated_gradients", "saliency", "gradient_shap", "deep_shap", "kernel_shap", "lime",
           "gradcam", "attention")
STAGES = {"prune": "pruned", "int8": "int8", "distill": "distilled"}
STEPS = ("train", "evaluate", "predict", "generate", "translate",
         *[f"explain:{method}" for method in METHODS], "export:onnx", "export:safetensors",
         *[f"compress:{kind}" for kind in STAGES],
         *[f"{command}:{stage}" for stage in STAGES.values() for command in ("evaluate", "predict")])
CLASSIFIERS = ("image_classification", "text_classification", "speech_classification", "finetune")

# (recipe file or task, step) -> (why the step does not apply, what its refusal must say). The step
# is still run once and must be refused (exit code 2) with that message, never crash.
NO_ATTENTION = ("fashion_cnn", "fashion_cnn_regularized", "fashion_lstm", "fashion_rcnn",
                "fashion_rcnn_cpu", "finetune_fashion_cnn", "fortunes_text_rcnn",
                "fortunes_text_rcnn_minilm", "fortunes_text_rcnn_skipgram", "speech_cnn",
                "speech_crnn", "speech_lstm")
NO_CONVOLUTION = ("fashion_lstm", "speech_lstm", "speech_transformer", "fortunes_text_rcnn",
                  "fortunes_text_rcnn_minilm", "fortunes_text_rcnn_skipgram",
                  "fortunes_transformer_classifier", "finetune_fortunes_minilm_lora")
SEQUENCE_TASKS = ("seq2seq", "language_model")
NOT_CLASSIFIER = "classif|seq2seq|language.model|generate|translate"
NOT_APPLICABLE = {
    **{(task, "generate"): ("generate samples text from language models only", "generate")
       for task in (*CLASSIFIERS, "seq2seq")},
    **{(task, "translate"): ("translate runs seq2seq models only", "translate")
       for task in (*CLASSIFIERS, "language_model")},
    **{(task, "predict"): ("predict classifies; these runs have generate / translate",
                           "generate|translate") for task in SEQUENCE_TASKS},
    **{(task, f"explain:{method}"): ("attributions explain a classifier's class scores",
                                     NOT_CLASSIFIER)
       for task in SEQUENCE_TASKS for method in METHODS},
    **{(task, step): ("compress measures classifiers (accuracy on a labelled test set)",
                      NOT_CLASSIFIER)
       for task in SEQUENCE_TASKS for step in STEPS
       if step.startswith("compress:") or step.split(":")[-1] in STAGES.values()},
    **{(f"{recipe}.yaml", "explain:attention"): ("the model has no attention layers",
                                                 "does not apply")
       for recipe in NO_ATTENTION},
    **{(f"{recipe}.yaml", "explain:gradcam"): ("the model has no convolutional feature map",
                                               "does not apply")
       for recipe in NO_CONVOLUTION},
}

# Extra compress options a recipe's model needs, named by compress's own refusal without them:
# (recipe, kind) -> options. GRUs have no int8 kernel in ONNX Runtime; recurrent convolutions cannot
# lose channels (structured pruning), so those models are pruned weight by weight.
COMPRESS_OPTIONS = {
    **{(recipe, "int8"): ["--keep-fp32", "rnn"]
       for recipe in ("fortunes_text_rcnn.yaml", "fortunes_text_rcnn_minilm.yaml",
                      "fortunes_text_rcnn_skipgram.yaml", "speech_crnn.yaml")},
    **{(recipe, "prune"): ["--prune-mode", "unstructured"]
       for recipe in ("fashion_rcnn.yaml", "fashion_rcnn_cpu.yaml")},
}

# Steps that depend on the model alone (not its data or training settings), run once per model:
# recipe -> (the recipe of the same model and input kind that runs them, why it is the same).
# ONNX export traces recurrent layers step by step (tens of seconds per model on 2 busy cores).
SAME_MODEL_STEPS = ("export:onnx", "compress:int8", "evaluate:int8", "predict:int8")
SAME_MODEL = {
    "fashion_cnn_regularized.yaml": ("fashion_cnn.yaml", "the seed CNN with dropout / L2 only"),
    "fashion_rcnn_cpu.yaml": ("fashion_rcnn.yaml", "the same RCNN with CPU-friendly sizes"),
    "fortunes_text_rcnn_skipgram.yaml": ("fortunes_text_rcnn.yaml",
                                         "the same text RCNN, embeddings initialized by skip-gram"),
    "seq2seq_numbers.yaml": ("seq2seq_dates.yaml", "the same encoder-decoder, other pairs"),
}

# Steps too slow for the suite: (recipe, step) -> why (measured on 2 busy cores).
SLOW = {("finetune_fortunes_minilm_lora.yaml", step): "structured pruning of the 22M-parameter "
        "MiniLM and its fine-tuning epoch take 150 s" for step in
        ("compress:prune", "evaluate:pruned", "predict:pruned")}

# `make test` must stay under 10 minutes on 2 cores; the whole matrix takes 4.5 of them. By default
# the steps below are left to the full run (`BIGMODEL_FULL_CHAIN=1`, which .ci/run adds after
# `make test`): the Captum methods that share integrated gradients' gradient path, distillation
# after the first recipe, every model-only step of a SAME_MODEL recipe, and the int8 / ONNX and
# attention-map steps of the two MiniLM recipes (10-15 s each; the Transformer recipes cover
# attention maps in make test).
FULL_CHAIN = os.environ.get("BIGMODEL_FULL_CHAIN") == "1"
FULL_ONLY_METHODS = ("saliency", "gradient_shap", "deep_shap", "kernel_shap")
FULL_ONLY_MINILM = ("export:onnx", "compress:int8", "evaluate:int8", "predict:int8",
                    "explain:attention")


def _full_chain_only(recipe: str, step: str) -> str | None:
    """Why ``step`` of ``recipe`` runs only with BIGMODEL_FULL_CHAIN=1, or None."""
    command, _, what = step.partition(":")
    if command == "explain" and what in FULL_ONLY_METHODS:
        return "a Captum method on integrated gradients' gradient path"
    if "distill" in step or what == "distilled":
        return None if recipe == RECIPES[0] else "distillation runs on the first recipe"
    if recipe in SAME_MODEL and command in ("explain", "export", "compress", "evaluate",
                                            "predict") and what:
        return f"model-only step; {SAME_MODEL[recipe][0]} runs it"
    if "minilm" in recipe and step in FULL_ONLY_MINILM:
        return "int8 / ONNX / attention maps of the 22M-parameter MiniLM"
    return None


# (recipe file or task, step) -> a fragment of today's error: a strict xfail until it is fixed.
BROKEN: dict[tuple[str, str], str] = {}


@functools.cache  # collection asks ~1,400 times (recipe x step); a recipe loads in ~15 ms
def _task(recipe: str) -> str:
    if recipe in FINETUNE:
        return "finetune"
    from bigmodel.recipes.schema import load_recipe

    return load_recipe(CONFIGS / recipe).task


def _lookup(table: dict, recipe: str, task: str, step: str):
    return table.get((recipe, step), table.get((task, step)))


def _param(recipe: str, step: str):
    """The test case of ``(recipe, step)``: a strict xfail when ``BROKEN`` pins its error."""
    pinned = _lookup(BROKEN, recipe, _task(recipe), step)
    marks = [] if pinned is None else [
        pytest.mark.xfail(strict=True, raises=StepBroken, reason=f"broken today: {pinned}")]
    return pytest.param(recipe, step, marks=marks, id=f"{recipe[:-5]}-{step}")


def _cases(applicable: bool) -> list:
    return [_param(recipe, step) for recipe in RECIPES for step in STEPS
            if (_lookup(NOT_APPLICABLE, recipe, _task(recipe), step) is None) == applicable]


class StepBroken(Exception):
    """A step failed with the error pinned in ``BROKEN`` (the expected failure)."""


class CommandFailed(AssertionError):
    """``bigmodel ...`` exited non-zero; the message holds the command and its error output."""


def _cli(*argv) -> str:
    """Run ``bigmodel argv`` in-process; returns its stdout. Raises CommandFailed (non-zero exit)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(part) for part in argv])
    if code != 0:
        raise CommandFailed(f"bigmodel {' '.join(map(str, argv))} exited {code}: "
                            f"{err.getvalue().strip()[-2000:]}")
    return out.getvalue()


def _sets(items: list[str]) -> list[str]:
    return [part for item in items for part in ("--set", item)]


class Chain:
    """One tiny trained run per recipe (and its compressed stages), made on first use; a step that
    failed is remembered, so every later step of that recipe fails with the same message."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = write_tiny_data(root / "data")
        self.cache: dict[tuple[str, str], object] = {}

    def _once(self, key: tuple[str, str], make):
        if key not in self.cache:
            try:
                self.cache[key] = make()
            except Exception as exc:  # remembered: the dependants report the same failure
                self.cache[key] = exc
        value = self.cache[key]
        if isinstance(value, Exception):
            raise value
        return value

    def run(self, recipe: str) -> Path:
        return self._once((recipe, "train"), lambda: self._train(recipe))

    def _train(self, recipe: str) -> Path:
        run_dir = self.root / "runs" / recipe[:-5]
        sets = data_sets(recipe, self.data)
        if recipe in FINETUNE:
            source, tiny = FINETUNE[recipe]
            if source == "fashion run":  # a tiny trained run of the seed CNN to start from
                source = self.root / "runs" / "finetune-source"
                _cli("train", CONFIGS / "fashion_cnn.yaml", "--run-dir", source,
                     *_sets([f"data.path={self.data['fashion']}", "train.epochs=1"]))
            _cli("finetune", source, CONFIGS / recipe, "--run-dir", run_dir, *_sets([*sets, *tiny]))
        else:
            _cli("train", CONFIGS / recipe, "--run-dir", run_dir,
                 *_sets([*sets, *TINY[recipe]]))
        return run_dir

    def stage(self, recipe: str, kind: str) -> Path:
        return self._once((recipe, kind), lambda: self._compress(recipe, kind))

    def _compress(self, recipe: str, kind: str) -> Path:
        run_dir = self.run(recipe)
        out = run_dir / f"compressed-{kind}"
        option = {"prune": ["--prune", "0.3"], "int8": ["--quantize", "int8"],
                  "distill": ["--distill-from", run_dir]}[kind]
        option += COMPRESS_OPTIONS.get((recipe, kind), [])
        _cli("compress", run_dir, *option, "--out", out, "--speed-rounds", "1",
             "--calibration-size", "16", "--fine-tune-epochs", "1")
        return out

    def inputs(self, recipe: str) -> tuple[Path, object]:
        """``(file for predict, the same inputs as the model takes them)``: images, texts or clips
        like the training data."""
        return self._once((recipe, "inputs"), lambda: self._inputs(self.run(recipe)))

    def _inputs(self, run_dir: Path) -> tuple[Path, object]:
        from bigmodel.models import read_model_spec

        metadata = read_model_spec(run_dir).get("metadata") or {}
        shape = metadata.get("input") or {}
        folder = run_dir / "inputs"
        folder.mkdir()
        if shape.get("kind") == "audio":
            from bigmodel.recipes.speech_data import load_wav_inputs

            for clip in sorted(self.data["speech"].rglob("*.wav"))[:8]:
                shutil.copy(clip, folder / clip.name)
            return folder, torch.as_tensor(load_wav_inputs(str(folder), shape)[1])
        if shape.get("kind") == "text" or shape.get("tokenizer"):
            from bigmodel.recipes.text_data import load_vocabulary, text_max_length
            from synthetic_fortunes import TOPICS

            texts = [" ".join(words[i:i + 3] + ["the", words[-1 - i]])
                     for i in range(3) for words in TOPICS.values()]
            path = folder / "texts.txt"
            path.write_text("\n".join(texts) + "\n")
            ids = load_vocabulary(run_dir, shape).encode_batch(
                texts, max_length=text_max_length(shape))
            return path, torch.as_tensor(np.asarray(ids))
        if {"channels", "height", "width"} <= set(shape):
            from bigmodel.data.image_input import prepare_images
            from synthetic_images import synthetic_images

            images = synthetic_images(12, np.random.default_rng(1))[0]
            path = folder / "images.npy"
            np.save(path, images)
            prepared = prepare_images(images, int(shape["channels"]), int(shape["height"]),
                                      int(shape["width"]), source=str(path))
            return path, torch.as_tensor(prepared)
        from bigmodel.models import load_model
        from bigmodel.recipes.exports import example_input_for

        return folder, example_input_for(run_dir, load_model(run_dir))


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Chain:
    return Chain(tmp_path_factory.mktemp("every_command"))


def _logits(model, inputs) -> torch.Tensor:
    from bigmodel.compress.quantize import Int8Model
    from bigmodel.recipes.inference import predict_logits

    if isinstance(model, Int8Model):
        return torch.as_tensor(model.predict(inputs))
    return predict_logits(model, inputs)


def _classes(directory: Path, inputs) -> torch.Tensor:
    from bigmodel.compress.saving import load_any

    return _logits(load_any(directory), inputs).argmax(dim=1)


def _class_names(run_dir: Path) -> list[str]:
    from bigmodel.models import read_model_spec

    return list((read_model_spec(run_dir).get("metadata") or {}).get("class_names") or [])


# ---- the steps -------------------------------------------------------------------------------

def _train(chain: Chain, recipe: str) -> None:
    run_dir = chain.run(recipe)
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), f"{name} is missing"
    with open(run_dir / "metrics.csv", newline="") as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert len(losses) >= 2 and losses[-1] < losses[0], f"the loss did not fall: {losses}"


def _numbers(text: str) -> dict[str, float]:
    """``name: number`` pairs of a command's output (``test accuracy: 0.9500 (64 images)``)."""
    return {name.strip().lower().replace("character", "char"): float(value) for name, value in
            re.findall(r"^\s*([A-Za-z][A-Za-z _-]*?):\s*([-+]?\d+\.\d+)", text, re.MULTILINE)}


def _evaluate(chain: Chain, recipe: str, directory: Path | None = None,
              expected: dict[str, float] | None = None) -> None:
    """evaluate prints the numbers the run measured on the same data (results.json: the test
    split, or a language model's validation split); ``expected``: other numbers to print."""
    run_dir = chain.run(recipe)
    printed = _numbers(_cli("evaluate", directory or run_dir))
    if expected is None:
        results = json.loads((run_dir / "results.json").read_text())["results"]
        split = "test" if "test" in results else "validation"
        expected = {f"{split} {key.replace('_', ' ')}": value
                    for key, value in results[split].items() if isinstance(value, (int, float))}
    assert set(expected) <= set(printed), f"evaluate printed {printed}; expected {expected}"
    for key, value in expected.items():
        assert printed[key] == pytest.approx(value, abs=1e-3), f"{key}: {printed[key]} vs {value}"


def _predict(chain: Chain, recipe: str, directory: Path | None = None) -> None:
    """predict --output FILE.json: one row per input, naming the class the model predicts."""
    run_dir = chain.run(recipe)
    source, inputs = chain.inputs(recipe)
    directory = directory or run_dir
    path = directory.parent / f"{directory.name}-predictions.json"
    _cli("predict", directory, source, "--output", path)
    rows = json.loads(path.read_text())["predictions"]
    names = _class_names(run_dir)
    expected = _classes(directory, inputs).tolist()
    assert len(rows) == len(expected), f"{len(expected)} inputs, {len(rows)} rows: {rows[:2]}"
    for row, index in zip(rows, expected):
        assert int(row["class_index"]) == index, (row, index)
        assert row["class"] == (names[index] if names else str(index)), (row, names)
    if directory != run_dir:
        return
    table = directory.parent / "predictions.csv"  # the same rows as CSV
    _cli("predict", directory, source, "--output", table)
    with open(table, newline="") as handle:
        assert [int(row["class_index"]) for row in csv.DictReader(handle)] == expected
    if source.suffix == ".txt":  # a text on the command line is one input
        text = source.read_text().splitlines()[0]
        path.unlink()
        _cli("predict", directory, text, "--output", path)
        rows = json.loads(path.read_text())["predictions"]
        assert [(row["text"], row["class_index"]) for row in rows] == [(text, expected[0])]


def _generate(chain: Chain, recipe: str) -> None:
    """The prompt followed by exactly --max-tokens characters; greedy decoding repeats itself."""
    run_dir = chain.run(recipe)
    greedy = [_cli("generate", run_dir, "--prompt", "the ", "--max-tokens", "8",
                   "--temperature", "0") for _ in range(2)]
    assert greedy[0] == greedy[1] and greedy[0].startswith("the ")
    assert len(greedy[0].rstrip("\n")) == len("the ") + 8, repr(greedy[0])
    sampled = _cli("generate", run_dir, "--prompt", "the ", "--max-tokens", "8",
                   "--temperature", "0.8", "--top-k", "5", "--seed", "1")
    assert sampled.startswith("the ") and len(sampled.rstrip("\n")) == len("the ") + 8


def _translate(chain: Chain, recipe: str) -> None:
    """One output line per input text, greedy and with beam search."""
    texts = ["5 apr 23", "12 may 2001"] if "dates" in recipe else ["4071", "12"]
    for beam in ("1", "2"):
        lines = _cli("translate", chain.run(recipe), *texts, "--beam", beam).splitlines()
        assert len(lines) == len(texts) and all(line.strip() for line in lines), lines


def _explain(chain: Chain, recipe: str, method: str) -> None:
    from PIL import Image

    from bigmodel.explain import Explanation

    run_dir = chain.run(recipe)
    out = run_dir / "explain" / method
    options = {"integrated_gradients": ["--steps", "8"], "kernel_shap": ["--samples", "16"],
               "lime": ["--samples", "16"], "gradient_shap": ["--samples", "4"]}.get(method, [])
    _cli("explain", run_dir, "--method", method, "--index", "0", "1", "--curve-steps", "4",
         "--output-dir", out, *options)
    numbers = json.loads((out / f"{method}.json").read_text())
    assert [entry["index"] for entry in numbers["examples"]] == [0, 1]
    for name in ("example_0.png", "example_1.png"):
        with Image.open(out / name) as image:
            assert min(image.size) > 50, f"{name}: {image.size}"
    explanation = Explanation.load(out / "explanation.safetensors")
    assert len(explanation) == 2
    attributions = np.asarray(explanation.attributions)
    assert np.isfinite(attributions).all() and np.abs(attributions).sum() > 0
    if explanation.input_type == "tokens":
        page = (out / "tokens.html").read_text()
        assert "<pad>" not in page, "the token page shows padding"


def _export_onnx(chain: Chain, recipe: str) -> None:
    import onnxruntime

    from bigmodel.models import load_model

    run_dir = chain.run(recipe)
    path = run_dir / "exported" / "model.onnx"
    _cli("export", run_dir, "--format", "onnx", "--out", path)
    inputs = chain.inputs(recipe)[1]
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    inputs = tuple(x[:4] for x in inputs)
    model = load_model(run_dir).eval()
    with torch.no_grad():
        expected = model(*inputs)
    expected = expected[0] if isinstance(expected, (tuple, list)) else expected
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {spec.name: x.numpy() for spec, x in zip(session.get_inputs(), inputs)}
    got = session.run(None, feeds)[0]
    assert got.shape == tuple(expected.shape)
    difference = float(np.abs(got - expected.numpy()).max())
    assert difference <= 1e-4, f"ONNX Runtime vs PyTorch max abs difference {difference}"


def _export_safetensors(chain: Chain, recipe: str) -> None:
    from bigmodel.compress.saving import load_any

    run_dir = chain.run(recipe)
    out = run_dir / "exported-safetensors"
    _cli("export", run_dir, "--format", "safetensors", "--out", out)
    inputs = chain.inputs(recipe)[1]
    if isinstance(inputs, tuple):
        return
    assert torch.equal(_logits(load_any(out), inputs), _logits(load_any(run_dir), inputs))


def _compress(chain: Chain, recipe: str, kind: str) -> None:
    run_dir = chain.run(recipe)
    out = chain.stage(recipe, kind)
    stage = out / STAGES[kind]
    assert (out / "report.md").is_file() and (stage / "model.json").is_file()
    inputs = chain.inputs(recipe)[1]
    from bigmodel.compress.saving import load_any

    # Where the original is sure (top-2 probability margin >= 0.2): a tiny model near chance on
    # an input flips its class under any change of weights, and a fine-tuning epoch changes it.
    probabilities = torch.softmax(_logits(load_any(run_dir), inputs), dim=1)
    top = probabilities.topk(2, dim=1).values
    sure = (top[:, 0] - top[:, 1]) >= 0.2
    classes = _classes(stage, inputs)
    assert classes.shape == sure.shape
    if sure.sum() >= 2:
        same = (classes[sure] == probabilities.argmax(dim=1)[sure]).double().mean().item()
        assert same >= 0.8, (f"the {STAGES[kind]} model predicts the original's class on "
                             f"{same:.0%} of the {int(sure.sum())} inputs the original is sure of")


def _stage_accuracy(out: Path, stage: str) -> float:
    rows = json.loads((out / "results.json").read_text())
    return next(row["accuracy"] for row in rows if row["name"] == stage)


def _run_step(chain: Chain, recipe: str, step: str) -> None:
    command, _, what = step.partition(":")
    if step in ("train", "evaluate", "predict", "generate", "translate"):
        {"train": _train, "evaluate": _evaluate, "predict": _predict, "generate": _generate,
         "translate": _translate}[step](chain, recipe)
    elif command == "explain":
        _explain(chain, recipe, what)
    elif step == "export:onnx":
        _export_onnx(chain, recipe)
    elif step == "export:safetensors":
        _export_safetensors(chain, recipe)
    elif command == "compress":
        _compress(chain, recipe, what)
    else:  # evaluate / predict on a compressed stage
        kind = next(k for k, stage in STAGES.items() if stage == what)
        out = chain.stage(recipe, kind)
        if command == "evaluate":
            _evaluate(chain, recipe, out / what, {"test accuracy": _stage_accuracy(out, what)})
        else:
            _predict(chain, recipe, out / what)


@pytest.mark.parametrize(("recipe", "step"), _cases(applicable=True))
def test_step(chain, recipe, step):
    needs(recipe)
    if (recipe, step) in SLOW:
        pytest.skip(f"slow: {SLOW[(recipe, step)]}")
    quick = None if FULL_CHAIN else _full_chain_only(recipe, step)
    if quick is not None:
        pytest.skip(f"BIGMODEL_FULL_CHAIN=1 only ({quick})")
    if recipe in SAME_MODEL and step in SAME_MODEL_STEPS:
        pytest.skip(f"{step} runs on {SAME_MODEL[recipe][0]}: {SAME_MODEL[recipe][1]}")
    pinned = _lookup(BROKEN, recipe, _task(recipe), step)
    try:
        _run_step(chain, recipe, step)
    except Exception as exc:
        if pinned is not None and pinned in str(exc):
            raise StepBroken(str(exc)[-300:]) from exc
        raise


@pytest.mark.parametrize(("recipe", "step"), _cases(applicable=False))
def test_step_that_does_not_apply_is_refused(chain, recipe, step):
    needs(recipe)
    pinned = _lookup(BROKEN, recipe, _task(recipe), step)
    try:
        with pytest.raises(CommandFailed, match=r"exited 2: \S") as failure:
            _run_step(chain, recipe, step)
        reason, says = _lookup(NOT_APPLICABLE, recipe, _task(recipe), step)
        message = str(failure.value).split(" exited 2: ", 1)[1]
        assert re.search(says, message), f"the refusal should say /{says}/ ({reason}): {message}"
    except Exception as exc:
        if pinned is not None and pinned in str(exc):
            raise StepBroken(str(exc)[-300:]) from exc
        raise


def test_tables_name_real_recipes_and_steps():
    tasks = {_task(recipe) for recipe in RECIPES}
    for table in (NOT_APPLICABLE, BROKEN):
        for who, step in table:
            assert who in RECIPES or who in tasks, f"{who}: no such recipe or task"
            assert step in STEPS, f"{step}: no such step"
    assert not set(NOT_APPLICABLE) & set(BROKEN)
    assert all(recipe in RECIPES and step in STEPS for recipe, step in SLOW)
    for recipe, (same, _) in SAME_MODEL.items():
        assert recipe in RECIPES and same in RECIPES, (recipe, same)
