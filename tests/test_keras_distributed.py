"""Keras programs under torchrun: one launch of 2 CPU processes (gloo) running a CNN, an LSTM, a
ModelParallel Dense model and a tensor-parallel Megatron MLP, compared with the same program run as
one process; and the ``keras.distribution`` API's checks, which need no processes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bigmodel import keras
from bigmodel.errors import ConfigError, InputTypeError, NotSupportedError
from bigmodel.keras import distributed_fit, distribution, layers
from distributed_helpers import environment, torchrun_command

WORKER = Path(__file__).with_name("keras_distributed_worker.py")
MODELS = ("cnn", "lstm", "mlp")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``(one-process results, [rank 0 results, rank 1 results], two-process out dir)``."""
    base = tmp_path_factory.mktemp("keras_dist")
    one, two = base / "one", base / "two"
    for command in ([*torchrun_command(2), str(WORKER), str(two)],
                    [sys.executable, str(WORKER), str(one), str(two)]):
        done = subprocess.run(command, env=environment(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{command} failed:\n{done.stdout[-2000:]}\n{done.stderr[-6000:]}"

    def load(folder: Path, rank: int):
        return (dict(np.load(folder / f"rank{rank}.npz")),
                json.loads((folder / f"rank{rank}.json").read_text()))

    return load(one, 0), [load(two, 0), load(two, 1)], two


def test_weights_equal_on_both_ranks_and_to_one_process(runs):
    (single, _), ranks, _ = runs
    (rank0, _), (rank1, _) = ranks
    assert set(single) - set(rank0) == {f"resumed_of_two/w{i}" for i in range(5)}
    assert rank0.keys() == rank1.keys() and set(rank0) <= set(single)
    for model in MODELS:
        keys = [k for k in single if k.startswith(f"{model}/w")]
        assert len(keys) >= 4
        for key in keys:
            np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)
            np.testing.assert_allclose(rank0[key], single[key], rtol=0, atol=1e-5, err_msg=key)
        # predict: the whole result on every process, equal to one process's
        assert rank0[f"{model}/predict"].shape == single[f"{model}/predict"].shape == (16, 3)
        np.testing.assert_array_equal(rank0[f"{model}/predict"], rank1[f"{model}/predict"])
        np.testing.assert_allclose(rank0[f"{model}/predict"], single[f"{model}/predict"], atol=1e-5)


def test_gradient_accumulation_under_torchrun(runs):
    """gradient_accumulation_steps=2 with global batch 8 on 2 processes: the same weights on both
    ranks, as one process's, and as batch 16 without accumulation (averaged gradients)."""
    (single, _), ranks, _ = runs
    (rank0, _), (rank1, _) = ranks
    keys = [k for k in single if k.startswith("accum/w")]
    assert len(keys) == 6
    for key in keys:
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)
        np.testing.assert_allclose(rank0[key], single[key], rtol=0, atol=1e-6, err_msg=key)
        reference = key.replace("accum/", "accum_ref/")
        np.testing.assert_allclose(rank0[key], single[reference], rtol=0, atol=1e-6, err_msg=key)


def test_predict_and_save_before_fit_use_rank_zero_weights(runs):
    (single, _), ranks, _ = runs
    (rank0, _), (rank1, _) = ranks
    # each process built the model from another seed: rank 0's weights are the job's
    assert rank0["fresh/predict"].shape == (10, 3)
    np.testing.assert_array_equal(rank0["fresh/predict"], rank1["fresh/predict"])
    np.testing.assert_allclose(rank0["fresh/predict"], single["fresh/predict"], atol=1e-6)
    np.testing.assert_allclose(rank1["fresh/reloaded"], single["fresh/predict"], atol=1e-6)


def test_history_and_evaluate_reduced_over_processes(runs):
    (_, single), ranks, _ = runs
    (_, rank0), (_, rank1) = ranks
    for model in MODELS:
        history = single[model]["history"]
        assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        assert rank0[model]["history"] == rank1[model]["history"]
        assert rank0[model]["evaluate"] == rank1[model]["evaluate"]
        for key, values in history.items():
            np.testing.assert_allclose(rank0[model]["history"][key], values, atol=1e-5, err_msg=key)
        for key, value in single[model]["evaluate"].items():
            assert rank0[model]["evaluate"][key] == pytest.approx(value, abs=1e-5)


def test_files_are_written_once_by_rank_zero(runs):
    (_, single), ranks, folder = runs
    (_, rank0), (_, rank1) = ranks
    expected = ["fresh.keras", "ckpt-1.keras", "ckpt-2.keras", "ckpt-3.keras", "mlp.keras"]
    assert single["saves"] == rank0["saves"] == expected
    assert rank1["saves"] == []  # ModelCheckpoint and model.save ran on rank 1 but wrote nothing
    with open(folder / "files" / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]  # one writer: no doubled rows
    np.testing.assert_allclose([float(r["loss"]) for r in rows], rank0["cnn"]["history"]["loss"])
    # the last checkpoint holds the final CNN weights
    restored = keras.models.load_model(folder / "files" / "ckpt-3.keras")
    final = dict(np.load(folder / "rank0.npz"))
    names = sorted(name for name, _ in restored.named_parameters())
    for index, name in enumerate(names):
        np.testing.assert_allclose(dict(restored.named_parameters())[name].detach().numpy(),
                                   final[f"cnn/w{index}"], atol=1e-6)


def test_a_stop_is_rank_zero_decision_on_every_process(runs):
    _, ranks, _ = runs
    assert [results["stop_epochs"] for _, results in ranks] == [3, 3]


def test_tensorboard_and_backup_written_once(runs):
    _, ranks, folder = runs
    for split in ("train", "validation"):  # one event file each: only rank 0 ran TensorBoard
        assert len(list((folder / "files" / "tensorboard" / split).glob("events.out.tfevents.*"))) == 1
    # BackupAndRestore: one (sharded) checkpoint of the last epoch, which a new model restores
    checkpoints = folder / "files" / "backup" / "checkpoints" / "sharded"
    assert [p.name for p in checkpoints.iterdir()] == ["epoch-0003"]
    (rank0, _), (rank1, _) = ranks
    for index in range(5):
        np.testing.assert_array_equal(rank0[f"resumed/w{index}"], rank0[f"lstm/w{index}"])
        np.testing.assert_array_equal(rank1[f"resumed/w{index}"], rank0[f"lstm/w{index}"])


def test_one_process_resumes_the_two_process_backup(runs):
    (single, _), ranks, _ = runs
    (rank0, _), _ = ranks
    for index in range(5):  # restored from the sharded checkpoint: the 2-process final weights
        np.testing.assert_array_equal(single[f"resumed_of_two/w{index}"], rank0[f"lstm/w{index}"])


def test_model_parallel_shards_parameters_and_saves_whole_model(runs):
    (single, one), ranks, folder = runs
    full = one["mlp"]["local_parameters"]
    assert full == 12 * 64 + 64 + 64 * 64 + 64 + 64 * 3 + 3
    for _, results in ranks:
        assert results["mlp"]["local_parameters"] <= 0.55 * full  # about half on each process
    loaded = keras.models.load_model(folder / "files" / "mlp.keras")  # one whole archive
    weights = dict(loaded.named_parameters())
    for index, name in enumerate(sorted(weights)):
        np.testing.assert_allclose(weights[name].detach().numpy(), single[f"mlp/w{index}"], atol=1e-5)


@pytest.mark.parametrize("case, kind, words", [
    ("batch", "ConfigError", "batch_size=7"),
    ("mesh", "ConfigError", "shape (4,)"),
    ("layout", "ConfigError", "'nope/kernel' matches no weight"),
    ("axis", "NotSupportedError", "batch axis"),
    ("two_axes", "NotSupportedError", "2 axes"),
    ("differ", "ConfigError", "disagree about the model"),
])
def test_bad_input_is_refused_on_every_process(runs, case, kind, words):
    _, ranks, _ = runs
    for _, results in ranks:  # both processes raised it (and the job went on, nothing hung)
        message = results[f"error_{case}"]
        assert message is not None and message.startswith(kind) and words in message


# --- tensor parallelism (keras_tensor_parallel_worker.py, run at the end of the same launch) -----


@pytest.fixture(scope="module")
def tensor_parallel(runs):
    """The Megatron MLP of ``keras_tensor_parallel_worker.py`` on a mesh (1, 2): ``(one-process
    (arrays, results), [(arrays, results) of rank 0, 1], the two-process folder)``."""
    _, _, two = runs

    def load(folder: Path, rank: int):
        return (dict(np.load(folder / f"rank{rank}.npz")),
                json.loads((folder / f"rank{rank}.json").read_text()))

    return load(two.parent / "one" / "tp", 0), [load(two / "tp", 0), load(two / "tp", 1)], two / "tp"


def test_tensor_parallel_training_equals_one_process(tensor_parallel):
    (single, single_results), ranks, _ = tensor_parallel
    (rank0, _), (rank1, _) = ranks
    finals = [k for k in single if k.startswith("final/")]  # get_weights() after fit
    assert len(finals) == 8
    for key in [*finals, "predict"]:
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)  # whole on both
        np.testing.assert_allclose(rank0[key], single[key], rtol=0, atol=1e-5, err_msg=key)
    for index in range(8):  # it trained: every weight moved
        assert np.abs(single[f"final/{index}"] - single[f"initial/{index}"]).max() > 1e-3
    assert single["predict"].shape == (10, 3)
    assert single_results["history"]["loss"][-1] < single_results["history"]["loss"][0]
    for _, results in ranks:
        for key, values in single_results["history"].items():
            np.testing.assert_allclose(results["history"][key], values, atol=1e-5, err_msg=key)
        for key, value in single_results["evaluate"].items():
            assert results["evaluate"][key] == pytest.approx(value, abs=1e-5)


def test_tensor_parallel_stores_half_of_each_split_kernel(tensor_parallel):
    (_, single), ranks, _ = tensor_parallel
    whole = single["stored"]
    for _, results in ranks:
        stored = results["stored"]
        assert results["roles"] == {"up": "column", "down": "row", "wide": "column"}
        for index in range(3):  # up, down, wide: kernels halved; the head replicated
            assert stored[f"_stack.{index}.kernel"] * 2 == whole[f"_stack.{index}.kernel"]
        assert stored["_stack.0.bias"] * 2 == whole["_stack.0.bias"]  # follows the column split
        assert stored["_stack.1.bias"] == whole["_stack.1.bias"]  # row parallel: replicated
        assert stored["_stack.3.kernel"] == whole["_stack.3.kernel"]


def test_a_1d_mesh_layout_stays_fsdp(tensor_parallel):
    """Kernels laid out over the batch axis of a 1-D mesh: storage sharding (FSDP), not TP."""
    (single, one), ranks, _ = tensor_parallel
    for arrays, results in ranks:
        assert results["fsdp_plan"] == "function"  # shard_plan's FSDP plan
        assert results["fsdp_stored"]["_stack.0.kernel"] * 2 == one["fsdp_stored"]["_stack.0.kernel"]
        assert results["fsdp_stored"]["_stack.1.kernel"] * 2 == one["fsdp_stored"]["_stack.1.kernel"]
        for index in range(8):
            np.testing.assert_allclose(arrays[f"fsdp/{index}"], single[f"fsdp/{index}"], atol=1e-5)


def test_tensor_parallel_column_row_pair_exchanges_no_gather(tensor_parallel):
    """One forward: the row layer's all-reduce and the last column layer's gather only; the column
    layer feeding the row layer hands over its slice as it is (Megatron's MLP)."""
    _, ranks, _ = tensor_parallel
    for _, results in ranks:
        assert results["keep_sharded"] == ["up"]
        assert results["comms"] == {"all_reduce": 1, "all_gather_into_tensor": 1}


def test_tensor_parallel_save_is_one_whole_archive(tensor_parallel):
    (single, _), ranks, folder = tensor_parallel
    loaded = keras.models.load_model(folder / "mlp.keras")
    for index, weight in enumerate(loaded.get_weights()):
        np.testing.assert_allclose(weight, single[f"final/{index}"], atol=1e-5)
    for arrays, _ in ranks:  # reloaded on each process: the whole weights
        for index in range(8):
            np.testing.assert_array_equal(arrays[f"reloaded/{index}"], arrays[f"final/{index}"])
            # set_weights on the sharded model: each process kept its slice of the whole arrays
            np.testing.assert_array_equal(arrays[f"reset/{index}"], single[f"initial/{index}"])


def test_tensor_parallel_attention_by_heads_equals_one_process(tensor_parallel):
    """MultiHeadAttention split by heads (q/k/v column-wise, the output projection row-wise), then a
    column -> row Dense pair and a residual sum, in a functional model; compiled again after two
    epochs and trained on (the layers stay split)."""
    (single, one), ranks, _ = tensor_parallel
    keys = [key for key in single if key.startswith("attention/")]
    assert len(keys) == 15  # 14 weights and the predictions
    for arrays, results in ranks:
        for key in keys:
            np.testing.assert_allclose(arrays[key], single[key], rtol=0, atol=1e-5, err_msg=key)
        np.testing.assert_allclose(results["attention_history"]["loss"],
                                   one["attention_history"]["loss"], atol=1e-5)
        stored, whole = results["attention_stored"], one["attention_stored"]
        for role in ("query", "key", "value"):
            for kind in ("kernel", "bias"):
                name = f"_graph_layers.0.{role}_{kind}"
                assert stored[name] * 2 == whole[name], name
        assert stored["_graph_layers.0.output_kernel"] * 2 == whole["_graph_layers.0.output_kernel"]
        assert stored["_graph_layers.0.output_bias"] == whole["_graph_layers.0.output_bias"]
    np.testing.assert_array_equal(ranks[0][0]["attention/predict"], ranks[1][0]["attention/predict"])
    assert one["attention_history"]["loss"][1] < one["attention_history"]["loss"][0]


def test_tensor_parallel_pair_draws_the_same_dropout_masks(tensor_parallel):
    _, ((rank0, _), (rank1, _)), _ = tensor_parallel
    keys = [key for key in rank0 if key.startswith("dropout/")]
    assert len(keys) == 4
    for key in keys:  # a different mask on either process would leave the head's weights apart
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)


@pytest.mark.parametrize("case, kind, words", [
    ("divisible", "ConfigError", "input dimension (5) is not divisible by 2"),
    ("attention", "NotSupportedError", "layer 'mha' (MultiHeadAttention) is tensor parallel by heads"),
    ("row_bias", "NotSupportedError", "'down/bias'"),
    ("axis", "ConfigError", "not axes of the mesh"),
])
def test_tensor_parallel_bad_layouts_refused_on_every_process(tensor_parallel, case, kind, words):
    _, ranks, _ = tensor_parallel
    for _, results in ranks:  # both raised it, and the job went on (nothing hung)
        message = results[f"error_{case}"]
        assert message is not None and message.startswith(kind) and words in message, message


# --- keras.distribution without processes --------------------------------------------------------


def test_devices_and_mesh_checks():
    assert distribution.list_devices("cpu") == ["cpu:0"]
    assert distribution.get_device_count("cpu") == 1
    mesh = distribution.DeviceMesh((1,), ["batch"])
    assert mesh.shape == (1,) and mesh.axis_names == ["batch"] and mesh.devices.shape == (1,)
    with pytest.raises(ConfigError, match="same length"):
        distribution.DeviceMesh((1,), ["batch", "model"])
    with pytest.raises(ConfigError, match=r"holds 2 devices but there are 1"):
        distribution.DeviceMesh((1, 2), ["batch", "model"])
    with pytest.raises(ConfigError, match="device_type"):
        distribution.list_devices("tpu")


def test_layout_map_matches_paths_as_keras():
    layout_map = distribution.LayoutMap(distribution.DeviceMesh((1, 1), ["batch", "model"]))
    layout_map[".*dense.*kernel"] = (None, "model")
    layout_map["d1/bias"] = distribution.TensorLayout(("model",))
    assert layout_map["dense_3/kernel"].axes == (None, "model")
    assert layout_map["d1/bias"].device_mesh is layout_map.device_mesh
    assert layout_map["d1/kernel"] is None and len(layout_map) == 2
    with pytest.raises(ConfigError, match="already"):
        layout_map["d1/bias"] = ("model",)
    with pytest.raises(ConfigError, match="not axes of the mesh"):
        layout_map["x"] = ("rows",)
    layout_map[".*kernel"] = (None, None)
    with pytest.raises(ConfigError, match="several LayoutMap keys"):
        layout_map["dense/kernel"]


def test_distributions_and_global_setting():
    mesh = distribution.DeviceMesh((1, 1), ["data", "model"])
    layout_map = distribution.LayoutMap(mesh)
    parallel = distribution.ModelParallel(layout_map=layout_map)
    assert parallel.batch_dim_name == "data" and parallel.model_dim_name == "model"
    assert distribution.DataParallel().device_mesh.shape == (1,)
    with pytest.raises(ConfigError, match="layout_map"):
        distribution.ModelParallel()
    with pytest.raises(ConfigError, match=r"holds 2 devices but the job has 1"):
        distribution.DataParallel(devices=["cpu:0", "cpu:1"])
    with pytest.raises(ConfigError, match="batch_dim_name"):
        distribution.ModelParallel(layout_map=layout_map, batch_dim_name="rows")
    with pytest.raises(NotSupportedError, match="3 axes"):
        distribution.ModelParallel(layout_map=distribution.LayoutMap(
            distribution.DeviceMesh((1, 1, 1), ["a", "b", "c"])))
    with pytest.raises(InputTypeError):
        distribution.set_distribution("ddp")
    assert distribution.distribution() is None
    with parallel.scope():
        assert distribution.distribution() is parallel
    assert distribution.distribution() is None
    assert keras.distribution is distribution


def test_shard_plan_maps_keras_axes_and_checks_the_model():
    model = keras.Sequential([keras.Input((4,)), layers.Dense(6, name="d1"), layers.Dense(2, name="d2")])
    assert [p for p, _, _ in distributed_fit.weight_paths(model)] == [
        "d1/kernel", "d1/bias", "d2/kernel", "d2/bias"]
    mesh = distribution.DeviceMesh((1, 1), ["batch", "model"])
    layout_map = distribution.LayoutMap(mesh)
    layout_map["d1/kernel"] = (None, "model", None)
    with pytest.raises(ConfigError, match="has 3 axes; the weight has 2"):
        distributed_fit.shard_plan(model, distribution.ModelParallel(layout_map=layout_map))
    layout_map = distribution.LayoutMap(mesh)
    layout_map["d2/output"] = ("batch", None)
    with pytest.raises(NotSupportedError, match="intermediate"):
        distributed_fit.shard_plan(model, distribution.ModelParallel(layout_map=layout_map))
    # one process: a valid layout is checked, then training is the plain one
    layout_map = distribution.LayoutMap(mesh)
    layout_map["d.*/kernel"] = (None, "model")
    with distribution.ModelParallel(layout_map=layout_map).scope():
        model.compile(optimizer="sgd", loss="mse")
        model.fit(np.ones((4, 4), "float32"), np.zeros((4, 2), "float32"), batch_size=2, verbose=0)
    assert model._trainer.strategy == "single"


def test_initialize_needs_an_address_and_a_world(monkeypatch):
    for name in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK unknown"):
        distribution.initialize()
    with pytest.raises(ConfigError, match="host:port"):
        distribution.initialize(job_addresses="10.0.0.1")


@pytest.mark.slow  # one torchrun launch with a restart (~15 s on 2 loaded cores)
@pytest.mark.full
def test_killed_rank_restarts_from_backup_and_finishes_the_same(tmp_path):
    from keras_restart_worker import train

    worker = Path(__file__).with_name("keras_restart_worker.py")
    command = [*torchrun_command(2, max_restarts=1), str(worker), str(tmp_path), "--kill"]
    done = subprocess.run(command, env=environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-6000:]}"
    assert (tmp_path / "killed").exists() and "exitcode: -9" in done.stderr  # it did die
    assert not (tmp_path / "backup").exists()  # deleted when fit ended normally
    weights = np.load(tmp_path / "final.npz")
    history = json.loads((tmp_path / "history.json").read_text())
    single_weights, single_history = train(tmp_path / "single")  # uninterrupted, one process
    for index, array in enumerate(single_weights):
        np.testing.assert_allclose(weights[f"arr_{index}"], array, atol=1e-5)
    for key, values in single_history.items():
        np.testing.assert_allclose(history[key], values, atol=1e-5, err_msg=key)
