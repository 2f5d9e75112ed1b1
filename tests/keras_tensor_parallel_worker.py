"""Keras programs for the tensor-parallel tests; run alone (the one-process reference) or under
``torchrun --nproc-per-node 2`` (mesh ``(1, 2)``: one batch group, the model axis over both).
``keras_distributed_worker.py`` calls :func:`run` at its end (one torchrun launch for both).

Usage: ``keras_tensor_parallel_worker.py OUT_DIR [dp-tp]`` (``dp-tp``: 4 processes, mesh (2, 2)). Writes ``OUT_DIR/rank{R}.npz`` (initial and
final weights from ``get_weights()``, predictions, the reloaded ``.keras`` archive's weights) and
``OUT_DIR/rank{R}.json`` (history, evaluation, per-process stored parameters, layer roles,
bad-input messages).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from bigmodel import keras
from bigmodel.errors import BigModelError
from bigmodel.keras import distribution, layers

RANK = int(os.environ.get("RANK", 0))
WORLD = int(os.environ.get("WORLD_SIZE", 1))


def data(samples: int = 24, seed: int = 3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, 6)).astype("float32")
    y = (x[:, :3].argmax(axis=1)).astype("int64")
    return x, y


def megatron_mlp() -> keras.Model:
    """Dense(col) -> Dense(row) (the pair exchanges no gather) -> Dense(col, gathered) -> head."""
    return keras.Sequential([keras.Input((6,)), layers.Dense(8, activation="relu", name="up"),
                             layers.Dense(6, activation="tanh", name="down"),
                             layers.Dense(4, activation="relu", name="wide"),
                             layers.Dense(3, activation="softmax", name="head")])


def layout(entries: dict, shape=(1, WORLD)) -> None:
    mesh = distribution.DeviceMesh(shape, ["batch", "model"][:len(shape)])
    layout_map = distribution.LayoutMap(mesh)
    for key, axes in entries.items():
        layout_map[key] = axes
    distribution.set_distribution(distribution.ModelParallel(layout_map=layout_map,
                                                             batch_dim_name="batch"))


MLP_LAYOUT = {"up/kernel": (None, "model"), "up/bias": ("model",), "down/kernel": ("model", None),
              "wide/kernel": (None, "model")}


def stored_parameters(model: keras.Model) -> dict[str, int]:
    from torch.distributed.tensor import DTensor

    return {name: (p.to_local() if isinstance(p, DTensor) else p).numel()
            for name, p in model.named_parameters()}


def errors(out: dict) -> None:
    """Bad input: each message is recorded; none of these may hang or reach a collective."""
    attention_input = keras.Input((4, 8))
    attention = layers.MultiHeadAttention(2, 4, name="mha")
    cases = {
        "divisible": ({"up/kernel": (None, "model"), "head/kernel": ("model", None)},
                      lambda: keras.Sequential([keras.Input((6,)), layers.Dense(8, name="up"),
                                                layers.Dense(5, name="odd"),
                                                layers.Dense(3, name="head")])),
        "attention": ({"up/kernel": (None, "model"), "mha/query_kernel": (None, "model", None)},
                      lambda: keras.Model(attention_input, layers.Dense(3)(layers.Flatten()(
                          attention(layers.Dense(8, name="up")(attention_input),
                                    attention_input))))),
        "row_bias": ({"down/kernel": ("model", None), "down/bias": ("model",)}, megatron_mlp),
    }
    for name, (entries, build) in cases.items():
        try:
            layout(entries)
            model = build()
            model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
            x = np.zeros((4, 4, 8) if name == "attention" else (4, 6), "float32")
            model.fit(x, np.zeros(4, "int64"), batch_size=4, epochs=1, verbose=0)
            out[f"error_{name}"] = None
        except BigModelError as err:
            out[f"error_{name}"] = f"{type(err).__name__}: {err}"
        finally:
            distribution.set_distribution(None)
    try:  # an axis name the mesh does not have
        layout({"up/kernel": (None, "tensor")})
        out["error_axis"] = None
    except BigModelError as err:
        out["error_axis"] = f"{type(err).__name__}: {err}"


def train(model: keras.Model) -> dict:
    """Compile and fit ``model`` as every run here does; returns the history."""
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model.fit(*data(), batch_size=8, epochs=3, shuffle=False, verbose=0).history


def data_and_tensor_parallel(out: Path) -> None:
    """4 processes, mesh (2, 2): two batch groups, each a tensor-parallel pair."""
    torch.manual_seed(0)
    layout(MLP_LAYOUT, shape=(WORLD // 2, 2))
    model = megatron_mlp()
    history = train(model)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / f"rank{RANK}.npz", *model.get_weights())
    (out / f"rank{RANK}.json").write_text(json.dumps({
        "history": history, "partition": list(model._data_partition),
        "stored": stored_parameters(model)}))


ATTENTION_LAYOUT = {"mha/(query|key|value)_kernel": (None, "model", None),
                    "mha/(query|key|value)_bias": ("model", None),
                    "mha/output_kernel": ("model", None, None),
                    "up/kernel": (None, "model"), "down/kernel": ("model", None)}


def attention_model() -> keras.Model:
    """Self-attention split by heads, then a column -> row Dense pair (a Transformer block)."""
    inputs = keras.Input((4, 6))
    mixed = layers.MultiHeadAttention(2, 3, name="mha")(inputs, inputs)
    hidden = layers.Dense(6, name="down")(layers.Dense(8, activation="relu", name="up")(mixed))
    outputs = layers.Dense(3, activation="softmax", name="head")(layers.Flatten()(hidden + mixed))
    return keras.Model(inputs, outputs)


def attention(results: dict, arrays: dict) -> None:
    torch.manual_seed(0)
    if WORLD > 1:
        layout(ATTENTION_LAYOUT)
    model = attention_model()
    # SGD: the key bias's gradient is 0 up to rounding (softmax ignores a per-query constant),
    # which Adam would blow up to full-size steps of rounding noise.
    model.compile(optimizer=keras.optimizers.SGD(0.2), loss="sparse_categorical_crossentropy")
    x, y = data()
    x = np.tile(x[:, None, :], (1, 4, 1)) * np.linspace(0.5, 1.5, 4, dtype="float32")[None, :, None]
    results["attention_history"] = model.fit(x, y, batch_size=8, epochs=2, shuffle=False,
                                             verbose=0).history
    # compiled again (as for fine-tuning): the layers stay split, training goes on
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    results["attention_stored"] = stored_parameters(model)
    arrays.update({f"attention/{i}": w for i, w in enumerate(model.get_weights())})
    arrays["attention/predict"] = model.predict(x[:6], batch_size=2, verbose=0)
    distribution.set_distribution(None)


def dropout(arrays: dict) -> None:
    """Dropout after a gathered column-parallel layer: the processes of the pair must draw the
    same mask (else the replicated head's gradients, and so its weights, would differ)."""
    torch.manual_seed(0)
    if WORLD > 1:
        layout({"wide/kernel": (None, "model")})
    model = keras.Sequential([keras.Input((6,)), layers.Dense(8, activation="relu", name="wide"),
                              layers.Dropout(0.5), layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    model.fit(*data(), batch_size=8, epochs=1, verbose=0)
    arrays.update({f"dropout/{i}": w for i, w in enumerate(model.get_weights())})
    distribution.set_distribution(None)


def fsdp(results: dict, arrays: dict) -> None:
    """A 1-D mesh lays the kernels out over the batch axis: FSDP (ZeRO-3) storage sharding."""
    torch.manual_seed(0)
    if WORLD > 1:
        layout({"up/kernel": (None, "batch"), "down/kernel": ("batch", None)}, shape=(WORLD,))
    model = megatron_mlp()
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
    model.fit(*data(), batch_size=8, epochs=2, shuffle=False, verbose=0)
    results["fsdp_stored"] = stored_parameters(model)
    results["fsdp_plan"] = type(getattr(model, "_shard_plan", None)).__name__
    arrays.update({f"fsdp/{i}": w for i, w in enumerate(model.get_weights())})
    distribution.set_distribution(None)


def run(out: Path) -> None:
    """Train, save and check the tensor-parallel MLP; write this process's results under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    results: dict = {}
    torch.manual_seed(0)  # the same initial weights on every process and in the reference
    if WORLD > 1:
        layout(MLP_LAYOUT)
    model = megatron_mlp()
    arrays.update({f"initial/{i}": w for i, w in enumerate(model.get_weights())})
    x, y = data()
    results["history"] = train(model)
    results["evaluate"] = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    results["stored"] = stored_parameters(model)
    results["roles"] = {layer.name: role for layer, role in
                        getattr(getattr(model, "_shard_plan", None), "roles", {}).items()}
    arrays["predict"] = model.predict(x[:10], batch_size=4, verbose=0)
    results["keep_sharded"] = sorted(layer.name for layer in
                                     getattr(getattr(model, "_shard_plan", None), "keep_sharded", ()))
    if WORLD > 1:  # the collectives of one forward pass, counted by DTensor's debug mode
        from torch.distributed.tensor.debug import CommDebugMode

        with CommDebugMode() as comms, torch.no_grad():
            model(torch.as_tensor(x[:4]))
        results["comms"] = {str(op).split(".")[-1]: count
                            for op, count in comms.get_comm_counts().items()}
    arrays.update({f"final/{i}": w for i, w in enumerate(model.get_weights())})
    model.save(str(out / "mlp.keras"))
    model.set_weights([arrays[f"initial/{i}"] for i in range(8)])  # each process keeps its slice
    arrays.update({f"reset/{i}": w for i, w in enumerate(model.get_weights())})
    reloaded = keras.models.load_model(str(out / "mlp.keras"))
    arrays.update({f"reloaded/{i}": w for i, w in enumerate(reloaded.get_weights())})
    distribution.set_distribution(None)
    dropout(arrays)
    attention(results, arrays)
    fsdp(results, arrays)
    if WORLD > 1:
        errors(results)
    np.savez(out / f"rank{RANK}.npz", **arrays)
    (out / f"rank{RANK}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    if sys.argv[2:] == ["dp-tp"]:
        data_and_tensor_parallel(Path(sys.argv[1]))
    else:
        run(Path(sys.argv[1]))
