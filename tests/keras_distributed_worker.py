"""Keras programs for the distributed Keras tests; run alone (the one-process reference) or under
``torchrun --nproc-per-node 2`` (each process writes its own results).

Usage: ``keras_distributed_worker.py OUT_DIR [TWO_PROCESS_OUT_DIR]`` (the second: also resume
that run's BackupAndRestore folder on this one process). Writes ``OUT_DIR/rank{R}.npz`` (final weights,
predictions) and ``OUT_DIR/rank{R}.json`` (histories, evaluations, saves made by this process,
bad-input messages, per-process parameter counts); callbacks write under ``OUT_DIR/files``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

import keras_tensor_parallel_worker
from bigmodel import keras
from bigmodel.errors import BigModelError
from bigmodel.keras import layers
from bigmodel.keras import saving as saving_module

RANK = int(os.environ.get("RANK", 0))
WORLD = int(os.environ.get("WORLD_SIZE", 1))


def data(shape: tuple[int, ...], samples: int = 32, classes: int = 3, seed: int = 7):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, *shape)).astype("float32")
    y = (x.reshape(samples, -1)[:, :classes].argmax(axis=1)).astype("int64")
    return x, y


def cnn() -> keras.Model:
    return keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
                             layers.MaxPooling2D(2), layers.Flatten(),
                             layers.Dense(3, activation="softmax")])


def lstm() -> keras.Model:
    return keras.Sequential([keras.Input((5, 3)), layers.LSTM(6), layers.Dense(3, activation="softmax")])


def mlp() -> keras.Model:
    return keras.Sequential([keras.Input((12,)), layers.Dense(64, activation="relu", name="d1"),
                             layers.Dense(64, activation="relu", name="d2"),
                             layers.Dense(3, activation="softmax", name="head")])


def train(build, shape, files: Path, *, callbacks: str | None) -> tuple[keras.Model, dict, dict]:
    torch.manual_seed(0)
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x, y = data(shape)
    vx, vy = data(shape, samples=16, seed=8)
    found = []
    if callbacks == "cnn":
        found = [keras.callbacks.CSVLogger(str(files / "log.csv")),
                 keras.callbacks.ModelCheckpoint(str(files / "ckpt-{epoch}.keras")),
                 keras.callbacks.EarlyStopping(monitor="loss", patience=5),
                 keras.callbacks.TensorBoard(str(files / "tensorboard"))]
    elif callbacks == "lstm":
        found = [keras.callbacks.BackupAndRestore(str(files / "backup"), delete_checkpoint=False)]
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
                        validation_data=(vx, vy), callbacks=found)
    results = {"history": history.history,
               "evaluate": model.evaluate(vx, vy, batch_size=8, verbose=0, return_dict=True)}
    arrays = {"predict": model.predict(vx, batch_size=4, verbose=0)}
    return model, results, arrays


def local_parameters(model: keras.Model) -> int:
    from torch.distributed.tensor import DTensor

    return sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in model.parameters())


def full_weights(model: keras.Model) -> list[np.ndarray]:
    from torch.distributed.tensor import DTensor

    return [(p.full_tensor() if isinstance(p, DTensor) else p).detach().numpy().copy()
            for _, p in sorted(model.named_parameters())]


def errors(out: dict) -> None:
    """Bad input: each message is recorded; none of these may hang or reach a collective."""
    from bigmodel.keras import distribution

    cases = {
        "batch": lambda: mlp_compiled().fit(*data((12,)), batch_size=7, epochs=1, verbose=0),
        "mesh": lambda: distribution.DeviceMesh((4,), ["batch"]),
        "layout": lambda: _fit_with_layout({"nope/kernel": (None, "model")}),
        "axis": lambda: _fit_with_layout({"d1/kernel": (None, "batch")}),
        "two_axes": lambda: _fit_with_layout({"d1/kernel": ("batch", "model")}),
        "differ": lambda: _differing_model().fit(*data((12,)), batch_size=8, epochs=1, verbose=0),
    }
    for name, case in cases.items():
        try:
            case()
            out[f"error_{name}"] = None
        except BigModelError as err:
            out[f"error_{name}"] = f"{type(err).__name__}: {err}"
        finally:
            distribution.set_distribution(None)


def _differing_model() -> keras.Model:
    model = keras.Sequential([keras.Input((12,)), layers.Dense(4 + RANK), layers.Dense(3)])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def mlp_compiled() -> keras.Model:
    model = mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def _fit_with_layout(entries: dict) -> None:
    from bigmodel.keras import distribution

    mesh = distribution.DeviceMesh((1, WORLD), ["batch", "model"])
    layout_map = distribution.LayoutMap(mesh)
    for key, axes in entries.items():
        layout_map[key] = axes
    distribution.set_distribution(distribution.ModelParallel(layout_map=layout_map,
                                                             batch_dim_name="batch"))
    mlp_compiled().fit(*data((12,)), batch_size=8, epochs=1, verbose=0)


def main(out_dir: str) -> int:
    out = Path(out_dir)
    files = out / "files"
    files.mkdir(parents=True, exist_ok=True)
    saves = []
    original = saving_module.save_model

    def counting_save(model, path, overwrite=True):
        saves.append(Path(path).name)
        original(model, path, overwrite=overwrite)

    saving_module.save_model = counting_save
    results: dict = {}
    arrays: dict = {}
    # predict and save before any fit: the group is joined there; rank 0's weights are used
    torch.manual_seed(RANK)  # different initial weights on each process
    fresh = cnn()
    arrays["fresh/predict"] = fresh.predict(data((8, 8, 1), samples=10)[0], batch_size=4, verbose=0)
    fresh.save(str(files / "fresh.keras"))
    arrays["fresh/reloaded"] = keras.models.load_model(str(files / "fresh.keras")).predict(
        data((8, 8, 1), samples=10)[0], verbose=0)
    for name, build, shape in (("cnn", cnn, (8, 8, 1)), ("lstm", lstm, (5, 3))):
        model, res, arr = train(build, shape, files, callbacks=name)
        results[name] = res
        arrays.update({f"{name}/{k}": v for k, v in arr.items()})
        arrays.update({f"{name}/w{i}": w for i, w in enumerate(full_weights(model))})
    # A new LSTM given the finished run's backup restores its weights (nothing left to train).
    torch.manual_seed(1)
    resumed = lstm()
    resumed.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    resumed.fit(*data((5, 3)), batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=[
        keras.callbacks.BackupAndRestore(str(files / "backup"), delete_checkpoint=False)])
    arrays.update({f"resumed/w{i}": w for i, w in enumerate(full_weights(resumed))})
    if len(sys.argv) > 2:  # one process resumes the 2-process run's backup (a sharded checkpoint)
        import shutil

        shutil.copytree(Path(sys.argv[2]) / "files" / "backup", files / "backup_of_two")
        torch.manual_seed(1)
        resumed = lstm()
        resumed.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
        resumed.fit(*data((5, 3)), batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=[
            keras.callbacks.BackupAndRestore(str(files / "backup_of_two"), delete_checkpoint=False)])
        arrays.update({f"resumed_of_two/w{i}": w for i, w in enumerate(full_weights(resumed))})
    # ModelParallel (FSDP) on a Dense-heavy model: kernels of d1 and d2 sharded.
    from bigmodel.keras import distribution

    if WORLD > 1:
        mesh = distribution.DeviceMesh((1, WORLD), ["batch", "model"])
        layout_map = distribution.LayoutMap(mesh)
        layout_map["d.*/kernel"] = (None, "model")
        distribution.set_distribution(distribution.ModelParallel(layout_map=layout_map,
                                                                 batch_dim_name="batch"))
    model, res, arr = train(mlp, (12,), files, callbacks=None)
    res["local_parameters"] = local_parameters(model)
    model.save(str(files / "mlp.keras"))
    distribution.set_distribution(None)
    results["mlp"] = res
    arrays.update({f"mlp/{k}": v for k, v in arr.items()})
    arrays.update({f"mlp/w{i}": w for i, w in enumerate(full_weights(model))})
    results["saves"] = saves
    # A callback that stops only rank 1: rank 0's decision (go on) holds on every process.
    class StopOnRankOne(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if RANK == 1:
                self.model.stop_training = True

    history = mlp_compiled().fit(*data((12,)), batch_size=8, epochs=3, verbose=0,
                                 callbacks=[StopOnRankOne()])
    results["stop_epochs"] = len(history.history["loss"])
    # Keras 3 gradient_accumulation_steps=2 at (global) batch 8 == batch 16 without it (SGD).
    for key, batch, steps in (("accum", 8, 2), ("accum_ref", 16, None)):
        torch.manual_seed(0)
        model = mlp()
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9, gradient_accumulation_steps=steps),
                      loss="sparse_categorical_crossentropy")
        model.fit(*data((12,)), batch_size=batch, epochs=2, shuffle=False, verbose=0)
        arrays.update({f"{key}/w{i}": w for i, w in enumerate(full_weights(model))})
    errors(results)
    saving_module.save_model = original  # the saves counted above are this program's
    keras_tensor_parallel_worker.run(out / "tp")  # tensor parallelism, in the same launch
    np.savez(out / f"rank{RANK}.npz", **arrays)
    (out / f"rank{RANK}.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
