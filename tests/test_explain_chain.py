"""``bigmodel explain`` across task types: faithfulness curves of every method on padded texts,
and methods that do not apply refused before any work, naming the ones that do."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import torch

from bigmodel.cli.main import main
from bigmodel.errors import ConfigError
from bigmodel.explain import explain
from bigmodel.explain.metrics import deletion_insertion
from bigmodel.models import create_model
from bigmodel.recipes.explanations import ExplainRequest, explain_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _padded_texts() -> torch.Tensor:
    ids = torch.randint(3, 40, (2, 12), generator=torch.Generator().manual_seed(0))
    ids[0, 5:] = 0  # five words, then padding
    ids[1, 8:] = 0
    return ids


def test_attention_deletion_curve_of_a_padded_text_keeps_the_ids():
    """Deleting every word of an attention explanation used to replace all ids by padding, a row
    the Transformer classifier refuses ("input row is empty"); words are now removed through the
    embedding, as for the gradient methods, so the padding mask stays the text's."""
    torch.manual_seed(0)
    model = create_model("transformer-classifier", vocab_size=40, num_classes=3, max_length=12,
                         d_model=16, num_heads=2, num_layers=1, dff=32, dropout=0.0).eval()
    ids = _padded_texts()
    with pytest.raises(Exception, match="only padding"):  # the model's own refusal
        model(torch.zeros(1, 12, dtype=torch.long))
    result = explain(model, ids, method="attention")
    curves = deletion_insertion(model, result, steps=4, n_random=2)
    # Reference for "every word removed": a copy whose every embedding row is the padding id's,
    # run on the text's own ids (so its padding mask).
    blank = copy.deepcopy(model)
    with torch.no_grad():
        blank.embedding.weight[:] = model.embedding.weight[0]
        original = model(ids).softmax(-1)[torch.arange(2), result.targets]
        removed = blank(ids).softmax(-1)[torch.arange(2), result.targets]
    torch.testing.assert_close(curves.deletion[:, 0], original, atol=1e-5, rtol=0)
    torch.testing.assert_close(curves.insertion[:, -1], original, atol=1e-5, rtol=0)
    torch.testing.assert_close(curves.deletion[:, -1], removed, atol=1e-5, rtol=0)
    torch.testing.assert_close(curves.insertion[:, 0], removed, atol=1e-5, rtol=0)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_vit_attention_reads_its_class_token_by_default(pool):
    """A ViT's attention covers 1 + 4 x 4 tokens: the class token it prepends is found (it used
    to be refused as "17 attention tokens do not form a square grid"); with [CLS] pooling the
    map is the class token's rollout row, else the mean row, over the 16 patches only."""
    from bigmodel.explain.attention import attention_rollout

    torch.manual_seed(0)
    model = create_model("vit", image_size=8, patch_size=2, num_classes=3, d_model=8,
                         num_heads=2, num_layers=2, dff=16, dropout=0.0, pool=pool).eval()
    images = torch.rand(2, 1, 8, 8)
    result = explain(model, images, method="attention")
    rollout = attention_rollout(list(result.extras["attention"].values()))
    assert rollout.shape == (2, 17, 17)
    row = rollout[:, 0, 1:] if pool == "cls" else rollout.mean(dim=1)[:, 1:]
    expected = row.reshape(2, 1, 4, 4).repeat_interleave(2, -1).repeat_interleave(2, -2)
    torch.testing.assert_close(result.attributions, expected, atol=1e-6, rtol=0)


def test_speech_transformer_attention_spreads_frame_tokens_over_time():
    """A speech Transformer attends over (subsampled) time frames of its spectrogram, not over
    image patches (it used to be refused as "51 attention tokens do not form a square grid"):
    each spectrogram column gets its frame token's rollout relevance, at every frequency."""
    from bigmodel.explain.attention import attention_rollout

    torch.manual_seed(0)
    model = create_model("speech-transformer", num_classes=2, d_model=8, num_heads=2,
                         num_layers=1, dff=16, dropout_rate=0.0, clip_seconds=0.2, n_mels=8,
                         freq_masks=0, time_masks=0).eval()
    with torch.no_grad():
        spectrograms = model.spectrogram(0.1 * torch.randn(2, 3200)).unsqueeze(1)  # (2, 1, 8, 21)
    result = explain(model, spectrograms, method="attention")
    rollout = attention_rollout(list(result.extras["attention"].values()))
    frames = spectrograms.shape[-1]
    tokens = rollout.shape[-1]
    assert tokens == (frames - 1) // 2 + 1  # the stride-2 subsampling
    relevance = rollout.mean(dim=1)  # (2, tokens)
    column = [int(j * tokens / frames) for j in range(frames)]  # nearest frame token
    expected = relevance[:, column][:, None, None, :].expand(2, 1, 8, frames)
    torch.testing.assert_close(result.attributions, expected, atol=1e-6, rtol=0)


# -- bigmodel explain on runs ------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny runs: the seed CNN, a fine-tuning of it, and a seq2seq run (one epoch each)."""
    from tiny_recipes import CONFIGS, FINETUNE, TINY, data_sets, write_tiny_data

    root = tmp_path_factory.mktemp("explain_chain")
    data = write_tiny_data(root / "data")

    def run(argv, sets):
        assert main([*argv, *[part for s in sets for part in ("--set", s)]]) == 0

    made = {name: root / name for name in ("fashion_cnn", "finetune_fashion_cnn", "seq2seq")}
    run(["train", str(CONFIGS / "fashion_cnn.yaml"), "--run-dir", str(made["fashion_cnn"])],
        [*data_sets("fashion_cnn.yaml", data), "train.epochs=1"])
    run(["finetune", str(made["fashion_cnn"]), str(CONFIGS / "finetune_fashion_cnn.yaml"),
         "--run-dir", str(made["finetune_fashion_cnn"])],
        [*data_sets("finetune_fashion_cnn.yaml", data),
         *FINETUNE["finetune_fashion_cnn.yaml"][1], "train.epochs=1"])
    run(["train", str(CONFIGS / "seq2seq_dates.yaml"), "--run-dir", str(made["seq2seq"])],
        [*TINY["seq2seq_dates.yaml"], "train.epochs=1"])
    return made


def test_seq2seq_run_is_refused_naming_its_task(runs, capsys):
    assert main(["explain", str(runs["seq2seq"]), "--method", "attention"]) != 0
    err = capsys.readouterr().err
    assert "sequence-to-sequence run" in err and "no explanation method applies" in err
    assert "Traceback" not in err and not (runs["seq2seq"] / "explain").exists()


def test_a_method_that_does_not_apply_is_refused_before_the_data_is_read(runs, tmp_path):
    """The CNN has no attention layers: refused naming the methods that apply, before the test
    set is read (here its recipe is gone, which reading the data would report instead)."""
    run_dir = tmp_path / "run"
    shutil.copytree(runs["fashion_cnn"], run_dir)
    (run_dir / "recipe.yaml").unlink()
    request = ExplainRequest(str(run_dir), method="attention")
    with pytest.raises(ConfigError, match="method 'attention' does not apply") as caught:
        explain_run(request)
    applying = str(caught.value).split("Methods that apply:")[1]
    assert "gradcam" in applying and "integrated_gradients" in applying
    assert "attention" not in applying and not (run_dir / "explain").exists()


def test_finetune_run_explains_its_own_test_split(runs, tmp_path):
    """A fine-tuning run's examples come from its fine-tuning recipe (its recipe.yaml used to
    be refused: "unknown key 'finetune'"), with the labels evaluate scores."""
    from bigmodel.recipes.finetune_schema import load_finetune_recipe
    from bigmodel.recipes.tasks.finetune import prepare_data

    run_dir = runs["finetune_fashion_cnn"]
    numbers = explain_run(ExplainRequest(str(run_dir), method="saliency", index=[0, 2],
                                         curve_steps=2, output_dir=str(tmp_path / "out")))
    recipe = load_finetune_recipe(run_dir / "recipe.yaml")
    split = prepare_data(recipe.data, None, recipe.train.seed or 0)
    assert [entry["label"] for entry in numbers["examples"]] == split.y_test[[0, 2]].tolist()
    assert (tmp_path / "out" / "example_2.png").is_file()
    assert (tmp_path / "out" / "saliency.json").is_file()


def test_texts_are_explained_without_their_trailing_padding(tmp_path):
    """Texts padded to a run's max_length are cut after the longest chosen text's last token
    (the attributions and each deletion curve then cover words, not mostly padding); the
    predictions are those of the padded texts."""
    import numpy as np

    from bigmodel.explain import Explanation
    from bigmodel.models import save_model

    torch.manual_seed(0)
    model = create_model("transformer-classifier", vocab_size=20, num_classes=2, max_length=12,
                         d_model=8, num_heads=2, num_layers=1, dff=16, dropout=0.0).eval()
    words = ["<pad>", *[f"w{i}" for i in range(1, 20)]]
    save_model(model, tmp_path / "run", metadata={"vocabulary": words})
    ids = np.zeros((2, 12), dtype=np.int64)
    ids[0, :3], ids[1, :5] = [4, 5, 6], [7, 8, 9, 10, 11]
    np.save(tmp_path / "ids.npy", ids)
    numbers = explain_run(ExplainRequest(str(tmp_path / "run"), method="integrated_gradients",
                                         index=[0, 1], input=str(tmp_path / "ids.npy"),
                                         options={"n_steps": 4}, curve_steps=5,
                                         output_dir=str(tmp_path / "out")))
    saved = Explanation.load(tmp_path / "out" / "explanation.safetensors")
    assert saved.inputs.tolist() == ids[:, :5].tolist()  # the longest text has 5 tokens
    assert saved.attributions.shape == (2, 5)
    with torch.no_grad():
        expected = model(torch.as_tensor(ids)).softmax(-1)
    got = [entry["probability_predicted"] for entry in numbers["examples"]]
    np.testing.assert_allclose(got, expected.max(dim=-1).values.numpy(), atol=1e-5)


def test_finetuned_text_run_explains_a_text_with_its_wordpiece_tokenizer(tmp_path):
    """A run of `bigmodel finetune` on text records only `input.tokenizer` (no `kind`); a text
    given with --input is encoded by that tokenizer (it used to be read as an image file)."""
    import json

    from bigmodel.explain import Explanation
    from bigmodel.models import save_model
    from test_tokenizer_protocol import wordpiece_document

    torch.manual_seed(0)
    model = create_model("transformer-classifier", vocab_size=12, num_classes=2, max_length=8,
                         d_model=8, num_heads=2, num_layers=1, dff=16, dropout=0.0)
    run_dir = tmp_path / "run"
    save_model(model, run_dir, metadata={
        "class_names": ["a", "b"], "finetuned_from": "tiny",
        "input": {"max_length": 8, "tokenizer": "tokenizer.json"}})
    (run_dir / "tokenizer.json").write_text(json.dumps(wordpiece_document()))
    explain_run(ExplainRequest(str(run_dir), method="saliency", input="the cats sat",
                               curve_steps=0, output_dir=str(tmp_path / "out")))
    saved = Explanation.load(tmp_path / "out" / "explanation.safetensors")
    assert saved.inputs.tolist() == [[2, 4, 5, 7, 6, 3]]  # [CLS] the cat ##s sat [SEP]
    assert saved.tokens == [["[CLS]", "the", "cat", "##s", "sat", "[SEP]"]]
