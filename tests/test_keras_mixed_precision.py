"""keras.mixed_precision (dtype policies -> engine precision) and the optimizers'
gradient_accumulation_steps (-> the engine's gradient accumulation)."""

import os

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, InputTypeError, NotSupportedError
from bigmodel.keras import layers, mixed_precision


@pytest.fixture(autouse=True)
def _float32_after():
    yield
    mixed_precision.set_global_policy("float32")


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32")
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype("int64")
    return x, y


def _conv_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
                             layers.Flatten(), layers.Dense(2, activation="softmax")])


def test_policy_names_and_dtypes():
    expected = {"float32": ("float32", "float32"), "mixed_bfloat16": ("bfloat16", "float32"),
                "mixed_float16": ("float16", "float32"), "bfloat16": ("bfloat16", "bfloat16")}
    for name, (compute, variable) in expected.items():
        policy = mixed_precision.Policy(name)
        assert (policy.name, policy.compute_dtype, policy.variable_dtype) == (name, compute, variable)
    assert mixed_precision.Policy is mixed_precision.DTypePolicy
    assert mixed_precision.global_policy().name == "float32"
    mixed_precision.set_global_policy("mixed_bfloat16")
    assert mixed_precision.global_policy() == mixed_precision.Policy("mixed_bfloat16")
    assert keras.mixed_precision.dtype_policy().name == "mixed_bfloat16"
    dense = layers.Dense(3)
    assert dense.dtype_policy.name == "mixed_bfloat16"
    assert (dense.compute_dtype, dense.variable_dtype) == ("bfloat16", "float32")
    # an explicit float32 layer keeps float32 (Keras: dtype= overrides the global policy)
    assert layers.Dense(3, dtype="float32").compute_dtype == "float32"
    mixed_precision.set_global_policy(mixed_precision.Policy("float32"))
    assert layers.Dense(3).compute_dtype == "float32"
    assert layers.Dense(3, dtype="mixed_bfloat16").compute_dtype == "bfloat16"


def test_policies_match_real_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    real = pytest.importorskip("keras")
    for name in ("float32", "mixed_bfloat16", "mixed_float16", "bfloat16", "float16"):
        theirs, ours = real.mixed_precision.Policy(name), mixed_precision.Policy(name)
        assert (ours.name, ours.compute_dtype, ours.variable_dtype) == (
            theirs.name, theirs.compute_dtype, theirs.variable_dtype)


def test_bad_policies_are_refused_by_name():
    with pytest.raises(ConfigError, match="'mixed_int8'"):
        mixed_precision.set_global_policy("mixed_int8")
    with pytest.raises(InputTypeError, match="16"):
        mixed_precision.Policy(16)
    with pytest.raises(NotSupportedError, match="'bfloat16'.*mixed_bfloat16"):
        mixed_precision.set_global_policy("bfloat16")
    assert mixed_precision.global_policy().name == "float32"  # unchanged by the failures


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU refusal of mixed_float16")
def test_mixed_float16_on_cpu_says_why():
    mixed_precision.set_global_policy("mixed_float16")
    model = _conv_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = _data(16)
    with pytest.raises(NotSupportedError, match="mixed_float16.*CUDA.*mixed_bfloat16"):
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)


def test_bf16_fit_learns_in_bfloat16_with_float32_weights():
    mixed_precision.set_global_policy("mixed_bfloat16")
    model = _conv_model()
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    seen = []
    conv = model.layers[0]
    conv.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    x, y = _data()
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.8 * losses[0]
    assert seen and set(seen) == {torch.bfloat16}  # the forward pass ran in bfloat16
    assert all(p.dtype == torch.float32 for p in model.parameters())
    seen.clear()
    mixed = model.predict(x, verbose=0)
    assert set(seen) == {torch.bfloat16}
    # the same weights in a float32 model give outputs close to the bf16 ones
    mixed_precision.set_global_policy("float32")
    reference = _conv_model()
    reference.set_weights(model.get_weights())
    exact = reference.predict(x, verbose=0)
    assert np.abs(mixed.astype("float32") - exact).max() < 0.05
    assert not np.array_equal(mixed, exact)  # bf16 rounding is visible: it really ran in bf16


def _dense_model(seed=1):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6,)), layers.Dense(5, activation="tanh"),
                             layers.Dense(1)])


def test_gradient_accumulation_matches_the_larger_batch():
    """Keras 3: with gradient_accumulation_steps=N the weights change every N steps by the
    average of the N batches' gradients. For a loss that is the mean over its batch, two
    batches of 8 averaged are the gradient of the mean over those 16 samples: the weights after
    batch 8 x 2 equal those after batch 16 (SGD, same sample order, no shuffling)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    results = []
    for batch, steps in ((8, 2), (16, None)):
        model = _dense_model()
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9, gradient_accumulation_steps=steps),
                      "mse")
        model.fit(x, y, batch_size=batch, epochs=2, shuffle=False, verbose=0)
        results.append(model.get_weights())
    start = _dense_model().get_weights()
    for accumulated, large, initial in zip(*results, start):
        np.testing.assert_allclose(accumulated, large, atol=1e-6, rtol=0)
        assert not np.allclose(accumulated, initial)  # training did move the weights
    # without accumulation, batch 8 takes twice the updates and lands elsewhere
    model = _dense_model()
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "mse")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert not np.allclose(model.get_weights()[0], results[1][0], atol=1e-4)


def test_gradient_accumulation_bad_values_are_named():
    for value in (0, 1, -1):
        with pytest.raises(ConfigError, match=f"gradient_accumulation_steps.*received {value}"):
            keras.optimizers.Adam(gradient_accumulation_steps=value)
    for value in ("2", 2.0, True):
        with pytest.raises(InputTypeError, match="gradient_accumulation_steps"):
            keras.optimizers.SGD(gradient_accumulation_steps=value)
    opt = keras.optimizers.SGD(gradient_accumulation_steps=4)
    assert opt.gradient_accumulation_steps == 4
    assert keras.optimizers.SGD.from_config(opt.get_config()).gradient_accumulation_steps == 4
    assert keras.optimizers.SGD().gradient_accumulation_steps is None


class _CustomStep(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = layers.Dense(1)

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        return super().train_step(data)


@pytest.mark.parametrize("policy, steps", [("mixed_bfloat16", None), ("float32", 2)])
def test_step_loop_refuses_what_it_cannot_run(policy, steps):
    mixed_precision.set_global_policy(policy)
    model = _CustomStep()
    model.compile(keras.optimizers.SGD(0.1, gradient_accumulation_steps=steps), "mse")
    x = np.ones((8, 3), "float32")
    with pytest.raises(NotSupportedError, match=f"{policy}.*gradient_accumulation_steps={steps}"):
        model.fit(x, x[:, :1], batch_size=4, verbose=0)
