"""Keras 3 on TensorFlow, the optional peer of ``fit_throughput.py``: the seed CNN, one timed epoch.

Run by ``fit_throughput.py --tf-python PYTHON`` with an interpreter that has ``tensorflow`` (never
installed into the project's venv); it reads the same float32 NHWC data from ``.npz``/``.npy``
files and prints one JSON line: ``fit_seconds``, ``predict_seconds`` (and their process CPU
times) and versions. The model is
warmed up first (graph tracing of ``train_function``/``predict_function`` is not timed).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--predict-batch", type=int, default=256)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--warmup-batches", type=int, default=50)
    p.add_argument("--mode", choices=("throughput", "accuracy"), default="throughput")
    p.add_argument("--epochs", type=int, default=5, help="--mode accuracy: epochs")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import numpy as np
    import tensorflow as tf

    if args.threads:  # like torch's one intra-op pool of --threads threads
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    from keras import layers

    data = np.load(args.train)
    x, y = data["x"], data["y"]
    xt = np.load(args.test)
    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if args.mode == "accuracy":  # the seed program: fit, then evaluate on the test set
        yt = data["y_test"]  # the accuracy mode gets the test labels with the training data
        epoch_seconds = []

        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self._t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                epoch_seconds.append(time.perf_counter() - self._t)

        history = model.fit(x, y, epochs=args.epochs, batch_size=args.batch_size, verbose=0,
                            callbacks=[Timer()])
        test_loss, test_acc = model.evaluate(xt, yt, verbose=0)
        print(json.dumps({"test_accuracy": float(test_acc), "test_loss": float(test_loss),
                          "epoch_seconds": epoch_seconds,
                          "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
                          "tensorflow": tf.__version__, "keras": keras.__version__}))
        return
    warm = min(len(x), args.warmup_batches * args.batch_size)
    model.fit(x[:warm], y[:warm], batch_size=args.batch_size, epochs=1, verbose=0)
    model.predict(xt[:args.predict_batch * 2], batch_size=args.predict_batch, verbose=0)

    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
    fit_seconds, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    model.predict(xt, batch_size=args.predict_batch, verbose=0)
    predict_seconds, predict_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"fit_seconds": fit_seconds, "predict_seconds": predict_seconds,
                      "fit_cpu_seconds": fit_cpu, "predict_cpu_seconds": predict_cpu,
                      "tensorflow": tf.__version__, "keras": keras.__version__,
                      "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()}))


if __name__ == "__main__":
    main()
