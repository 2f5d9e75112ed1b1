"""keras.dtype_policies, keras.FloatDTypePolicy, the keras.Variable constructor, keras.device,
keras.name_scope and keras.version, against real Keras 3 (torch backend)."""


import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, InputTypeError, NotSupportedError
from keras_reference import real_keras as _real_keras


def test_dtype_policies_get_serialize_deserialize_as_keras():
    real = _real_keras()
    ours, theirs = keras.dtype_policies, real.dtype_policies
    assert ours.DTypePolicy is keras.mixed_precision.DTypePolicy is keras.DTypePolicy
    assert keras.FloatDTypePolicy is ours.FloatDTypePolicy
    assert issubclass(ours.FloatDTypePolicy, ours.DTypePolicy)
    for identifier in ("float32", "mixed_bfloat16", "mixed_float16", "bfloat16", np.float32,
                       torch.bfloat16, {"class_name": "DTypePolicy", "config": {"name": "float16"}},
                       {"class_name": "FloatDTypePolicy", "config": {"name": "mixed_float16"}}):
        policy, reference = ours.get(identifier), theirs.get(identifier)
        assert (policy.name, policy.compute_dtype, policy.variable_dtype) == (
            reference.name, reference.compute_dtype, reference.variable_dtype)
        assert type(policy).__name__ == type(reference).__name__
        assert ours.serialize(policy) == theirs.serialize(reference)
        # each side reads the other's dict
        assert ours.deserialize(theirs.serialize(reference)) == policy
        assert theirs.deserialize(ours.serialize(policy)).name == reference.name
    assert ours.get(None) == keras.mixed_precision.dtype_policy()
    policy = ours.get("mixed_bfloat16")
    assert ours.get(policy) is policy


def test_dtype_policies_refuse_what_they_cannot_read():
    with pytest.raises(NotSupportedError, match="int8"):
        keras.dtype_policies.get("int8_from_float32")
    with pytest.raises(NotSupportedError, match="QuantizedDTypePolicy"):
        keras.dtype_policies.deserialize({"class_name": "QuantizedDTypePolicy",
                                          "config": {"mode": "int8", "source_name": "float32"}})
    with pytest.raises(ConfigError, match="Cannot interpret `dtype`"):
        keras.dtype_policies.get(3)
    with pytest.raises(ConfigError, match="unknown class_name 'Foo'"):
        keras.dtype_policies.deserialize({"class_name": "Foo", "config": {}})
    with pytest.raises(ConfigError, match="unknown policy name"):
        keras.dtype_policies.get("nope")
    with pytest.raises(ConfigError, match="serialize"):
        keras.dtype_policies.serialize("float32")
    with pytest.raises(AttributeError, match="keras.dtype_policies.Int4DTypePolicy"):
        keras.dtype_policies.Int4DTypePolicy  # noqa: B018


def test_variable_constructor_as_keras():
    real = _real_keras()
    for args, kwargs in (((np.arange(6.0).reshape(2, 3),), {}),
                         ((2.5,), {"trainable": False, "name": "s"}),
                         (("ones",), {"shape": (2, 3), "dtype": "float32"}),
                         ((np.array([1, 2]),), {"dtype": "float32", "name": "w"})):
        ours, theirs = keras.Variable(*args, **kwargs), real.Variable(*args, **kwargs)
        np.testing.assert_array_equal(ours.numpy(), np.asarray(theirs.numpy()))
        assert (tuple(ours.shape), ours.trainable) == (tuple(theirs.shape), theirs.trainable)
        if "name" in kwargs:  # (Keras numbers unnamed ones: variable_1, ...; here "variable")
            assert (ours.name, ours.path) == (theirs.name, theirs.path)
        assert str(ours.dtype).removeprefix("torch.") == theirs.dtype
    seeded = keras.Variable(keras.initializers.GlorotUniform(seed=1), shape=(3, 4))
    np.testing.assert_allclose(seeded.numpy(),
                               real.initializers.GlorotUniform(seed=1)((3, 4)).cpu().numpy(),
                               atol=1e-6)
    assert isinstance(seeded, torch.nn.Parameter) and seeded.requires_grad
    variable = keras.Variable(np.zeros(3, "float32"))
    variable.assign([1.0, 2.0, 3.0])
    assert variable.numpy().tolist() == [1.0, 2.0, 3.0]
    # the layers' weights still are Variables, trainable and not, with their layer paths
    layer = keras.layers.Dense(2, name="d")
    layer.build((None, 3))
    fixed = layer.add_weight(shape=(2,), initializer="ones", trainable=False, name="count")
    assert isinstance(layer.kernel, keras.Variable) and layer.kernel.trainable
    assert (fixed.trainable, fixed.path, fixed.numpy().tolist()) == (False, "d/count", [1.0, 1.0])
    state = keras.metrics.Metric(name="m").add_variable(shape=(2,), name="total")  # state
    assert isinstance(state, keras.Variable) and not state.trainable


def test_variable_constructor_refuses_bad_arguments():
    with pytest.raises(ConfigError, match="`shape` argument should be specified"):
        keras.Variable("zeros")
    with pytest.raises(ConfigError, match=r"does not match the `shape` argument \(3,\)"):
        keras.Variable(np.zeros(2), shape=(3,))
    with pytest.raises(ConfigError, match="unknown dtype 'floaty'"):
        keras.Variable(1.0, dtype="floaty")
    with pytest.raises(ConfigError, match="cannot contain character `/`"):
        keras.Variable(1.0, name="a/b")


def test_name_scope_device_and_version():
    real = _real_keras()
    for lib in (keras, real):
        with lib.name_scope("outer"):
            with lib.name_scope("inner"):
                nested = lib.Variable(1.0, name="w").path
            with lib.name_scope("other", override_parent="top"):
                overridden = lib.Variable(1.0, name="v").path
        assert (nested, overridden) == ("outer/inner/w", "top/other/v")
        assert lib.Variable(1.0, name="w").path == "w"  # the scopes are closed
    with pytest.raises(ConfigError, match="cannot contain character"):
        keras.name_scope("a/b")
    with keras.device("meta") as chosen:  # torch's device context: factories create there
        assert chosen == torch.device("meta") and torch.ones(2).device.type == "meta"
    with keras.device("CPU:0"):
        assert keras.ops.ones((2,)).device.type == "cpu"
    assert torch.ones(1).device.type == "cpu"
    with pytest.raises(InputTypeError, match="device_name"):
        with keras.device(0):
            pass
    with pytest.raises(ConfigError, match="unknown device 'tpu:0'"):
        with keras.device("tpu:0"):
            pass
    assert keras.version() == real.version()  # the Keras release whose API bigmodel follows
