"""``bigmodel generate`` / ``translate`` and ``evaluate`` / ``predict`` on language-model and seq2seq
runs: tiny trained runs, outputs checked against hand-run decoding loops over the saved model, the
run's own results.json reproduced, and every bad input refused with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bigmodel.cli.main import main
from bigmodel.data.tokenizers import load_tokenizer
from bigmodel.errors import ConfigError, DataError, DataFileError
from bigmodel.models import load_model
from bigmodel.recipes.generation import generate_from_run, read_lines, translate_with_run
from bigmodel.recipes.runs import evaluate_run, predict_run

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BLOCK = 16  # the tiny language model's context: generations below cross it
TINY_LM = ["train.epochs=2", "train.lr=0.005", "train.scheduler=null", "train.batch_size=16",
           "data.categories=[debian]", "data.train_subset=96", "data.test_subset=161",
           "model.overrides.num_layers=1", "model.overrides.d_model=32",
           "model.overrides.num_heads=2", f"model.overrides.max_length={BLOCK}",
           "model.overrides.dropout=0.0"]
TINY_SEQ2SEQ = ["train.epochs=2", "train.lr=0.003", "train.scheduler=null", "train.batch_size=32",
                "data.train_subset=128", "data.test_subset=16", "data.validation_split=0.25",
                "model.overrides.num_layers=1", "model.overrides.d_model=32",
                "model.overrides.dff=64", "model.overrides.num_heads=2"]
DATES = ["5 apr 23", "20230405", "4/5/2023"]


def _train(config: str, run_dir: Path, sets: list[str]) -> None:
    argv = ["train", str(CONFIGS / config), "--run-dir", str(run_dir)]
    for item in sets:
        argv += ["--set", item]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(argv) == 0
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory) -> Path:
    from bigmodel.data.fortunes import find_fortunes_dir

    try:
        find_fortunes_dir(None, ("debian",))
    except DataFileError as exc:
        pytest.skip(f"fortunes not installed: {exc}")
    run_dir = tmp_path_factory.mktemp("lm") / "run"
    _train("fortunes_char_gpt.yaml", run_dir, TINY_LM)
    return run_dir


@pytest.fixture(scope="module")
def seq2seq_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("s2s") / "run"
    _train("seq2seq_dates.yaml", run_dir, TINY_SEQ2SEQ)
    return run_dir


def _argmax_loop(model, ids: list[int], steps: int) -> list[int]:
    """Greedy decoding by hand: one uncached forward pass per token over the last ``max_length``
    ids (the sliding window the command documents)."""
    ids = list(ids)
    with torch.no_grad():
        for _ in range(steps):
            window = torch.tensor([ids[-model.max_length:]])
            ids.append(int(model(window)[0, -1].argmax()))
    return ids


# --------------------------------------------------------------------------------- generate
@pytest.fixture(scope="module")
def sharp_lm_run(lm_run, tmp_path_factory) -> Path:
    """The tiny run with large random weights: its next character depends on the whole window (the
    tiny trained model mostly follows the last character), so a wrong window changes the output."""
    import shutil

    from bigmodel.models import read_model_spec, save_model

    run_dir = tmp_path_factory.mktemp("sharp") / "run"
    shutil.copytree(lm_run, run_dir)
    model = load_model(lm_run)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    save_model(model, run_dir, metadata=read_model_spec(lm_run)["metadata"])
    return run_dir


def test_greedy_generation_is_the_argmax_loop_also_past_the_context(sharp_lm_run, capsys):
    lm_run = sharp_lm_run
    model = load_model(lm_run)
    tokenizer = load_tokenizer(lm_run / "tokenizer.json")
    prompt = "The "
    for steps in (5, 3 * BLOCK):  # inside the context (KV cache), then sliding past it
        [sample] = generate_from_run(lm_run, prompt, steps, temperature=0)
        assert len(sample.ids) == len(prompt) + steps
        assert sample.ids == _argmax_loop(model, tokenizer.encode(prompt), steps)
        assert sample.text == tokenizer.decode(sample.ids, skip_special_tokens=False)
        assert sample.text.startswith(prompt)
    # a prompt longer than the context keeps all of it in front of the new characters
    long_prompt = "The cat " * 3
    [sample] = generate_from_run(lm_run, long_prompt, 4, temperature=0)
    assert sample.ids == _argmax_loop(model, tokenizer.encode(long_prompt), 4)
    assert main(["generate", str(lm_run), "--prompt", prompt, "--max-tokens", "7",
                 "--temperature", "0"]) == 0
    assert capsys.readouterr().out == generate_from_run(lm_run, prompt, 7, 0)[0].text + "\n"


def test_top_k_one_is_greedy_and_seeded_sampling_repeats(lm_run, capsys):
    greedy = generate_from_run(lm_run, "The ", 2 * BLOCK, temperature=0)[0].ids
    assert generate_from_run(lm_run, "The ", 2 * BLOCK, temperature=1.0, top_k=1)[0].ids == greedy
    first = generate_from_run(lm_run, "The ", 2 * BLOCK, 1.0, top_k=10, seed=3, num_samples=3)
    again = generate_from_run(lm_run, "The ", 2 * BLOCK, 1.0, top_k=10, seed=3, num_samples=3)
    other = generate_from_run(lm_run, "The ", 2 * BLOCK, 1.0, top_k=10, seed=4, num_samples=3)
    assert [s.ids for s in first] == [s.ids for s in again]
    assert [s.ids for s in first] != [s.ids for s in other]
    assert len(first) == 3 and all(len(s.ids) == 4 + 2 * BLOCK for s in first)
    assert len({tuple(s.ids) for s in first}) > 1  # the samples are independent draws
    assert main(["generate", str(lm_run), "--prompt", "The ", "--max-tokens", "5", "--seed", "3",
                 "--num-samples", "2", "--top-k", "10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("--- sample 1 ---\nThe ") and "--- sample 2 ---\nThe " in out


def test_generate_refuses_bad_input(lm_run, seq2seq_run, capsys):
    with pytest.raises(DataError, match=r"not in the vocabulary.*'€'"):
        generate_from_run(lm_run, "The €", 5)
    for kwargs, message in (({"max_tokens": 0}, "--max-tokens must be a positive integer"),
                            ({"temperature": -0.5}, "--temperature must be a finite number"),
                            ({"temperature": float("nan")}, "--temperature"),
                            ({"top_k": 0}, "--top-k must be a positive integer"),
                            ({"num_samples": 0}, "--num-samples must be a positive integer"),
                            ({"prompt": ""}, "--prompt must hold at least one character")):
        arguments = {"prompt": "The ", "max_tokens": 5, **kwargs}
        with pytest.raises(ConfigError, match=message):
            generate_from_run(lm_run, **arguments)
    with pytest.raises(ConfigError, match="generate needs a language_model run.*seq2seq run.*"
                                          "bigmodel translate"):
        generate_from_run(seq2seq_run, "5", 5)
    assert main(["generate", str(lm_run), "--prompt", "ünïcode"]) == 2
    assert "'ï', 'ü'" in capsys.readouterr().err


# -------------------------------------------------------------------------------- translate
def test_translate_is_the_library_greedy_decode_and_beam_one_is_greedy(seq2seq_run, tmp_path,
                                                                      capsys):
    from bigmodel.models.transformer import TransformerModel

    source = load_tokenizer(seq2seq_run / "source_tokenizer.json")
    target = load_tokenizer(seq2seq_run / "target_tokenizer.json")
    model = TransformerModel.load(seq2seq_run)
    expected = model.translate(DATES, tokenizer=source, target_tokenizer=target)
    assert translate_with_run(seq2seq_run, DATES) == expected
    assert translate_with_run(seq2seq_run, DATES, beam_size=1, batch_size=1) == expected
    # the greedy decode by hand: encoder once, argmax of the teacher-forced logits per step
    with torch.no_grad():
        ids = [model.bos_id]
        for _ in range(model.max_length - 1):
            logits = model(torch.tensor([source.encode(DATES[0])]), torch.tensor([ids]))
            ids.append(int(logits[0, -1].argmax()))
            if ids[-1] == model.eos_id:
                break
    by_hand = [t for t in ids[1:] if t != model.eos_id]
    assert translate_with_run(seq2seq_run, DATES[:1]) == [target.decode(by_hand)]
    beams = translate_with_run(seq2seq_run, DATES, beam_size=3)
    assert len(beams) == 3 and all(isinstance(b, str) for b in beams)
    assert beams == model.translate(DATES, tokenizer=source, target_tokenizer=target, beam_size=3)
    short = translate_with_run(seq2seq_run, DATES, max_length=2)
    assert all(len(target.encode(s)) <= 2 for s in short)
    # the command: texts, then the lines of --input (blank lines skipped), one line per input
    lines = tmp_path / "dates.txt"
    lines.write_text(f"{DATES[1]}\n\n  {DATES[2]}  \n", encoding="utf-8")
    assert read_lines(lines) == DATES[1:]
    assert main(["translate", str(seq2seq_run), f" {DATES[0]}  ", "--input", str(lines)]) == 0
    assert capsys.readouterr().out.split("\n") == [*expected, ""]


def test_translate_refuses_bad_input(seq2seq_run, lm_run, tmp_path, capsys):
    with pytest.raises(DataError, match=r"text 2 .* not in the source vocabulary.*'€'"):
        translate_with_run(seq2seq_run, ["5 apr 23", "5 €"])
    with pytest.raises(DataError, match="text 1 is empty"):
        translate_with_run(seq2seq_run, ["  "])
    with pytest.raises(DataError, match="no text given"):
        translate_with_run(seq2seq_run, [])
    with pytest.raises(DataError, match="tokens; the model reads at most 48"):
        translate_with_run(seq2seq_run, ["1" * 49])
    with pytest.raises(ConfigError, match="--beam must be a positive integer; received 0"):
        translate_with_run(seq2seq_run, DATES, beam_size=0)
    with pytest.raises(ConfigError, match="--max-length must be at most 47"):
        translate_with_run(seq2seq_run, DATES, max_length=48)
    with pytest.raises(ConfigError, match="--max-length must be a positive integer"):
        translate_with_run(seq2seq_run, DATES, max_length=0)
    with pytest.raises(ConfigError, match="translate needs a seq2seq run.*language_model run"):
        translate_with_run(lm_run, DATES)
    with pytest.raises(DataFileError, match="file not found"):
        read_lines(tmp_path / "missing.txt")
    (tmp_path / "blank.txt").write_text("\n \n", encoding="utf-8")
    with pytest.raises(DataError, match="holds no text"):
        read_lines(tmp_path / "blank.txt")
    assert main(["translate", str(seq2seq_run)]) == 2
    assert "give the texts to decode" in capsys.readouterr().err
    assert main(["translate", str(tmp_path / "nope"), "x"]) == 2
    assert "Run directory not found" in capsys.readouterr().err


# ----------------------------------------------------------------------- evaluate / predict
def test_evaluate_repeats_the_runs_own_measurement(seq2seq_run, lm_run, capsys):
    for run_dir, split, keys in ((seq2seq_run, "test", ("loss", "accuracy", "exact_match")),
                                 (lm_run, "validation", ("loss", "bits_per_char",
                                                         "bigram_bits_per_char"))):
        saved = json.loads((run_dir / "results.json").read_text())
        before = sorted(p.name for p in run_dir.iterdir())
        result = evaluate_run(run_dir)
        assert sorted(p.name for p in run_dir.iterdir()) == before  # nothing written
        for key in keys:
            assert result["results"][split][key] == pytest.approx(
                saved["results"][split][key], rel=1e-5, abs=1e-7), (run_dir, key)
        assert result["value"] == pytest.approx(saved[result["headline"]], rel=1e-5)
        assert main(["evaluate", str(run_dir)]) == 0
        out = capsys.readouterr().out
        assert f"{result['headline']}: {result['value']:.4f}" in out
    assert "validation" in evaluate_run(seq2seq_run)["results"]  # the recipe held out a quarter
    with pytest.raises(ConfigError, match="generated from the recipe's seed"):
        evaluate_run(seq2seq_run, data_path="/tmp")


def test_evaluate_reads_fortunes_from_data_path(lm_run, tmp_path):
    from bigmodel.data.fortunes import find_fortunes_dir

    real = find_fortunes_dir(None, ("debian",))
    saved = json.loads((lm_run / "results.json").read_text())["results"]["validation"]
    moved = evaluate_run(lm_run, data_path=str(real))["results"]["validation"]
    assert moved["bits_per_char"] == pytest.approx(saved["bits_per_char"], rel=1e-5)
    with pytest.raises(DataFileError, match="missing debian"):
        evaluate_run(lm_run, data_path=str(tmp_path))
    (tmp_path / "debian").write_text("Other text, other characters: éè\n%\nMore.\n%\n"
                                     * 40, encoding="utf-8")
    with pytest.raises(DataError, match="the data changed since training"):
        evaluate_run(lm_run, data_path=str(tmp_path))


def test_evaluate_refuses_data_that_changed(seq2seq_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(seq2seq_run, copy)
    recipe = (copy / "recipe.yaml").read_text()
    (copy / "recipe.yaml").write_text(recipe.replace("train_subset: 128", "train_subset: 6"))
    with pytest.raises(DataError, match="the data changed since training"):
        evaluate_run(copy)


def test_a_classification_run_is_pointed_to_predict(tmp_path):
    from bigmodel.models import create_model, save_model

    save_model(create_model("seed-cnn"), tmp_path, metadata={"task": "image_classification"})
    with pytest.raises(ConfigError, match="generate needs a language_model run; .* is an "
                                          "image_classification run; use 'bigmodel predict"):
        generate_from_run(tmp_path, "The ", 5)
    with pytest.raises(ConfigError, match="translate needs a seq2seq run; .*bigmodel predict"):
        translate_with_run(tmp_path, DATES)


def test_predict_points_sequence_runs_to_their_command(seq2seq_run, lm_run, capsys):
    with pytest.raises(ConfigError, match="seq2seq run.*use 'bigmodel translate"):
        predict_run(seq2seq_run, "5 apr 23")
    with pytest.raises(ConfigError, match="language_model run.*use 'bigmodel generate"):
        predict_run(lm_run, "The ")
    assert main(["predict", str(lm_run), "The "]) == 2
    assert "bigmodel generate" in capsys.readouterr().err
