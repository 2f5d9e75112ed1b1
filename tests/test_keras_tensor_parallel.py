"""Tensor parallelism where a ``keras.distribution`` layout asks for it: the plan's decisions and
refusals, checked without processes. The 2-process runs (a Megatron MLP trained on a mesh (1, 2),
compared with one process) are in ``test_keras_distributed.py``, in its one torchrun launch."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, NotSupportedError
from bigmodel.keras import distributed_fit, distribution, layers, tensor_parallel
from distributed_helpers import environment, torchrun_command

WORKER = Path(__file__).with_name("keras_tensor_parallel_worker.py")
FULL = os.environ.get("BIGMODEL_FULL_DISTRIBUTED") == "1"


def _chosen(entries: dict, shape=(1, 2)) -> SimpleNamespace:
    """A ModelParallel's view of a mesh of 2 devices (a real ModelParallel needs 2 processes)."""
    mesh = distribution.DeviceMesh(shape, ["batch", "model"][:len(shape)],
                                   devices=[f"cpu:{i}" for i in range(int(np.prod(shape)))])
    layout_map = distribution.LayoutMap(mesh)
    for key, axes in entries.items():
        layout_map[key] = axes
    return SimpleNamespace(layout_map=layout_map, device_mesh=mesh, batch_dim_name="batch",
                           model_dim_name="model" if len(shape) > 1 else None)


def _plan(model, entries, shape=(1, 2)):
    return tensor_parallel.tensor_parallel_plan(model, _chosen(entries, shape),
                                                distributed_fit.weight_paths(model))


def _mlp() -> keras.Model:
    return keras.Sequential([keras.Input((6,)), layers.Dense(8, name="a"), layers.Dense(4, name="b"),
                             layers.Dense(4, name="c")])


def test_roles_follow_keras_axes_and_pairs_follow_the_graph():
    model = _mlp()
    plan = _plan(model, {"a/kernel": (None, "model"), "b/kernel": ("model", None),
                         "c/kernel": (None, "model")})
    roles = {layer.name: role for layer, role in plan.roles.items()}
    assert roles == {"a": "column", "b": "row", "c": "column"}
    assert {layer.name for layer in plan.keep_sharded} == {"a"}
    assert plan.data_partition(1) == (0, 1) and plan.data_partition(0) == (0, 1)
    # a functional graph: a's output also feeds a residual sum, so it is gathered
    inputs = keras.Input((6,))
    hidden = layers.Dense(6, name="a")(inputs)
    mixed = layers.Add()([layers.Dense(6, name="b")(hidden), hidden])
    residual = keras.Model(inputs, layers.Dense(2, name="c")(mixed))
    plan = _plan(residual, {"a/kernel": (None, "model"), "b/kernel": ("model", None)})
    assert not plan.keep_sharded
    chain = keras.Model(inputs, layers.Dense(2, name="d")(layers.Dense(6, name="c")(
        layers.Dense(6, name="a2")(inputs))))
    plan = _plan(chain, {"a2/kernel": (None, "model"), "c/kernel": ("model", None)})
    assert {layer.name for layer in plan.keep_sharded} == {"a2"}


def test_a_2d_mesh_splits_data_over_the_batch_axis_only():
    plan = _plan(_mlp(), {"a/kernel": (None, "model")}, shape=(2, 2))
    assert [plan.data_partition(rank) for rank in range(4)] == [(0, 2), (0, 2), (1, 2), (1, 2)]


def test_layouts_without_dense_over_the_model_axis_stay_fsdp():
    conv = keras.Sequential([keras.Input((6, 6, 1)), layers.Conv2D(4, 3, name="conv"),
                             layers.Flatten(), layers.Dense(2, name="a")])
    assert _plan(conv, {"conv/kernel": (None, None, None, "model")}) is None
    assert _plan(_mlp(), {"a/kernel": (None, "batch")}, shape=(2,)) is None  # 1-D: ZeRO
    assert _plan(_mlp(), {"a/kernel": (None, None)}) is None
    # Dense over the model axis beside a convolution: the convolution has no TP form here
    with pytest.raises(NotSupportedError, match=r"'conv/kernel' of layer 'conv' \(Conv2D\)"):
        _plan(conv, {"conv/kernel": (None, None, None, "model"), "a/kernel": (None, "model")})


def test_attention_splits_by_heads_or_is_refused():
    inputs = keras.Input((4, 6))
    model = keras.Model(inputs, layers.MultiHeadAttention(3, 2, name="mha")(inputs, inputs))
    heads = {"mha/(query|key|value)_kernel": (None, "model", None),
             "mha/output_kernel": ("model", None, None)}
    plan = _plan(model, heads, shape=(1, 3))
    assert [(layer.name, role) for layer, role in plan.roles.items()] == [("mha", "heads")]
    with pytest.raises(ConfigError, match=r"num_heads \(3\) is not divisible by 2"):
        _plan(model, heads)
    with pytest.raises(NotSupportedError, match="by heads only.*'query_kernel': 2"):
        _plan(model, {**heads, "mha/(query|key|value)_kernel": (None, None, "model")}, shape=(1, 3))
    with pytest.raises(NotSupportedError, match="by heads only"):  # the output projection missing
        _plan(model, {"mha/(query|key|value)_kernel": (None, "model", None)}, shape=(1, 3))


def test_refusals_name_the_layer_and_the_numbers():
    with pytest.raises(ConfigError, match=r"'b' is column parallel .* units \(4\) is not divisible by 3"):
        _plan(_mlp(), {"b/kernel": (None, "model")}, shape=(1, 3))
    with pytest.raises(NotSupportedError, match="'b/bias' .* kernel of 'b' is not split"):
        _plan(_mlp(), {"a/kernel": (None, "model"), "b/bias": ("model",)})
    regularized = keras.Sequential([keras.Input((6,)), layers.Dense(8, name="a",
                                                                    kernel_regularizer="l2")])
    with pytest.raises(NotSupportedError, match="'a' has a regularizer or constraint"):
        _plan(regularized, {"a/kernel": (None, "model")})


@pytest.mark.slow
@pytest.mark.skipif(not FULL, reason="4 processes (~40 s on 2 loaded cores): run with "
                    "BIGMODEL_FULL_DISTRIBUTED=1")
def test_data_and_tensor_parallel_on_four_processes_equals_one(tmp_path):
    """Mesh (2, 2): each batch group of two processes trains its half of every global batch as a
    tensor-parallel pair; gradients averaged over the batch axis give one process's weights."""
    import keras_tensor_parallel_worker as worker

    command = [*torchrun_command(4), str(WORKER), str(tmp_path), "dp-tp"]
    done = subprocess.run(command, env=environment(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-6000:]}"
    torch.manual_seed(0)
    model = worker.megatron_mlp()
    history = worker.train(model)
    single = model.get_weights()
    for rank in range(4):
        arrays = np.load(tmp_path / f"rank{rank}.npz")
        results = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert results["partition"] == [rank // 2, 2]
        assert results["stored"]["_stack.0.kernel"] * 2 == single[0].size
        np.testing.assert_allclose(results["history"]["loss"], history["loss"], atol=1e-5)
        for index, weight in enumerate(single):
            np.testing.assert_allclose(arrays[f"arr_{index}"], weight, atol=1e-5, err_msg=str(index))
