"""``keras.callbacks.ModelCheckpoint`` checks its file name when created, as Keras 3 does: a name
``save``/``save_weights`` would refuse fails before any training, not after the first epoch."""

from __future__ import annotations

import numpy as np
import pytest

from bigmodel import keras
from bigmodel.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(("name", "weights_only"), [
    ("m.h5", False), ("m.weights.h5", False), ("ckpt-{epoch}", False), ("m.pt", False),
    ("m.keras", True), ("m.h5", True), ("w-{epoch}.bin", True)])
def test_refused_names(name, weights_only):
    with pytest.raises(ConfigError, match="ModelCheckpoint: filepath") as err:
        keras.callbacks.ModelCheckpoint(name, save_weights_only=weights_only)
    assert name in str(err.value)
    assert isinstance(err.value, ValueError)  # Keras 3 raises ValueError here


def test_unknown_argument_named():
    with pytest.raises(ConfigError, match="save_best"):
        keras.callbacks.ModelCheckpoint("m.keras", save_best=True)


@pytest.mark.parametrize(("name", "weights_only"), [
    ("m-{epoch:02d}.keras", False), ("m-{epoch}.safetensors", False),
    ("w-{epoch}.weights.h5", True), ("w-{epoch}.safetensors", True)])
def test_accepted_names_write_one_file_per_epoch(tmp_path, name, weights_only):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    saver = keras.callbacks.ModelCheckpoint(str(tmp_path / name), save_weights_only=weights_only,
                                            monitor="loss")
    assert isinstance(saver, keras.callbacks.Callback)
    x = np.zeros((4, 3), "float32")
    model.fit(x, np.zeros((4, 2), "float32"), epochs=2, batch_size=4, verbose=0, callbacks=[saver])
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(name.format(epoch=e) for e in (1, 2))
