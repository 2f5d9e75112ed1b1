"""The Python work per batch of ``predict`` and ``fit`` on Keras-corpus models stays bounded.

bigmodel's speed target (issue 15: ``fit``/``predict`` at hand-written PyTorch speed) is lost on
small models through fixed per-batch Python work: layer dispatch, input checks, graph walks. Wall
clock is no test on a shared machine, but the number of Python function calls per batch is
deterministic: these budgets (measured value + ~10%) fail when a change adds per-batch work,
e.g. a layer call that scans its input for symbolic tensors again, an input check that walks the
graph on every call, or ``torch.broadcast_shapes`` back in attention.
"""

from __future__ import annotations

import cProfile
import pstats

import numpy as np
import torch

from bigmodel import keras
from bigmodel.keras import layers, ops
from bigmodel.keras.layers.layer_state import LOSS_LAYERS
from bigmodel.keras.model_inputs import integer_input

BATCHES = 20


class TransformerBlock(layers.Layer):
    """text_classification_transformer.py's block (keras.io), verbatim but smaller."""

    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
        super().__init__()
        self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential([layers.Dense(ff_dim, activation="relu"),
                                     layers.Dense(embed_dim)])
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = layers.Dropout(rate)
        self.dropout2 = layers.Dropout(rate)

    def call(self, inputs):
        attn_output = self.dropout1(self.att(inputs, inputs))
        out1 = self.layernorm1(inputs + attn_output)
        return self.layernorm2(out1 + self.dropout2(self.ffn(out1)))


class TokenAndPositionEmbedding(layers.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim):
        super().__init__()
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        positions = self.pos_emb(ops.arange(start=0, stop=ops.shape(x)[-1], step=1))
        return self.token_emb(x) + positions


def _transformer() -> keras.Model:
    inputs = layers.Input(shape=(12,))
    x = TokenAndPositionEmbedding(12, 50, 8)(inputs)
    x = TransformerBlock(8, 2, 8)(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.1)(x)
    x = layers.Dense(6, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(2, activation="softmax")(x))


def _bilstm() -> keras.Model:
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(50, 8)(inputs)
    x = layers.Bidirectional(layers.LSTM(4, return_sequences=True))(x)
    x = layers.Bidirectional(layers.LSTM(4))(x)
    return keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x))


def _calls_per_batch(fn) -> float:
    # Layers with add_loss() values that other tests' models left alive would add the per-step
    # loss collection; they are set aside while counting.
    others = list(LOSS_LAYERS)
    LOSS_LAYERS.clear()
    try:
        fn()  # warm: first-call work (caches, verified signatures) is not per batch
        profiler = cProfile.Profile()
        profiler.enable()
        fn()
        profiler.disable()
    finally:
        for layer in others:
            LOSS_LAYERS.add(layer)
    return sum(entry[1] for entry in pstats.Stats(profiler).stats.values()) / BATCHES


def _data(kind: str):
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 50, (BATCHES, 12))
    if kind == "transformer":
        return tokens, rng.integers(0, 2, BATCHES)
    return tokens, rng.integers(0, 2, (BATCHES, 1)).astype("float32")


def test_transformer_predict_and_fit_python_calls_per_batch():
    model = _transformer()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _data("transformer")
    # 505 / 1038 calls per batch with the layers' direct path and the replay plan (720 / 1213
    # before them; 871 / 1362 before the dispatch work of issue 15)
    predict = _calls_per_batch(lambda: model.predict(x, batch_size=1, verbose=0))
    assert predict < 560, predict
    fit = _calls_per_batch(lambda: model.fit(x, y, batch_size=1, verbose=0))
    assert fit < 1140, fit


def test_bidirectional_lstm_predict_python_calls_per_batch():
    model = _bilstm()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    x, y = _data("lstm")
    # 373 / 822 with the layers' direct path (393 / 818 before; 539 / 963 before the fused
    # Bidirectional path and the dispatch work)
    predict = _calls_per_batch(lambda: model.predict(x, batch_size=1, verbose=0))
    assert predict < 415, predict
    fit = _calls_per_batch(lambda: model.fit(x, y, batch_size=1, verbose=0))
    assert fit < 880, fit


def test_per_call_answers_are_kept_and_unchanged():
    """The kept integer-input answer is the graph's; outputs equal a fresh model's per-call path."""
    model = _transformer()
    assert integer_input(model, 0) is False  # float Input feeding a custom layer: cast to float
    lstm = _bilstm()
    assert integer_input(lstm, 0) is True
    assert lstm.__dict__["_integer_inputs"] == {0: True}
    x, _ = _data("lstm")
    with torch.no_grad():
        direct = lstm(torch.from_numpy(x))
    np.testing.assert_array_equal(lstm.predict(x, batch_size=4, verbose=0), direct.numpy())

