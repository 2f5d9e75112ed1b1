"""The four corpus models of ``keras_speed.py``, each written twice: with a Keras module given as an
argument (bigmodel's ``keras`` or real Keras 3, so both run literally the same model code), and as a
hand-written ``nn.Module`` with the same layers and parameter count, plus its minimal loop.

Sources (``tests/keras_programs/``): the seed CNN (basic_classification's CNN sibling,
seed-examples/seed_cnn.py), bidirectional_lstm_text.py, toy_resnet.py,
text_classification_transformer.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import _common as common
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# batch sizes as in the programs; predict batch is Keras's default (32) except where the program
# sets one. The optimizer is the program's, set up in torch with Keras's defaults.
SPECS: dict[str, dict[str, Any]] = {
    "cnn": {"batch": 32, "predict_batch": 32},
    "lstm": {"batch": 32, "predict_batch": 32, "vocab": 2000, "maxlen": 48},
    "resnet": {"batch": 64, "predict_batch": 32},
    "transformer": {"batch": 32, "predict_batch": 32, "vocab": 2000, "maxlen": 64},
}


def data(name: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Generated inputs and targets of the shapes and dtypes the program feeds ``fit``."""
    rng = np.random.default_rng(seed)
    spec = SPECS[name]
    if name in ("cnn", "resnet"):
        x = rng.random((n, 28, 28, 1), dtype=np.float32)
        labels = rng.integers(0, 10, n)
        y = labels if name == "cnn" else np.eye(10, dtype=np.float32)[labels]
        return x, y
    x = rng.integers(1, spec["vocab"], (n, spec["maxlen"]))
    if name == "lstm":
        return x, rng.integers(0, 2, (n, 1)).astype(np.float32)
    return x, rng.integers(0, 2, n)


# ------------------------------------------------------------------------------ Keras-API models
def build_keras(keras: Any, name: str) -> Any:
    layers = keras.layers
    if name == "cnn":
        return keras.Sequential([
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"), layers.Flatten(),
            layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])
    if name == "lstm":
        inputs = keras.Input(shape=(None,), dtype="int32")
        x = layers.Embedding(SPECS["lstm"]["vocab"], 32)(inputs)
        x = layers.Bidirectional(layers.LSTM(32, return_sequences=True))(x)
        x = layers.Bidirectional(layers.LSTM(32))(x)
        return keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x))
    if name == "resnet":
        inputs = keras.Input(shape=(28, 28, 1), name="img")
        x = layers.Conv2D(16, 3, activation="relu")(inputs)
        x = layers.Conv2D(32, 3, activation="relu")(x)
        block_1_output = layers.MaxPooling2D(3)(x)
        x = layers.Conv2D(32, 3, activation="relu", padding="same")(block_1_output)
        x = layers.Conv2D(32, 3, activation="relu", padding="same")(x)
        block_2_output = layers.add([x, block_1_output])
        x = layers.Conv2D(32, 3, activation="relu", padding="same")(block_2_output)
        x = layers.Conv2D(32, 3, activation="relu", padding="same")(x)
        block_3_output = layers.add([x, block_2_output])
        x = layers.Conv2D(32, 3, activation="relu")(block_3_output)
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dense(64, activation="relu")(x)
        x = layers.Dropout(0.5)(x)
        return keras.Model(inputs, layers.Dense(10)(x), name="toy_resnet")
    return _keras_transformer(keras)


def _keras_transformer(keras: Any) -> Any:
    """text_classification_transformer.py's model, its two custom layers verbatim."""
    layers, ops = keras.layers, keras.ops

    class TransformerBlock(layers.Layer):
        def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
            super().__init__()
            self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.ffn = keras.Sequential(
                [layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim)])
            self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
            self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
            self.dropout1 = layers.Dropout(rate)
            self.dropout2 = layers.Dropout(rate)

        def call(self, inputs):
            attn_output = self.dropout1(self.att(inputs, inputs))
            out1 = self.layernorm1(inputs + attn_output)
            ffn_output = self.dropout2(self.ffn(out1))
            return self.layernorm2(out1 + ffn_output)

    class TokenAndPositionEmbedding(layers.Layer):
        def __init__(self, maxlen, vocab_size, embed_dim):
            super().__init__()
            self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
            self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

        def call(self, x):
            maxlen = ops.shape(x)[-1]
            positions = self.pos_emb(ops.arange(start=0, stop=maxlen, step=1))
            return self.token_emb(x) + positions

    spec = SPECS["transformer"]
    inputs = layers.Input(shape=(spec["maxlen"],))
    x = TokenAndPositionEmbedding(spec["maxlen"], spec["vocab"], 32)(inputs)
    x = TransformerBlock(32, 2, 32)(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.1)(x)
    x = layers.Dense(20, activation="relu")(x)
    x = layers.Dropout(0.1)(x)
    return keras.Model(inputs=inputs, outputs=layers.Dense(2, activation="softmax")(x))


def compile_args(keras: Any, name: str) -> dict[str, Any]:
    """The program's ``compile`` arguments (metrics included, as the programs have them)."""
    if name == "cnn":
        return {"optimizer": "adam", "loss": "sparse_categorical_crossentropy",
                "metrics": ["accuracy"]}
    if name == "lstm":
        return {"optimizer": "adam", "loss": "binary_crossentropy", "metrics": ["accuracy"]}
    if name == "resnet":
        return {"optimizer": keras.optimizers.RMSprop(1e-3),
                "loss": keras.losses.CategoricalCrossentropy(from_logits=True), "metrics": ["acc"]}
    return {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}


# ------------------------------------------------------------------------------ hand-written torch
class TorchBiLSTM(nn.Module):
    """Embedding, two bidirectional ``nn.LSTM``s, a linear head (logits)."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, 32)
        self.lstm1 = _one_bias(nn.LSTM(32, 32, batch_first=True, bidirectional=True))
        self.lstm2 = _one_bias(nn.LSTM(64, 32, batch_first=True, bidirectional=True))
        self.fc = nn.Linear(64, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, _ = self.lstm1(self.emb(x))
        _, (h, _) = self.lstm2(seq)
        return self.fc(torch.cat([h[0], h[1]], dim=-1))


def _one_bias(lstm: nn.LSTM) -> nn.LSTM:
    """Keras's LSTM has one bias per gate, ``nn.LSTM`` two (b_ih + b_hh): turn each b_hh into a
    zero buffer so the parameter count (and the trained quantities) are Keras's."""
    for wname in lstm._flat_weights_names:
        if "bias_hh" in wname:
            zeros = torch.zeros_like(getattr(lstm, wname))
            delattr(lstm, wname)
            lstm.register_buffer(wname, zeros)
    lstm._init_flat_weights()
    return lstm


class TorchToyResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 16, 3), nn.Conv2d(16, 32, 3)
        self.b = nn.ModuleList(nn.Conv2d(32, 32, 3, padding=1) for _ in range(4))
        self.c3 = nn.Conv2d(32, 32, 3)
        self.fc1, self.fc2, self.drop = nn.Linear(32, 64), nn.Linear(64, 10), nn.Dropout(0.5)

    def forward(self, x_nhwc: torch.Tensor) -> torch.Tensor:
        x = x_nhwc.permute(0, 3, 1, 2)
        x = F.max_pool2d(F.relu(self.c2(F.relu(self.c1(x)))), 3)
        for i in (0, 2):
            x = F.relu(self.b[i + 1](F.relu(self.b[i](x)))) + x
        x = F.relu(self.c3(x)).mean(dim=(2, 3))
        return self.fc2(self.drop(F.relu(self.fc1(x))))


class TorchTransformer(nn.Module):
    """Token + position embedding, one post-norm block with 2 heads of size 32 (Keras's
    ``key_dim=embed_dim``, so the attention width is 64, not ``nn.MultiheadAttention``'s 32)."""

    def __init__(self, vocab: int, maxlen: int, dim: int = 32, heads: int = 2, ff: int = 32) -> None:
        super().__init__()
        self.heads, self.key_dim = heads, dim
        self.tok, self.pos = nn.Embedding(vocab, dim), nn.Embedding(maxlen, dim)
        self.q, self.k, self.v = (nn.Linear(dim, heads * dim) for _ in range(3))
        self.o = nn.Linear(heads * dim, dim)
        self.ln1, self.ln2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.ff1, self.ff2 = nn.Linear(dim, ff), nn.Linear(ff, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 20), nn.Linear(20, 2)
        self.drop = nn.Dropout(0.1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n = tokens.shape
        x = self.tok(tokens) + self.pos(torch.arange(n))

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, self.key_dim).transpose(1, 2)

        att = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)))
        att = self.o(att.transpose(1, 2).reshape(b, n, -1))
        x = self.ln1(x + self.drop(att))
        x = self.ln2(x + self.drop(self.ff2(F.relu(self.ff1(x)))))
        x = self.drop(x.mean(dim=1))
        return self.fc2(self.drop(F.relu(self.fc1(x))))


def build_torch(name: str) -> tuple[nn.Module, torch.optim.Optimizer, Callable, Callable]:
    """(module, optimizer, loss(logits, y), predict-output(logits)) for a model name."""
    softmax = lambda z: F.softmax(z, dim=-1)  # noqa: E731
    if name == "cnn":
        module = common.TorchSeedCNN().to(memory_format=torch.channels_last)
        return module, _adam(module), F.cross_entropy, softmax
    if name == "lstm":
        module = TorchBiLSTM(SPECS["lstm"]["vocab"])
        return module, _adam(module), F.binary_cross_entropy_with_logits, torch.sigmoid
    if name == "resnet":
        module = TorchToyResNet().to(memory_format=torch.channels_last)
        opt = torch.optim.RMSprop(module.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
        return module, opt, F.cross_entropy, lambda z: z  # from_logits: predict returns logits
    module = TorchTransformer(SPECS["transformer"]["vocab"], SPECS["transformer"]["maxlen"])
    return module, _adam(module), F.cross_entropy, softmax


def _adam(module: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(module.parameters(), lr=1e-3, eps=1e-7)  # Keras's epsilon


def torch_fit(module: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable,
              x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """One shuffled epoch of the minimal loop; returns the last loss (read once, at the end)."""
    module.train()
    order = torch.randperm(x.shape[0])
    loss = torch.zeros(())
    for start in range(0, x.shape[0], batch_size):
        index = order[start:start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(module(x.index_select(0, index)), y.index_select(0, index))
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def torch_predict(module: nn.Module, out_fn: Callable, x: torch.Tensor,
                  batch_size: int) -> np.ndarray:
    module.eval()
    with torch.inference_mode():
        out = [out_fn(module(x[s:s + batch_size])) for s in range(0, x.shape[0], batch_size)]
    return torch.cat(out).numpy()
