"""bigmodel.transfer: freezing by name, BatchNorm in inference mode when frozen, the Keras
``trainable`` surface, new heads, discriminative learning rates and gradual unfreezing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bigmodel import transfer
from bigmodel.engine import Trainer
from bigmodel.errors import ConfigError, InputTypeError, ShapeError
from bigmodel.models import create_model


class Net(nn.Module):
    """conv -> BatchNorm -> pooled -> fc -> classifier (a BatchNorm network to freeze)."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 8)
        self.classifier = nn.Linear(8, classes)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3))
        return self.classifier(torch.relu(self.fc(x)))


def blobs(n: int = 96, classes: int = 3, seed: int = 0):
    """Images whose class sets the brightness of a corner: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.2
    for i, label in enumerate(y.tolist()):
        x[i, 0, :4, :4] += label
    return x, y


# -- freeze / unfreeze -----------------------------------------------------------------------------


def test_freeze_by_module_glob_and_parameter_names():
    net = Net()
    frozen = transfer.freeze(net, ["conv", "bn"])
    assert frozen == ["bn.bias", "bn.weight", "conv.bias", "conv.weight"]
    assert [n for n, p in net.named_parameters() if p.requires_grad] == [
        "fc.weight", "fc.bias", "classifier.weight", "classifier.bias"]
    assert transfer.unfreeze(net, "*.bias") == ["bn.bias", "classifier.bias", "conv.bias", "fc.bias"]
    assert net.conv.bias.requires_grad and not net.conv.weight.requires_grad
    transfer.freeze(net)  # None: everything
    assert not any(p.requires_grad for p in net.parameters())
    transfer.unfreeze(net)
    assert all(p.requires_grad for p in net.parameters())


def test_summary_counts_trainable_and_frozen():
    net = Net()
    transfer.freeze(net, "conv")
    counts = transfer.summary(net)
    conv = 4 * 1 * 9 + 4
    total = sum(p.numel() for p in net.parameters())
    assert (counts.frozen, counts.trainable, counts.total) == (conv, total - conv, total)
    rows = {name: (kind, a, b) for name, kind, a, b in counts.rows}
    assert rows["conv"] == ("Conv2d", 0, conv) and rows["classifier"] == ("Linear", 27, 0)
    text = str(counts)
    assert "frozen" in text and f"{total:,}" in text


def test_frozen_batchnorm_uses_moving_statistics_and_keeps_them():
    torch.manual_seed(0)
    net = Net()
    net.train()
    x = torch.randn(16, 1, 8, 8) * 3 + 1
    net(x)  # moves the running statistics away from (0, 1)
    mean, var = net.bn.running_mean.clone(), net.bn.running_var.clone()
    transfer.freeze(net, "bn")
    net.train()  # a training loop calls this every epoch: the frozen BatchNorm must not follow
    out = net.bn(net.conv(x))
    assert torch.equal(net.bn.running_mean, mean) and torch.equal(net.bn.running_var, var)
    expected = (net.conv(x) - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + 1e-5)
    expected = expected * net.bn.weight.view(1, -1, 1, 1) + net.bn.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(out, expected)
    transfer.unfreeze(net, "bn")
    net.train()
    net(x)
    assert not torch.equal(net.bn.running_mean, mean)  # batch statistics again


def test_freeze_norm_eval_false_keeps_batch_statistics():
    net = Net()
    transfer.freeze(net, "bn", norm_eval=False)
    net.train()
    before = net.bn.running_mean.clone()
    net(torch.randn(8, 1, 8, 8) + 2)
    assert not torch.equal(net.bn.running_mean, before)


def test_pattern_errors_name_the_pattern():
    net = Net()
    with pytest.raises(ConfigError, match=r"'convv' matches no module.*did you mean 'conv'"):
        transfer.freeze(net, "convv")
    with pytest.raises(ConfigError, match="'nothing.*' matches no module"):
        transfer.unfreeze(net, ["fc", "nothing.*"])
    with pytest.raises(ConfigError, match="empty list"):
        transfer.freeze(net, [])
    with pytest.raises(InputTypeError, match="must be a torch.nn.Module"):
        transfer.freeze("model", "fc")
    with pytest.raises(InputTypeError, match="glob string"):
        transfer.freeze(net, [1])


# -- Keras surface -------------------------------------------------------------------------------


def test_keras_trainable_freezes_and_batchnorm_runs_in_inference_mode():
    from bigmodel import keras
    from bigmodel.keras import layers

    base = keras.Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
                             layers.BatchNormalization(), layers.GlobalAveragePooling2D()])
    base.build((None, 8, 8, 1))
    base.trainable = False
    inputs = keras.Input(shape=(8, 8, 1))
    outputs = layers.Dense(3, activation="softmax")(base(inputs, training=False))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert len(model.trainable_weights) == 2  # the Dense kernel and bias
    before = [w.copy() for w in base.get_weights()]
    x = np.random.default_rng(0).random((32, 8, 8, 1)).astype("float32")
    y = np.random.default_rng(1).integers(0, 3, 32)
    model.fit(x, y, epochs=2, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, base.get_weights()))
    # Unfrozen but called with training=False: weights train, BatchNorm statistics stay (Keras).
    base.trainable = True
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    changed = [not np.array_equal(a, b) for a, b in zip(before, base.get_weights())]
    assert changed == [True, True, True, True, False, False]
    # the pinned call mode survives serialization
    from bigmodel.keras.functional import Functional

    clone = Functional.from_config(model.get_config())
    assert clone._nodes[0].call_training is False


def test_keras_weight_declared_non_trainable_stays_frozen():
    from bigmodel.keras.layers import Layer

    class Scale(Layer):
        def build(self, input_shape):
            self.add_weight("scale", (input_shape[-1],), "ones")
            self.add_weight("offset", (input_shape[-1],), "zeros", trainable=False)
            super().build(input_shape)

        def call(self, inputs, training=False):
            return inputs * self.scale + self.offset

    layer = Scale()
    layer(torch.ones(2, 3))
    layer.trainable = False
    layer.trainable = True
    assert layer.scale.requires_grad and not layer.offset.requires_grad


def test_freeze_by_keras_layer_name():
    from bigmodel import keras
    from bigmodel.keras import layers

    model = keras.Sequential([layers.Dense(4, input_shape=(3,), name="body"),
                              layers.BatchNormalization(name="norm"), layers.Dense(2, name="head")])
    model.build((None, 3))
    assert transfer.layer_blocks(model) == ["body", "norm", "head"]
    transfer.freeze(model, ["body", "norm"])
    assert not model.get_layer("body").trainable and not model.get_layer("norm").trainable
    assert model.get_layer("head").trainable
    assert len(model.trainable_weights) == 2


# -- heads -------------------------------------------------------------------------------------------


def test_replace_head_on_registry_model_and_plain_module():
    model = create_model("seed-cnn")
    transfer.freeze(model)
    head = transfer.replace_head(model, 4)
    assert model.classifier is head and head.out_features == 4 and model.num_classes == 4
    assert all(p.requires_grad for p in head.parameters())
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 4)
    plain = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3))
    transfer.replace_head(plain, 7)
    assert plain(torch.rand(2, 5)).shape == (2, 7) and transfer.head_size(plain) == 7


def test_head_that_does_not_fit_the_data_is_an_error():
    model = create_model("seed-cnn", num_classes=3)
    assert transfer.check_head(model, np.array([0, 2, 1])) == 3
    with pytest.raises(ShapeError, match=r"3 outputs but the labels hold class ids in \[0, 5\]"):
        transfer.check_head(model, np.array([0, 5]))
    with pytest.raises(ShapeError, match="class ids in"):
        transfer.check_head(model, torch.tensor([-1, 0]))
    with pytest.raises(InputTypeError, match="integer class ids"):
        transfer.check_head(model, np.array([0.5]))
    with pytest.raises(ConfigError, match="'num_classes' must be a positive int"):
        transfer.replace_head(model, 0)
    with pytest.raises(ConfigError, match="no reset_classifier"):
        transfer.replace_head(nn.Sequential(nn.ReLU()), 2)


# -- discriminative learning rates --------------------------------------------------------------


def test_param_groups_first_pattern_wins_and_default():
    net = Net()
    groups = transfer.param_groups(net, {"classifier": 1e-2, "*": 1e-4})
    assert [(g["name"], g["lr"], g["param_names"]) for g in groups] == [
        ("classifier", 1e-2, ["classifier.weight", "classifier.bias"]),
        ("*", 1e-4, ["conv.weight", "conv.bias", "bn.weight", "bn.bias", "fc.weight", "fc.bias"])]
    groups = transfer.param_groups(net, [("fc", 1e-3)], default_lr=1e-5, weight_decay=0.1)
    by_name = {g["name"]: g for g in groups}
    assert by_name["fc"]["param_names"] == ["fc.weight"] and by_name["fc"]["weight_decay"] == 0.1
    assert by_name["fc (no decay)"]["param_names"] == ["fc.bias"]
    assert by_name["default (no decay)"]["weight_decay"] == 0.0
    optimizer = torch.optim.AdamW(groups, lr=1.0)
    assert sorted({g["lr"] for g in optimizer.param_groups}) == [1e-5, 1e-3]
    with pytest.raises(ConfigError, match="must be a number > 0"):
        transfer.param_groups(net, {"fc": 0})
    with pytest.raises(ConfigError, match="'fcc' matches no module"):
        transfer.param_groups(net, {"fcc": 1e-3})


def test_layerwise_lr_decays_from_the_head_down():
    model = create_model("bert-classifier", num_layers=2)
    assert transfer.layer_blocks(model) == ["embeddings", "encoder.layers.0", "encoder.layers.1",
                                            "classifier"]
    groups = transfer.layerwise_lr(model, 1e-3, decay=0.5)
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs == {"classifier": 1e-3, "encoder.layers.1": 5e-4, "encoder.layers.0": 2.5e-4,
                   "embeddings": 1.25e-4}
    covered = sum(len(g["params"]) for g in groups)
    assert covered == len(list(model.parameters()))  # every parameter in exactly one group
    with pytest.raises(ConfigError, match="'decay' must be in"):
        transfer.layerwise_lr(model, 1e-3, decay=2.0)
    cnn = create_model("seed-cnn")
    assert transfer.layer_blocks(cnn) == ["conv1", "conv2", "conv3", "fc", "classifier"]


# -- gradual unfreezing -------------------------------------------------------------------------


def test_gradual_unfreezing_unfreezes_one_block_per_epoch():
    torch.manual_seed(0)
    net = Net()
    x, y = blobs()
    snapshots = []

    class Record(transfer.GradualUnfreezing):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append({n: p.requires_grad for n, p in net.named_parameters()})

    initial = {n: p.detach().clone() for n, p in net.named_parameters()}
    trainer = Trainer(net, loss=nn.CrossEntropyLoss(), optimizer="adam", lr=1e-2, device="cpu",
                      verbose=0, seed=0)
    callback = Record(every=1)
    trainer.fit((x, y), epochs=3, batch_size=32, callbacks=[callback])
    assert callback.blocks == ["conv", "bn", "fc", "classifier"]
    trainable_per_epoch = [sorted({n.split(".")[0] for n, t in s.items() if t}) for s in snapshots]
    assert trainable_per_epoch == [["classifier"], ["classifier", "fc"], ["bn", "classifier", "fc"]]
    # conv never unfrozen: unchanged; bn unfrozen in epoch 3 and added to the optimizer: changed
    assert torch.equal(net.conv.weight, initial["conv.weight"])
    assert not torch.equal(net.bn.weight, initial["bn.weight"])
    held = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert id(net.bn.weight) in held


def test_gradual_unfreezing_bad_arguments():
    with pytest.raises(ConfigError, match="'every' must be an int >= 1"):
        transfer.GradualUnfreezing(every=0)
    with pytest.raises(ConfigError, match="'nope' matches no module"):
        transfer.GradualUnfreezing(Net(), blocks=["nope"])


# -- end to end ----------------------------------------------------------------------------------


def test_feature_extraction_learns_and_leaves_the_body_unchanged():
    torch.manual_seed(0)
    source = Net(classes=3)
    x, y = blobs(classes=3)
    Trainer(source, loss=nn.CrossEntropyLoss(), lr=1e-2, device="cpu", verbose=0, seed=0).fit(
        (x, y), epochs=15, batch_size=32)
    transfer.replace_head(source, 2)
    transfer.freeze(source, ["conv", "bn"])
    body = {k: v.clone() for k, v in source.state_dict().items() if k.startswith(("conv", "bn"))}
    xt, yt = blobs(classes=2, seed=1)
    trainer = Trainer(source, loss=nn.CrossEntropyLoss(), lr=1e-2, device="cpu", verbose=0, seed=0)
    history = trainer.fit((xt, yt), epochs=15, batch_size=32)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    after = source.state_dict()
    assert all(torch.equal(after[k], v) for k, v in body.items())  # weights and BN statistics


def test_gradual_unfreezing_with_keras_fit():
    from bigmodel import keras
    from bigmodel.keras import layers

    torch.manual_seed(0)
    model = keras.Sequential([layers.Dense(8, activation="relu", input_shape=(4,), name="body"),
                              layers.Dense(8, activation="relu", name="middle"),
                              layers.Dense(3, activation="softmax", name="head")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.build((None, 4))
    before = [w.copy() for w in model.get_weights()]
    x = np.random.default_rng(0).random((64, 4)).astype("float32")
    y = np.random.default_rng(1).integers(0, 3, 64)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[transfer.GradualUnfreezing()])
    changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights())]
    assert changed == [False, False, True, True, True, True]  # body never unfrozen in 2 epochs
