"""GPT, ViT and TransformerClassifier: counts, causality, KV-cache generation, learning, files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bigmodel.engine import Trainer
from bigmodel.errors import ConfigError, DataError, ShapeError
from bigmodel.models import create_model, load_model, save_model
from bigmodel.models.gpt import GPT, GPT2_SMALL, language_model_loss
from bigmodel.models.transformer_classifier import TransformerClassifier
from bigmodel.models.vit import ViT


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------ GPT
def test_gpt2_small_has_124m_parameters():
    with torch.device("meta"):
        model = GPT(**GPT2_SMALL)
    assert model.num_parameters() == 124_439_808  # GPT-2 small with its tied head
    d, layers, vocab, length = 768, 12, 50257, 1024
    non_embedding = layers * (12 * d * d + 13 * d) + 2 * d
    assert model.num_parameters(non_embedding=True) == non_embedding
    assert model.flops_per_token() == 6 * (non_embedding + vocab * d) + 12 * layers * d * length


@pytest.mark.parametrize("positional", ["learned", "rope"])
def test_gpt_is_causal(positional):
    torch.manual_seed(0)
    model = GPT(vocab_size=20, max_length=16, d_model=16, num_heads=2, num_layers=2,
                positional=positional)
    captured = {}

    def keep_input(module, args):
        args[0].retain_grad()
        captured["x"] = args[0]

    model.blocks.register_forward_pre_hook(keep_input)
    logits = model(torch.randint(0, 20, (1, 8)))
    for t in range(8):
        captured["x"].grad = None
        logits[0, t].sum().backward(retain_graph=True)
        grad = captured["x"].grad[0]
        assert grad[t + 1:].abs().sum() == 0, t
        assert grad[: t + 1].abs().sum(-1).min() > 0, t


@pytest.mark.parametrize("positional", ["learned", "rope"])
def test_kv_cached_generation_equals_full_forward(positional):
    torch.manual_seed(1)
    model = GPT(vocab_size=30, max_length=24, d_model=32, num_heads=4, num_layers=2,
                positional=positional).eval()
    prompt = torch.randint(0, 30, (3, 5))
    generated = model.generate(prompt, max_new_tokens=10, temperature=0)
    assert generated.shape == (3, 15) and torch.equal(generated[:, :5], prompt)
    full = model(generated)
    torch.testing.assert_close(full[:, 4:-1].argmax(-1), generated[:, 5:])  # greedy = argmax
    caches = model.new_caches()
    pieces = [model(generated[:, :5], caches)]
    pieces += [model(generated[:, t: t + 1], caches, offset=t) for t in range(5, 15)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)


def test_sampling_is_reproducible_and_top_k_one_is_greedy():
    torch.manual_seed(2)
    model = GPT(vocab_size=30, max_length=32, d_model=16, num_heads=2, num_layers=1)
    prompt = torch.randint(0, 30, (2, 3))
    a = model.generate(prompt, 12, temperature=1.3, top_p=0.9, seed=7)
    b = model.generate(prompt, 12, temperature=1.3, top_p=0.9, seed=7)
    assert torch.equal(a, b)
    assert torch.equal(model.generate(prompt, 12, top_k=1, seed=3),
                       model.generate(prompt, 12, temperature=0))
    stopped = model.generate(prompt, 12, temperature=0, eos_id=int(a[0, 4]))
    assert stopped.shape[1] <= 15


def test_gpt_learns_a_pattern_and_round_trips(tmp_path):
    torch.manual_seed(3)
    model = create_model("gpt", vocab_size=12, max_length=32, d_model=32, num_heads=2,
                         num_layers=2)
    pattern = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6] * 40)
    windows = torch.stack([pattern[i: i + 17] for i in range(0, 256, 2)])
    trainer = Trainer(model, loss=language_model_loss, optimizer="adamw", lr=3e-3, verbose=0,
                      device="cpu")
    history = trainer.fit((windows[:, :-1], windows[:, 1:]), epochs=12, batch_size=32)
    losses = history.history["loss"]
    assert losses[-1] < 0.1 * losses[0]
    continuation = model.generate(torch.tensor([[3, 1, 4]]), 8, temperature=0)
    assert continuation[0, 3:].tolist() == [1, 5, 9, 2, 6, 3, 1, 4]
    save_model(model, tmp_path / "gpt")
    loaded = load_model(tmp_path / "gpt")
    assert loaded.lm_head.weight is loaded.token_embedding.weight
    prompt = torch.tensor([[5, 9, 2]])
    assert torch.equal(loaded.generate(prompt, 10, temperature=0.8, seed=1),
                       model.generate(prompt, 10, temperature=0.8, seed=1))


def test_gpt_gradients_reach_every_parameter():
    model = GPT(vocab_size=20, max_length=8, d_model=16, num_heads=2, num_layers=2, dropout=0.1)
    ids = torch.randint(0, 20, (2, 8))
    language_model_loss(model(ids[:, :-1]), ids[:, 1:]).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_gpt_bad_input():
    with pytest.raises(ConfigError, match="divisible by num_heads; received d_model=10, num_heads=4"):
        GPT(d_model=10, num_heads=4)
    with pytest.raises(ConfigError, match="'positional' must be 'learned' or 'rope'"):
        GPT(positional="alibi")
    model = GPT(vocab_size=10, max_length=8, d_model=8, num_heads=2, num_layers=1)
    with pytest.raises(ShapeError, match="9 tokens at position 0 exceed the context length "
                                         "max_length=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(DataError, match=r"token id 10, outside the vocabulary \[0, 10\)"):
        model(torch.tensor([[1, 10]]))
    with pytest.raises(DataError, match="token id -1"):
        model(torch.tensor([[1, -1]]))
    with pytest.raises(ShapeError, match="empty sequence"):
        model(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ConfigError, match="prompt length 5 \\+ max_new_tokens 4"):
        model.generate(torch.zeros(1, 5, dtype=torch.long), 4)


# ------------------------------------------------------------------------------ ViT
def test_vit_shapes_layouts_and_classifier_surface():
    torch.manual_seed(4)
    model = ViT(image_size=28, patch_size=7, d_model=32, num_heads=4, num_layers=2, dff=64).eval()
    images = torch.rand(3, 1, 28, 28)
    logits = model(images)
    assert logits.shape == (3, 10)
    torch.testing.assert_close(model(images.permute(0, 2, 3, 1)), logits)
    torch.testing.assert_close(model(images[:, 0]), logits)
    features = model.forward_features(images)
    assert features.shape == (3, 17, 32)
    assert model.forward_head(features, pre_logits=True).shape == (3, 32)
    maps = model.attention_maps(images)
    assert len(maps) == 2 and maps[0].shape == (3, 4, 17, 17)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(3, 4, 17))
    model.reset_classifier(4)
    assert model(images).shape == (3, 4) and model.get_config()["num_classes"] == 4
    params = sum(p.numel() for p in model.parameters())
    patch = 49 * 32 + 32
    block = 4 * (32 * 32 + 32) + (32 * 64 + 64) + (64 * 32 + 32) + 4 * 32
    assert params == patch + 32 + 17 * 32 + 2 * block + 2 * 32 + (32 * 4 + 4)


def test_vit_learns_a_spatial_task():
    # Label = which quadrant holds the bright square: needs position information.
    torch.manual_seed(5)
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (256,), generator=generator)
    images = torch.rand(256, 1, 16, 16, generator=generator) * 0.3
    for index, label in enumerate(labels.tolist()):
        row, col = divmod(label, 2)
        images[index, 0, row * 8 + 2: row * 8 + 6, col * 8 + 2: col * 8 + 6] += 0.7
    model = ViT(image_size=16, patch_size=4, num_classes=4, d_model=32, num_heads=2,
                num_layers=2, dff=64, dropout=0.0)
    trainer = Trainer(model, loss=F.cross_entropy, optimizer="adam", lr=3e-3, metrics=["accuracy"],
                      verbose=0, device="cpu")
    trainer.fit((images[:192], labels[:192]), epochs=10, batch_size=32)
    assert trainer.evaluate((images[192:], labels[192:]))["accuracy"] >= 0.9


def test_vit_bad_input():
    with pytest.raises(ConfigError, match="multiple of patch_size=5"):
        ViT(image_size=28, patch_size=5)
    with pytest.raises(ConfigError, match="'pool' must be 'cls' or 'mean'"):
        ViT(pool="max")
    model = ViT()
    with pytest.raises(ShapeError, match=r"expects images \(B, 1, 28, 28\)"):
        model(torch.rand(2, 1, 32, 32))
    with pytest.raises(Exception, match="floating-point"):
        model(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


# ------------------------------------------------------------------------------ text classifier
@pytest.mark.parametrize("pooling", ["mean", "max", "cls"])
def test_classifier_padding_does_not_change_logits(pooling):
    torch.manual_seed(6)
    model = TransformerClassifier(vocab_size=50, num_classes=3, max_length=10, d_model=16,
                                  num_heads=2, dff=32, pooling=pooling).eval()
    short, long = torch.tensor([[5, 6, 7]]), torch.tensor([[8, 9, 10, 11, 12, 13]])
    batch = torch.tensor([[5, 6, 7, 0, 0, 0], [8, 9, 10, 11, 12, 13]])
    together = model(batch)
    torch.testing.assert_close(together[0], model(short)[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(together[1], model(long)[0], atol=1e-5, rtol=1e-5)
    maps = model.attention_maps(batch)
    assert maps[0][0, :, :, -3:].abs().max() == 0  # nobody attends to padding


def test_classifier_learns_and_bad_input():
    torch.manual_seed(7)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 20, size=(384, 10))
    labels = (ids == 7).any(axis=1).astype(np.int64)
    model = create_model("transformer-classifier", vocab_size=20, num_classes=2, d_model=32,
                         dropout=0.0)
    trainer = Trainer(model, loss=F.cross_entropy, optimizer="adam", lr=2e-3,
                      metrics=["accuracy"], verbose=0, device="cpu")
    trainer.fit((ids[:320], labels[:320]), epochs=10, batch_size=32)
    assert trainer.evaluate((ids[320:], labels[320:]))["accuracy"] >= 0.9
    with pytest.raises(DataError, match="row 1 is empty"):
        model(torch.tensor([[3, 4], [0, 0]]))
    with pytest.raises(ShapeError, match="length 129, longer than max_length=128"):
        model(torch.ones(1, 129, dtype=torch.long))
    with pytest.raises(DataError, match="token id 20"):
        model(torch.tensor([[3, 20]]))
    with pytest.raises(ConfigError, match="'pooling' must be one of"):
        TransformerClassifier(pooling="attention")


def test_gpt_throughput_benchmark_runs_on_a_tiny_setting():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpt_throughput.py"
    spec = importlib.util.spec_from_file_location("_bench_gpt_throughput", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--d-model", "16", "--layers", "1", "--heads", "2", "--length", "8",
                          "--batch", "2", "--vocab", "11", "--rounds", "1", "--steps", "1"])
    assert result["ratio"] > 0 and result["flops_per_token"] > 0 and result["mfu_bigmodel"] > 0


def test_char_lm_benchmark_runs_on_a_tiny_setting(tmp_path):
    import importlib.util
    from pathlib import Path

    from bigmodel.data.fortunes import find_fortunes_dir
    from bigmodel.errors import DataFileError

    try:
        find_fortunes_dir()
    except DataFileError as exc:
        pytest.skip(f"fortunes not installed: {exc}")
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "char_lm_fortunes.py"
    spec = importlib.util.spec_from_file_location("_bench_char_lm", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--threads", "1", "--steps", "2", "--validation-chars", "2000",
                          "--set", "train.epochs=1", "--set", "model.overrides.d_model=16",
                          "--set", "model.overrides.num_layers=1",
                          "--set", "model.overrides.num_heads=2", "--set",
                          "model.overrides.max_length=32", "--run-dir", str(tmp_path / "run")])
    assert result["gpt_bits_per_char"] > 0 and 0 < result["bigram_bits_per_char"] < 8
    assert result["sample"].startswith("The ")
    assert (tmp_path / "run" / "tokenizer.json").is_file()
