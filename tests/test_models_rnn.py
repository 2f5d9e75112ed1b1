"""Recurrent models (plain PyTorch): the seed RNN against the Keras surface, the classifier surface,
padded batches, learning end to end (Trainer and the recipe), bad input."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.cli.main import main
from bigmodel.data.idx import write_idx
from bigmodel.engine import Trainer
from bigmodel.errors import ConfigError, DataError, ShapeError
from bigmodel.keras import layers
from bigmodel.models import create_model, load_model, save_model
from bigmodel.models.rnn import SequenceClassifier, SequenceRegressor, SequenceTagger

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_seed_rnn_matches_the_keras_seed_program():
    """Keras weights copied into the plain model give the same predictions: same equations."""
    torch.manual_seed(0)
    keras_model = keras.Sequential([layers.LSTM(128, input_shape=(None, 28), return_sequences=True),
                                    layers.LSTM(128), layers.Dense(10, activation="softmax")])
    model = create_model("seed-rnn").eval()
    assert sum(p.numel() for p in model.parameters()) == keras_model.count_params() == 213_258
    weights = keras_model.get_weights()
    model.encoder.rnn.set_keras_weights(weights[0:3], layer=0)
    model.encoder.rnn.set_keras_weights(weights[3:6], layer=1)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(weights[6]).T)
        model.classifier.bias.copy_(torch.from_numpy(weights[7]))
    images = np.random.default_rng(0).random((5, 28, 28)).astype(np.float32)
    expected = keras_model.predict(images, verbose=0)
    with torch.no_grad():
        for batch in (torch.from_numpy(images), torch.from_numpy(images)[:, None],
                      torch.from_numpy(images)[..., None]):  # (B,H,W), (B,1,H,W), (B,H,W,1)
            np.testing.assert_allclose(model(batch).softmax(-1).numpy(), expected, atol=1e-5)


def test_classifier_surface_and_config():
    model = create_model("rnn-classifier", input_size=6, num_classes=3, bidirectional=True,
                         cell="gru", num_layers=2)
    x = torch.randn(4, 9, 6)
    features = model.forward_features(x)
    assert features.shape == (4, 2 * 64)
    torch.testing.assert_close(model.forward_head(features), model(x))
    assert model.forward_head(features, pre_logits=True).shape == (4, 128)
    model.reset_classifier(5)
    assert model(x).shape == (4, 5) and model.num_classes == 5
    rebuilt = SequenceClassifier(**model.get_config())
    assert rebuilt.get_config() == model.get_config()
    tagger = create_model("rnn-tagger", num_tags=4)
    ids = torch.randint(1, 1000, (2, 7))
    assert tagger.forward_features(ids).shape == (2, 7, 256) and tagger(ids).shape == (2, 7, 4)
    tagger.reset_classifier(6)
    assert tagger(ids).shape == (2, 7, 6)
    regressor = create_model("rnn-regressor", input_size=3, output_size=2, cell="simple")
    assert regressor(torch.randn(2, 5, 3)).shape == (2, 5, 2)
    regressor.reset_head(1)
    assert regressor(torch.randn(2, 5, 3)).shape == (2, 5, 1)


def test_padded_batches_equal_each_sequence_alone(tmp_path):
    torch.manual_seed(0)
    classifier = create_model("rnn-classifier", input_size=3, bidirectional=True).eval()
    x = torch.randn(3, 8, 3)
    lengths = torch.tensor([8, 3, 5])
    batch = classifier(x, lengths=lengths)
    for row, length in enumerate(lengths):
        torch.testing.assert_close(batch[row], classifier(x[row:row + 1, :length])[0],
                                   atol=1e-5, rtol=1e-5)
    tagger = create_model("rnn-tagger", vocab_size=50, num_tags=3).eval()
    ids = torch.tensor([[5, 6, 7, 0, 0], [1, 2, 3, 4, 5]])
    tags = tagger(ids)
    torch.testing.assert_close(tags[0, :3], tagger(ids[:1, :3])[0], atol=1e-5, rtol=1e-5)
    save_model(tagger, tmp_path / "tagger")
    torch.testing.assert_close(load_model(tmp_path / "tagger")(ids), tags)


def test_regressor_learns_a_many_to_many_task():
    """y_t = x_{t-2}: the network must remember two steps back."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 10, 1, generator=generator)
    y = torch.zeros_like(x)
    y[:, 2:] = x[:, :-2]
    torch.manual_seed(0)
    model = SequenceRegressor(input_size=1, output_size=1, hidden_size=16, cell="gru")
    trainer = Trainer(model, loss="mse", optimizer="adam", lr=0.02, verbose=0, seed=0)
    before = trainer.evaluate((x, y))["loss"]
    trainer.fit((x, y), epochs=6, batch_size=32)
    after = trainer.evaluate((x, y))["loss"]
    assert after < 0.15 * before, (before, after)


@pytest.fixture
def tiny_fashion(tmp_path) -> Path:
    """Fashion-MNIST-shaped IDX files: class k has a bright band on rows 2k..2k+3."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 320), ("t10k", 64)):
        labels = rng.integers(0, 10, count).astype(np.uint8)
        images = rng.integers(0, 40, (count, 28, 28)).astype(np.uint8)
        for index, label in enumerate(labels):
            images[index, 2 * label + 4: 2 * label + 8] = 240
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", labels)
    return tmp_path


def test_fashion_lstm_recipe_trains_on_tiny_data(tiny_fashion, tmp_path, monkeypatch):
    monkeypatch.setenv("BIGMODEL_OFFLINE", "1")
    run_dir = tmp_path / "run"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["train", str(CONFIGS / "fashion_lstm.yaml"), "--run-dir", str(run_dir),
                     "--set", f"data.path={tiny_fashion}", "--set", "train.epochs=3",
                     "--set", "model.overrides.hidden_size=16", "--set", "train.lr=0.02"])
    assert code == 0, out.getvalue()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["model"] == "seed-rnn"
    assert results["results"]["test"]["accuracy"] > 0.8  # chance is 0.1
    model = load_model(run_dir)
    assert model.encoder.rnn.hidden_size == 16


def test_bad_input_errors():
    model = create_model("seed-rnn")
    with pytest.raises(ShapeError, match=r"SequenceClassifier expects images \(B, 28, 28\).*"
                                         r"\(2, 3, 28, 28\)"):
        model(torch.rand(2, 3, 28, 28))
    classifier = create_model("rnn-classifier", input_size=4)
    with pytest.raises(ShapeError, match=r"expects sequences \(B, T, 4\)"):
        classifier(torch.rand(2, 5, 3))
    with pytest.raises(DataError, match=r"every length must be in \[1, 5\]"):
        classifier(torch.rand(2, 5, 4), lengths=[0, 5])
    tagger = create_model("rnn-tagger")
    with pytest.raises(ShapeError, match=r"token ids \(B, T\) of integers"):
        tagger(torch.rand(2, 5))
    with pytest.raises(ShapeError, match="right padding"):
        tagger(torch.tensor([[0, 3, 4], [1, 2, 3]]))
    with pytest.raises(DataError, match=r"SequenceTagger: every length must be in \[1, 3\]"):
        tagger(torch.tensor([[0, 0, 0], [1, 2, 3]]))
    with pytest.raises(ConfigError, match="'cell' must be one of lstm, gru, simple"):
        create_model("rnn-classifier", cell="transformer")
    with pytest.raises(ConfigError, match=r"'dropout_rate' must be in \[0, 1\)"):
        SequenceTagger(dropout_rate=1.0)
