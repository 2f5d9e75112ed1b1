"""Keras models on Keras's step loop (custom ``train_step``, two optimizers, two outputs,
``add_loss``) for the distributed step-loop tests; run alone (the one-process reference) or under
``torchrun --nproc-per-node 2`` (each process writes its own results).

Usage: ``keras_distributed_steps_worker.py OUT_DIR``. Writes ``OUT_DIR/rank{R}.npz`` (final weights,
predictions) and ``OUT_DIR/rank{R}.json`` (histories, evaluations, callback logs, bad-input
messages). Every model is deterministic (no sampling in a step), so one process trained on the
same global batches in the same order must end with the same weights.
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
from bigmodel.keras import layers, ops

RANK = int(os.environ.get("RANK", 0))
WORLD = int(os.environ.get("WORLD_SIZE", 1))
SAMPLES, BATCH, EPOCHS = 32, 8, 2


def arrays(*shape: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(SAMPLES, *shape)).astype("float32")


def weights(model: keras.Model) -> dict[str, np.ndarray]:
    return {name: p.detach().numpy().copy() for name, p in sorted(model.named_parameters())}


class CustomStep(keras.Model):
    """keras.io's "Customizing what happens in fit()" (torch backend): its own train_step, and a
    test_step / predict_step of its own too."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = layers.Dense(8, activation="tanh")
        self.out = layers.Dense(1)

    def call(self, x):
        return self.out(self.hidden(x))

    def train_step(self, data):
        x, y = data
        self.zero_grad()
        y_pred = self(x, training=True)
        loss = self.compute_loss(y=y, y_pred=y_pred)
        loss.backward()
        trainable = list(self.trainable_weights)
        with torch.no_grad():
            self.optimizer.apply([v.value.grad for v in trainable], trainable)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data
        y_pred = self(x, training=False)
        loss = self.compute_loss(y=y, y_pred=y_pred)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}

    def predict_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        return self(x, training=False) * 2.0


class Unused(layers.Layer):
    """A weight no step uses: its gradient stays None (no process may wait for it)."""

    def build(self, input_shape):
        self.spare = self.add_weight(shape=(3,), initializer="ones", name="spare")

    def call(self, x):
        return x


class TwoOptimizers(keras.Model):
    """A GAN-like model: a discriminator and a generator, each with its own optimizer and loss;
    the noise comes with the data (x) so that the steps are deterministic."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.generator = keras.Sequential([keras.Input((3,)), layers.Dense(4, activation="tanh"),
                                           layers.Dense(4)], name="generator")
        self.discriminator = keras.Sequential([keras.Input((4,)), Unused(),
                                               layers.Dense(5, activation="relu"), layers.Dense(1)],
                                              name="discriminator")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

    def compile(self, d_optimizer, g_optimizer):
        super().compile()
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        self.loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)

    def call(self, noise):
        return self.discriminator(self.generator(noise))

    def train_step(self, data):
        noise, real = data
        count = real.shape[0]
        self.zero_grad()
        fake = self.generator(noise)
        labels = torch.cat([torch.ones((count, 1)), torch.zeros((count, 1))])
        d_loss = self.loss_fn(labels, self.discriminator(torch.cat([fake, real])))
        d_loss.backward()
        d_weights = self.discriminator.trainable_weights
        with torch.no_grad():  # the spare weight's gradient is None
            self.d_optimizer.apply([v.grad for v in d_weights], d_weights)
        self.zero_grad()
        g_loss = self.loss_fn(torch.zeros((count, 1)), self.discriminator(self.generator(noise)))
        g_loss.backward()
        g_weights = self.generator.trainable_weights
        with torch.no_grad():
            self.g_optimizer.apply_gradients(zip([v.grad for v in g_weights], g_weights))
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result(),
                "last_d_loss": d_loss}  # a raw value: averaged over the processes


def two_outputs() -> keras.Model:
    inputs = keras.Input((6,), name="x")
    hidden = layers.Dense(8, activation="relu")(inputs)
    a = layers.Dense(2, name="a")(hidden)
    b = layers.Dense(3, activation="softmax", name="b")(hidden)
    model = keras.Model(inputs, [a, b])
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss={"a": "mse", "b": "sparse_categorical_crossentropy"},
                  loss_weights={"a": 0.5, "b": 1.0}, metrics={"b": ["accuracy"]})
    return model


class AddLossAutoencoder(keras.Model):
    """A VAE-like autoencoder (deterministic code): its losses come from add_loss only."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.encoder = layers.Dense(3)
        self.decoder = layers.Dense(6)

    def call(self, x):
        code = self.encoder(x)
        self.add_loss(0.01 * ops.mean(ops.sum(ops.square(code), axis=-1)))  # a KL-like penalty
        rebuilt = self.decoder(code)
        self.add_loss(ops.mean(ops.square(x - rebuilt)))
        return rebuilt


class BatchLogs(keras.callbacks.Callback):
    """Records the logs of every batch and of the test hooks."""

    def __init__(self):
        super().__init__()
        self.seen: list = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(["train", batch, dict(logs or {})])

    def on_test_end(self, logs=None):
        self.seen.append(["test_end", dict(logs or {})])

    def on_predict_batch_end(self, batch, logs=None):
        self.seen.append(["predict", batch])


def cases(results: dict, out: dict) -> None:
    x6, x3, x4 = arrays(6, seed=1), arrays(3, seed=2), arrays(4, seed=3)
    y1 = (x6[:, :1] * 2.0 - x6[:, 1:2]).astype("float32")
    labels = x6[:, :3].argmax(axis=1).astype("int64")

    torch.manual_seed(0)
    model = CustomStep()
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse", metrics=["mae"])
    logger = BatchLogs()
    history = model.fit(x6, y1, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0,
                        validation_data=(x6[:16], y1[:16]), callbacks=[logger])
    results["custom"] = {"history": history.history, "batch_logs": logger.seen,
                         "evaluate": model.evaluate(x6[:24], y1[:24], batch_size=BATCH, verbose=0,
                                                    return_dict=True, callbacks=[BatchLogs()])}
    out.update({f"custom/{k}": v for k, v in weights(model).items()})
    out["custom/predict"] = model.predict(x6[:13], batch_size=4, verbose=0)  # 13: padded shares

    # a DataLoader of global batches: each process keeps its slice of each
    torch.manual_seed(0)
    model = CustomStep()
    # global_clipnorm: the gradients are averaged over the processes before they are clipped
    model.compile(optimizer=keras.optimizers.SGD(0.05, global_clipnorm=0.5), loss="mse",
                  metrics=["mae"])
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x6), torch.from_numpy(y1)),
        batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(5))
    history = model.fit(loader, epochs=EPOCHS, verbose=0)
    results["loader"] = {"history": history.history}
    out.update({f"loader/{k}": v for k, v in weights(model).items()})

    torch.manual_seed(0)
    gan = TwoOptimizers()
    gan.compile(keras.optimizers.Adam(0.01), keras.optimizers.SGD(0.05, momentum=0.5))
    history = gan.fit(x3, x4, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    results["gan"] = {"history": history.history}
    out.update({f"gan/{k}": v for k, v in weights(gan).items()})

    torch.manual_seed(0)
    model = two_outputs()
    # 29 samples: the last global batch of 5 is shared 2 / 3 (gradients weighted by the shares)
    history = model.fit(x6[:29], {"a": x6[:29, :2] * 0.5, "b": labels[:29]}, batch_size=BATCH,
                        epochs=EPOCHS, shuffle=False, verbose=0,
                        validation_data=(x6[:16], {"a": x6[:16, :2] * 0.5, "b": labels[:16]}))
    results["outputs"] = {"history": history.history}
    out.update({f"outputs/{k}": v for k, v in weights(model).items()})
    logger = BatchLogs()
    predicted = model.predict(x6[:10], batch_size=4, verbose=0, callbacks=[logger])
    out.update({"outputs/predict_a": predicted[0], "outputs/predict_b": predicted[1]})
    results["outputs"]["predict_batches"] = len(logger.seen)

    # weighted_metrics with sample_weight: the step loop for one compiled output
    torch.manual_seed(0)
    model = keras.Sequential([keras.Input((6,)), layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", weighted_metrics=["mae"])
    weight = np.linspace(0.2, 2.0, SAMPLES).astype("float32")
    history = model.fit(x6, y1, sample_weight=weight, batch_size=BATCH, epochs=EPOCHS,
                        shuffle=False, verbose=0)
    results["weighted"] = {"history": history.history}
    out.update({f"weighted/{k}": v for k, v in weights(model).items()})

    torch.manual_seed(0)
    model = AddLossAutoencoder()
    model.compile(optimizer=keras.optimizers.RMSprop(0.01))
    history = model.fit(x6, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=2)  # rank 0
    results["add_loss"] = {"history": history.history,
                           "evaluate": model.evaluate(x6[:16], batch_size=BATCH, verbose=0,
                                                      return_dict=True)}
    out.update({f"add_loss/{k}": v for k, v in weights(model).items()})


class TensorLogs(CustomStep):
    def train_step(self, data):
        logs = super().train_step(data)
        return {**logs, "predictions": self(data[0])}  # not a scalar


class ManualUpdate(CustomStep):
    def train_step(self, data):
        x, y = data
        self.zero_grad()
        loss = self.compute_loss(y=y, y_pred=self(x, training=True))
        loss.backward()
        with torch.no_grad():  # bypasses every optimizer: nothing is averaged
            for weight in self.trainable_weights:
                weight.sub_(0.1 * weight.grad)
        return {"loss": loss}


class Differs(CustomStep):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = layers.Dense(8 + RANK, activation="tanh")


def errors(results: dict) -> None:
    """Bad input: each message is recorded on every process; none may hang."""
    from bigmodel.keras import distribution

    x6 = arrays(6, seed=1)
    y1 = x6[:, :1].copy()

    def fit(cls, build=True):
        def run():
            torch.manual_seed(0)
            model = cls()
            model.compile(optimizer="sgd", loss="mse")
            if build:  # else built by the first step: the optimizers' variables then differ
                model.build((None, 6))
            model.fit(x6, y1, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        return run

    def layout():
        mesh = distribution.DeviceMesh((1, WORLD), ["batch", "model"])
        layout_map = distribution.LayoutMap(mesh)
        layout_map[".*kernel"] = (None, "model")
        distribution.set_distribution(distribution.ModelParallel(layout_map=layout_map,
                                                                 batch_dim_name="batch"))
        fit(CustomStep)()

    for name, case in {"tensor_logs": fit(TensorLogs), "manual": fit(ManualUpdate),
                       "differ": fit(Differs), "differ_lazy": fit(Differs, build=False),
                       "layout": layout}.items():
        try:
            case()
            results[f"error_{name}"] = None
        except BigModelError as err:
            results[f"error_{name}"] = f"{type(err).__name__}: {err}"
        finally:
            distribution.set_distribution(None)


def main(out_dir: str) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    found: dict = {}
    cases(results, found)
    if WORLD > 1:
        errors(results)
    np.savez(out / f"rank{RANK}.npz", **found)
    (out / f"rank{RANK}.json").write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
