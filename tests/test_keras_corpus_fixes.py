"""Pieces the Keras conformance corpus needed (issue 15): ``utils.pad_sequences``,
``utils.PyDataset``, the confusion-count / RMSE / cross-entropy metrics and metric class names,
soft binary labels, ``Normalization(axis=None)`` on another rank, Keras variables (weights with
``value`` / ``assign*`` / ``numpy``), ``layer.output`` / ``model.input`` / ``Sequential.inputs``,
``Model(x, [y])`` and ``keras.Model.from_config``.

References are hand-computed arrays and NumPy formulas; real Keras 3 (torch backend) where it is
installed.
"""

from __future__ import annotations

import copy
import gc
import importlib.util
import math
import os
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from bigmodel import keras
from bigmodel.engine.optimizers import fused_kwargs
from bigmodel.errors import ConfigError, DataError, InputTypeError, ShapeError
from bigmodel.keras import layers
from bigmodel.keras.variables import Variable

HAS_KERAS = importlib.util.find_spec("keras") is not None


# ------------------------------------------------------------------------------ pad_sequences
def test_pad_sequences_matches_hand_computed_arrays():
    seqs = [[1], [2, 3], [4, 5, 6]]
    pad = keras.utils.pad_sequences
    out = pad(seqs)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[0, 0, 1], [0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad(seqs, value=-1), [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad(seqs, padding="post"), [[1, 0, 0], [2, 3, 0], [4, 5, 6]])
    np.testing.assert_array_equal(pad(seqs, maxlen=2), [[0, 1], [2, 3], [5, 6]])
    np.testing.assert_array_equal(pad(seqs, maxlen=2, truncating="post"), [[0, 1], [2, 3], [4, 5]])
    np.testing.assert_array_equal(pad(seqs, maxlen=4, padding="post", truncating="post"),
                                  [[1, 0, 0, 0], [2, 3, 0, 0], [4, 5, 6, 0]])
    # An empty sequence is all padding; float dtype keeps fractions; items may be vectors.
    np.testing.assert_array_equal(pad([[], [7]]), [[0], [7]])
    np.testing.assert_allclose(pad([[0.5, 1.5]], maxlen=3, dtype="float32"), [[0, 0.5, 1.5]])
    vec = pad([[[1, 2]], [[3, 4], [5, 6]]])
    assert vec.shape == (2, 2, 2)
    np.testing.assert_array_equal(vec[0], [[0, 0], [1, 2]])
    assert pad([], maxlen=3).shape == (0, 3)
    np.testing.assert_array_equal(pad(seqs, maxlen=0), np.zeros((3, 0)))
    strings = pad([["a"], ["b", "c"]], dtype=object, value="<pad>")
    assert strings.tolist() == [["<pad>", "a"], ["b", "c"]]


def test_pad_sequences_bad_arguments():
    pad = keras.utils.pad_sequences
    with pytest.raises(ConfigError, match="padding must be 'pre' or 'post'; received padding='mid'"):
        pad([[1]], padding="mid")
    with pytest.raises(ConfigError, match="truncating"):
        pad([[1]], truncating="middle")
    with pytest.raises(ConfigError, match="maxlen"):
        pad([[1]], maxlen=-1)
    with pytest.raises(ConfigError, match="string"):
        pad([[1]], value="x")
    with pytest.raises(ShapeError, match=r"sequences\[1\]"):
        pad([[[1, 2]], [[1, 2, 3]]])
    with pytest.raises(InputTypeError, match=r"sequences\[1\] has no length"):
        pad([[1], 5])
    with pytest.raises(InputTypeError):
        pad(5)


@pytest.mark.skipif(not HAS_KERAS, reason="real Keras not installed")
def test_pad_sequences_equals_real_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras as real

    rng = np.random.default_rng(0)
    seqs = [list(rng.integers(1, 9, size=rng.integers(0, 7))) for _ in range(20)]
    for kwargs in ({}, {"maxlen": 4}, {"maxlen": 5, "padding": "post", "truncating": "post"},
                   {"value": 9, "truncating": "post", "maxlen": 3}, {"dtype": "float32"}):
        np.testing.assert_array_equal(keras.utils.pad_sequences(seqs, **kwargs),
                                      real.utils.pad_sequences(seqs, **kwargs))


# ------------------------------------------------------------------------------ PyDataset
class _Batches(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size, with_targets=True, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size, self.with_targets = x, y, batch_size, with_targets
        self.epochs_ended = 0
        self.seen: list[int] = []

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, idx):
        self.seen.append(idx)
        part = slice(idx * self.batch_size, (idx + 1) * self.batch_size)
        return (self.x[part], self.y[part]) if self.with_targets else self.x[part]

    def on_epoch_end(self):
        self.epochs_ended += 1


def _regression_data(n=96):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], dtype="float32"))[:, None]
    return x, y


def test_pydataset_feeds_fit_evaluate_predict():
    x, y = _regression_data()
    train = _Batches(x, y, batch_size=16)
    assert len(train) == 6 and train.num_batches == 6
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    history = model.fit(train, epochs=3, verbose=0, validation_data=_Batches(x, y, 32))
    losses = history.history["loss"]
    assert losses[-1] < losses[0] / 2  # it learns
    assert train.epochs_ended == 3  # on_epoch_end after each pass
    # evaluate on the dataset equals evaluate on the arrays it serves
    np.testing.assert_allclose(model.evaluate(_Batches(x, y, 16), verbose=0),
                               model.evaluate(x, y, verbose=0), rtol=1e-5)
    preds = model.predict(_Batches(x, y, 16, with_targets=False), verbose=0)
    np.testing.assert_allclose(preds, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_pydataset_threads_keep_the_order_and_arguments_are_checked():
    x, y = _regression_data(40)
    threaded = _Batches(x, y, batch_size=8, workers=3, max_queue_size=2)
    batches = list(threaded)
    assert [len(b[0]) for b in batches] == [8] * 5
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    assert threaded.epochs_ended == 1 and sorted(threaded.seen) == list(range(5))
    assert (threaded.workers, threaded.max_queue_size, threaded.use_multiprocessing) == (3, 2, False)
    with pytest.warns(UserWarning, match="threads"):
        assert _Batches(x, y, 8, use_multiprocessing=True).use_multiprocessing
    with pytest.raises(ConfigError, match="workers must be an integer >= 1; received workers=0"):
        _Batches(x, y, 8, workers=0)
    with pytest.raises(ConfigError, match="max_queue_size"):
        _Batches(x, y, 8, max_queue_size=1.5)
    model = keras.Sequential([keras.Input((4,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(DataError, match="no batches"):
        model.fit(_Batches(x[:0], y[:0], 8), verbose=0)


# ------------------------------------------------------------------------------ metrics
def test_confusion_counts_match_numpy_with_weights():
    rng = np.random.default_rng(1)
    y_true = (rng.random(50) > 0.6).astype("float32")
    y_pred = rng.random(50).astype("float32")
    weight = rng.random(50).astype("float32")
    pred_pos, true_pos = y_pred > 0.3, y_true != 0
    cells = {"TruePositives": pred_pos & true_pos, "FalsePositives": pred_pos & ~true_pos,
             "TrueNegatives": ~pred_pos & ~true_pos, "FalseNegatives": ~pred_pos & true_pos}
    for name, cell in cells.items():
        metric = getattr(keras.metrics, name)(thresholds=0.3)
        metric.update_state(y_true[:20], y_pred[:20], sample_weight=weight[:20])
        metric.update_state(y_true[20:], y_pred[20:], sample_weight=weight[20:])
        assert metric.result() == pytest.approx(float((cell * weight).sum()), rel=1e-6), name
        metric.reset_state()
        metric.update_state(y_true, y_pred)
        assert metric.result() == cell.sum()
    # Keras's docstring example: FalsePositives of [0, 1, 0, 0] vs [0, 0, 1, 1] is 2.
    fp = keras.metrics.FalsePositives()
    fp.update_state(torch.tensor([0.0, 1, 0, 0]), torch.tensor([0.0, 0, 1, 1]))
    assert fp.result() == 2.0 and fp.name == "false_positives"
    with pytest.raises(ConfigError, match="single float threshold"):
        keras.metrics.TruePositives(thresholds=[0.2, 0.5])


def test_rmse_and_crossentropy_metrics_match_numpy():
    rng = np.random.default_rng(2)
    y_true = rng.normal(size=(30, 2)).astype("float32")
    y_pred = rng.normal(size=(30, 2)).astype("float32")
    rmse = keras.metrics.RootMeanSquaredError()
    rmse.update_state(torch.tensor(y_true[:7]), torch.tensor(y_pred[:7]))
    rmse.update_state(torch.tensor(y_true[7:]), torch.tensor(y_pred[7:]))
    # the root of the mean over every value, not a mean of per-batch roots
    assert rmse.result() == pytest.approx(np.sqrt(np.mean((y_true - y_pred) ** 2)), rel=1e-6)

    labels = (rng.random((30, 1)) > 0.5).astype("float32")
    logits = rng.normal(size=(30, 1)).astype("float32")
    probs = 1 / (1 + np.exp(-logits))
    expected = -np.mean(labels * np.log(probs) + (1 - labels) * np.log(1 - probs))
    for from_logits, scores in ((True, logits), (False, probs)):
        bce = keras.metrics.BinaryCrossentropy(from_logits=from_logits)
        bce.update_state(torch.tensor(labels), torch.tensor(scores))
        assert bce.result() == pytest.approx(expected, rel=1e-5)
        assert bce.name == "binary_crossentropy" and bce._direction == "down"
    classes = rng.integers(0, 3, size=30)
    scores = rng.random((30, 3)).astype("float32")
    scores /= scores.sum(-1, keepdims=True)
    cce_expected = -np.mean(np.log(scores[np.arange(30), classes]))
    scce = keras.metrics.SparseCategoricalCrossentropy()
    scce.update_state(torch.tensor(classes), torch.tensor(scores))
    cce = keras.metrics.CategoricalCrossentropy()
    cce.update_state(torch.tensor(np.eye(3, dtype="float32")[classes]), torch.tensor(scores))
    assert scce.result() == pytest.approx(cce_expected, rel=1e-5)
    assert cce.result() == pytest.approx(cce_expected, rel=1e-5)


def test_metric_class_names_in_compile_are_logged_as_written():
    x, y = _regression_data(64)
    model = keras.Sequential([keras.Input((4,)), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse",
                  metrics=["RootMeanSquaredError", "MeanAbsoluteError", "binary_crossentropy"])
    history = model.fit(x, y, epochs=1, verbose=0)
    assert {"RootMeanSquaredError", "MeanAbsoluteError", "binary_crossentropy"} <= set(
        history.history)
    mse = model.evaluate(x, y, verbose=0, return_dict=True)
    assert mse["RootMeanSquaredError"] == pytest.approx(math.sqrt(mse["loss"]), rel=1e-5)
    with pytest.raises(ConfigError, match="Unknown metric 'RootMeanSquare'"):
        model.compile(optimizer="adam", loss="mse", metrics=["RootMeanSquare"])


@pytest.mark.skipif(not HAS_KERAS, reason="real Keras not installed")
def test_new_metrics_equal_real_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras as real

    rng = np.random.default_rng(3)
    y_true = (rng.random((40, 1)) > 0.5).astype("float32")
    y_pred = rng.random((40, 1)).astype("float32")
    weight = rng.random(40).astype("float32")
    for name in ("TruePositives", "FalsePositives", "TrueNegatives", "FalseNegatives",
                 "RootMeanSquaredError", "BinaryCrossentropy"):
        ours, theirs = getattr(keras.metrics, name)(), getattr(real.metrics, name)()
        ours.update_state(torch.tensor(y_true), torch.tensor(y_pred), sample_weight=torch.tensor(weight))
        theirs.update_state(y_true, y_pred, sample_weight=weight)
        assert ours.result() == pytest.approx(float(theirs.result()), rel=1e-5), name
        assert ours.name == theirs.name


# ------------------------------------------------------------------------------ losses
def test_binary_crossentropy_takes_soft_labels_outside_0_1():
    labels = np.array([[-0.05], [1.04], [0.5]], dtype="float32")
    logits = np.array([[0.3], [-1.2], [2.0]], dtype="float32")
    p = 1 / (1 + np.exp(-logits))
    expected = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    assert float(loss(torch.tensor(labels), torch.tensor(logits))) == pytest.approx(expected,
                                                                                     rel=1e-5)
    probs = keras.losses.BinaryCrossentropy()(torch.tensor(labels), torch.tensor(p))
    assert float(probs) == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ShapeError, match="do not match"):
        loss(torch.zeros(3, 2), torch.zeros(3, 1))


# ------------------------------------------------------------------------------ Normalization
def test_normalization_axis_none_adapted_on_1d_takes_other_ranks():
    data = np.array([1.0, 2.0, 4.0, 9.0], dtype="float32")
    norm = layers.Normalization(input_shape=[1], axis=None)
    norm.adapt(data)
    mean, std = data.mean(), data.std()
    column = np.array([[3.0], [5.0]], dtype="float32")
    np.testing.assert_allclose(norm(column).numpy(), (column - mean) / std, rtol=1e-6)
    cube = np.arange(12, dtype="float32").reshape(2, 2, 3)
    np.testing.assert_allclose(norm(cube).numpy(), (cube - mean) / std, rtol=1e-6)
    model = keras.Sequential([norm, layers.Dense(1)])
    assert model.predict(data, verbose=0).shape == (4, 1)
    # an axis that is kept still pins the rank
    kept = layers.Normalization(axis=-1)
    kept.adapt(np.ones((4, 3), dtype="float32"))
    with pytest.raises(ShapeError, match="expected ndim=2"):
        kept(np.ones((2, 3, 3), dtype="float32"))


# ------------------------------------------------------------------------------ variables
def test_weights_are_keras_variables_and_torch_parameters():
    conv = layers.Conv2D(4, 3)
    conv.build((None, 8, 8, 2))
    kernel = conv.kernel
    assert isinstance(kernel, nn.Parameter) and isinstance(kernel, Variable)
    assert kernel.value is kernel and kernel.path == f"{conv.name}/kernel" and kernel.trainable
    # numpy() reads the stored layout (what torch and its exporters see); assign takes it, or
    # Keras's layout (kh, kw, in, out) when the shape tells; get_weights speaks Keras's layout
    keras_layout = conv.get_weights()[0]
    assert keras_layout.shape == (3, 3, 2, 4) and tuple(kernel.shape) == (4, 2, 3, 3)
    np.testing.assert_array_equal(kernel.numpy(), keras_layout.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(np.asarray(kernel.detach()), kernel.numpy(force=True))
    new = np.random.default_rng(0).normal(size=(3, 3, 2, 4)).astype("float32")
    kernel.assign(new)
    np.testing.assert_array_equal(conv.get_weights()[0], new)
    kernel.assign(kernel.numpy() * 2)  # the stored layout round-trips
    np.testing.assert_array_equal(conv.get_weights()[0], new * 2)
    bias = conv.bias
    bias.assign_add(np.ones(4))
    bias.assign_sub(np.full(4, 0.25))
    np.testing.assert_allclose(bias.numpy(), np.full(4, 0.75))
    assert torch.equal(bias, torch.full((4,), 0.75))
    # operations give plain tensors; the state dict holds plain tensors
    assert type(kernel * 2) is torch.Tensor
    assert all(type(t) is torch.Tensor for t in conv.state_dict().values())
    # gradients land on .value.grad (the Keras torch guide reads them there)
    out = conv(torch.ones(1, 8, 8, 2)).sum()
    out.backward()
    assert kernel.value.grad is not None and kernel.value.grad.shape == kernel.shape


def test_variables_survive_deepcopy_pickle_safetensors_and_keras_files(tmp_path):
    from safetensors.torch import load_file, save_file

    model = keras.Sequential([keras.Input((5,)), layers.Dense(3), layers.Dense(1)])
    clone = copy.deepcopy(model)
    kernel = clone.layers[0].kernel
    assert type(kernel) is Variable and kernel.path == model.layers[0].kernel.path
    assert torch.equal(kernel, model.layers[0].kernel) and kernel is not model.layers[0].kernel
    # pickling gives a plain parameter back (weights_only loading keeps working)
    path = tmp_path / "state.pt"
    torch.save(model.state_dict(), path)
    state = torch.load(path, weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    restored = pickle.loads(pickle.dumps(model.layers[1].kernel))
    assert isinstance(restored, nn.Parameter) and torch.equal(restored, model.layers[1].kernel)
    save_file(model.state_dict(), tmp_path / "w.safetensors")
    loaded = load_file(tmp_path / "w.safetensors")
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert isinstance(again.layers[0].kernel, Variable)


def test_fused_optimizers_take_keras_variables_but_not_other_parameter_subclasses():
    model = keras.Sequential([keras.Input((5,)), layers.Dense(3)])
    assert fused_kwargs(torch.optim.Adam, list(model.parameters())) == {"fused": True}

    class Sharded(nn.Parameter):  # e.g. FSDP's flat parameter: not plain
        pass

    assert fused_kwargs(torch.optim.Adam, [Sharded(torch.zeros(2))]) == {}
    optimizer = keras.optimizers.Adam(0.01)
    optimizer.build(model.parameters())
    assert optimizer.torch_optimizer.defaults.get("fused") is True


def test_rmsprop_over_keras_variables_asks_for_foreach_and_matches_plain_parameters():
    model = keras.Sequential([keras.Input((5,)), layers.Dense(4), layers.Dense(1)])
    params = list(model.parameters())
    assert fused_kwargs(torch.optim.RMSprop, params) == {"foreach": True}
    plain = [nn.Parameter(p.detach().clone()) for p in params]
    assert fused_kwargs(torch.optim.RMSprop, plain) == {}  # torch's own choice stays
    optimizer = keras.optimizers.RMSprop(0.01)
    optimizer.build(model.parameters())
    assert optimizer.torch_optimizer.defaults["foreach"] is True
    reference = torch.optim.RMSprop(plain, lr=0.01, alpha=0.9, eps=1e-7)
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
    for _ in range(3):
        optimizer.torch_optimizer.zero_grad()
        reference.zero_grad()
        model(x).square().mean().backward()
        # the same two Dense layers on the plain copies (kernels as stored: torch's (out, in))
        named = dict(zip([name for name, _ in model.named_parameters()], plain))
        h = torch.nn.functional.linear(x, named["_stack.0.kernel"], named["_stack.0.bias"])
        out = torch.nn.functional.linear(h, named["_stack.1.kernel"], named["_stack.1.bias"])
        out.square().mean().backward()
        optimizer.torch_optimizer.step()
        reference.step()
    for ours, theirs in zip(params, plain):
        torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-6, atol=1e-7)


def test_ddp_wraps_a_model_of_keras_variables(tmp_path):
    import torch.distributed as dist

    model = keras.Sequential([keras.Input((5,)), layers.Dense(3), layers.Dense(1)])
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    ddp = optimizer = None
    try:
        ddp = nn.parallel.DistributedDataParallel(model)
        before = model.layers[0].kernel.detach().clone()
        optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)
        ddp(torch.ones(4, 5)).square().mean().backward()
        optimizer.step()
        assert not torch.equal(before, model.layers[0].kernel)
    finally:
        # The DDP wrapper (its Reducer holds the group) goes before the group: destroyed the
        # other way round, gloo's destructor can wait forever for its threads (seen once in CI).
        ddp = optimizer = None
        gc.collect()
        dist.destroy_process_group()


def test_layer_state_updated_in_call_and_model_without_trainable_weights_fits():
    class ComputeSum(layers.Layer):
        def __init__(self, input_dim):
            super().__init__()
            self.total = self.add_weight(initializer="zeros", shape=(input_dim,), trainable=False)

        def call(self, inputs):
            self.total.assign_add(keras.ops.sum(inputs, axis=0))
            return self.total

    layer = ComputeSum(2)
    layer(keras.ops.ones((2, 2)))
    np.testing.assert_array_equal(layer(keras.ops.ones((2, 2))).numpy(), [4.0, 4.0])
    assert len(layer.non_trainable_weights) == 1 and not layer.trainable_weights

    inputs = keras.Input((3,))
    model = keras.Model(inputs, layers.Activation("relu")(inputs))
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).random((16, 3)).astype("float32")
    history = model.fit(x, x * 0, epochs=2, verbose=0)  # nothing to train: the loss stays
    assert history.history["loss"][0] == pytest.approx(history.history["loss"][1])
    assert history.history["loss"][0] == pytest.approx(float(np.mean(x ** 2)), rel=1e-5)


# ------------------------------------------------------------------------------ graph access
def test_layer_output_model_input_and_sequential_inputs():
    a, b = keras.Input((4,), name="a"), keras.Input((2,), name="b")
    dense = layers.Dense(3)
    h = dense(a)
    out = layers.Concatenate()([h, b])
    model = keras.Model([a, b], out)
    assert model.input == [a, b] and model.output is out
    assert dense.output is h and dense.input is a
    dense(keras.Input((4,)))  # a second call: .output stays the first call's (Keras's node 0)
    assert dense.output is h
    with pytest.raises(AttributeError):
        _ = layers.Dense(2).output
    lstm_out = layers.LSTM(3, return_state=True)
    results = lstm_out(keras.Input((5, 2)))
    assert lstm_out.output == results and len(lstm_out.output) == 3

    seq = keras.Sequential([keras.Input((6,)), layers.Dense(4, name="hidden"), layers.Dense(2)])
    assert len(seq.inputs) == 1 and seq.inputs[0].shape == (None, 6)
    extractor = keras.Model(seq.inputs, [layer.output for layer in seq.layers])
    x = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    hidden, final = extractor(x)
    np.testing.assert_allclose(final.detach().numpy(), seq.predict(x, verbose=0), rtol=1e-6)
    kernel, bias = seq.layers[0].get_weights()
    np.testing.assert_allclose(hidden.detach().numpy(), x @ kernel + bias, rtol=1e-5, atol=1e-6)
    with pytest.raises(AttributeError):
        _ = keras.Sequential([layers.Dense(2)]).inputs


def test_one_element_output_list_is_unpacked_and_from_config_rebuilds_functional():
    inputs = keras.Input((3,))
    output = layers.Dense(1, name="only")(inputs)
    model = keras.Model(inputs=[inputs], outputs=[output])
    x = np.ones((2, 3), dtype="float32")
    assert isinstance(model(x), torch.Tensor) and model.predict(x, verbose=0).shape == (2, 1)
    assert model.output_names == ["only"]
    model.compile(optimizer="sgd", loss="mse", metrics=["RootMeanSquaredError"])
    model.fit(x, np.zeros((2, 1)), verbose=0)
    rebuilt = keras.Model.from_config(model.get_config())
    assert type(rebuilt).__name__ == "Functional" and len(rebuilt.layers) == len(model.layers)
    assert rebuilt.count_params() == model.count_params()


def test_functional_graph_with_a_layer_that_needs_its_mask():
    """The masking guide's TemporalSoftmax asserts it gets a mask; the graph is built (its output
    shape found by a trial call with an all-True mask) and the real call gets Embedding's mask."""

    class TemporalSoftmax(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

        def call(self, inputs, mask=None):
            assert mask is not None
            keep = keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
            exp = keras.ops.exp(inputs) * keep
            return exp / keras.ops.sum(exp, axis=1, keepdims=True)

    inputs = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(input_dim=10, output_dim=4, mask_zero=True)(inputs)
    scores = layers.Dense(1)(x)
    outputs = TemporalSoftmax()(scores)
    assert outputs.shape == (None, None, 1)
    model = keras.Model(inputs, outputs)
    tokens = np.array([[3, 4, 0, 0], [1, 2, 5, 0]])
    got = model(tokens).detach().numpy()[..., 0]
    logits = keras.Model(inputs, scores)(tokens).detach().numpy()[..., 0]
    expected = np.exp(logits) * (tokens != 0)
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
