"""A Keras program with ``BackupAndRestore`` whose rank 1 SIGKILLs itself at the start of epoch 2
once (a marker file remembers it), for the restart test: ``keras_restart_worker.py OUT_DIR [--kill]``.

Rank 0 (or the only process) writes the final weights to ``OUT_DIR/final.npz`` and the history to
``OUT_DIR/history.json``. Importable: :func:`train` runs the program in the calling process.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import torch

from bigmodel import keras
from bigmodel.keras import layers


def train(out: Path, kill: bool = False) -> tuple[list[np.ndarray], dict]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5, 3)).astype("float32")
    y = x[:, 0, :].argmax(1).astype("int64")
    torch.manual_seed(0)
    model = keras.Sequential([keras.Input((5, 3)), layers.LSTM(6), layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])

    class Killer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            marker = out / "killed"
            if kill and epoch == 2 and os.environ.get("RANK") == "1" and not marker.exists():
                marker.write_text("killed at epoch 2")
                os.kill(os.getpid(), signal.SIGKILL)

    history = model.fit(x, y, batch_size=8, epochs=4, shuffle=True, verbose=0,
                        callbacks=[Killer(), keras.callbacks.BackupAndRestore(str(out / "backup"))])
    return [p.detach().numpy() for _, p in sorted(model.named_parameters())], history.history


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    weights, history = train(folder, kill="--kill" in sys.argv)
    if os.environ.get("RANK", "0") == "0":
        np.savez(folder / "final.npz", *weights)
        (folder / "history.json").write_text(json.dumps(history))
