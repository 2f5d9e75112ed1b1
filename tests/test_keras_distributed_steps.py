"""Keras's step loop under torchrun: one launch of 2 CPU processes (gloo) trains a custom
``train_step`` model (on arrays and on a DataLoader), a GAN-like model with two optimizers, a
two-output compiled model and an ``add_loss`` autoencoder, compared with the same program run as one process on the same global
batches; then the bad inputs, each refused on both processes without a hang."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from distributed_helpers import environment, torchrun_command

WORKER = Path(__file__).with_name("keras_distributed_steps_worker.py")
CASES = ("custom", "loader", "gan", "outputs", "weighted", "add_loss")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``(one-process (arrays, results), [rank 0 (arrays, results), rank 1 (arrays, results)],
    the 2-process launch's stdout)``."""
    from keras_distributed_steps_worker import main

    base = tmp_path_factory.mktemp("keras_steps")
    one, two = base / "one", base / "two"
    command = [*torchrun_command(2), str(WORKER), str(two)]
    done = subprocess.run(command, env=environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-2000:]}\n{done.stderr[-6000:]}"
    main(str(one))  # the one-process reference, in this process (no torchrun variables here)

    def load(folder: Path, rank: int):
        return (dict(np.load(folder / f"rank{rank}.npz")),
                json.loads((folder / f"rank{rank}.json").read_text()))

    return load(one, 0), [load(two, 0), load(two, 1)], done.stdout


def test_weights_equal_on_both_ranks_and_to_one_process(runs):
    (single, _), [(rank0, _), (rank1, _)], _ = runs
    assert rank0.keys() == rank1.keys() == single.keys()
    for case in CASES:
        keys = [k for k in single if k.startswith(f"{case}/") and "predict" not in k]
        assert len(keys) >= 2, case
        for key in keys:
            np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)
            np.testing.assert_allclose(rank0[key], single[key], rtol=0, atol=1e-5, err_msg=key)
    # the discriminator's unused weight kept its value (no gradient, nothing waited for one)
    np.testing.assert_array_equal(rank0["gan/discriminator._stack.0.spare"], np.ones(3))


def test_history_and_evaluate_equal_on_both_ranks_and_to_one_process(runs):
    (_, single), [(_, rank0), (_, rank1)], _ = runs
    expected_keys = {"custom": {"loss", "mae", "val_loss", "val_mae"}, "loader": {"loss", "mae"},
                     "gan": {"d_loss", "g_loss", "last_d_loss"},
                     "outputs": {"loss", "a_loss", "b_loss", "b_accuracy",
                                 "val_loss", "val_a_loss", "val_b_loss", "val_b_accuracy"},
                     "weighted": {"loss", "mae"}, "add_loss": {"loss"}}
    for case in CASES:
        history = single[case]["history"]
        assert set(history) == expected_keys[case]
        assert rank0[case]["history"] == rank1[case]["history"], case
        for key, values in history.items():
            assert len(values) == 2
            np.testing.assert_allclose(rank0[case]["history"][key], values, rtol=0, atol=1e-5,
                                       err_msg=f"{case}/{key}")
    for case in ("custom", "add_loss"):  # evaluate through test_step (with callbacks for custom)
        assert rank0[case]["evaluate"] == rank1[case]["evaluate"]
        for key, value in single[case]["evaluate"].items():
            assert rank0[case]["evaluate"][key] == pytest.approx(value, abs=1e-5)


def test_progress_is_printed_by_rank_zero_only(runs):
    *_, stdout = runs
    # the add_loss model's fit(verbose=2): one line per epoch from one process, not two
    assert stdout.count("Epoch 1/2") == 1 and stdout.count("Epoch 2/2") == 1, stdout[-2000:]


def test_batch_logs_are_reduced_when_a_callback_reads_them(runs):
    (_, single), [(_, rank0), (_, rank1)], _ = runs
    seen, reference = rank0["custom"]["batch_logs"], single["custom"]["batch_logs"]
    assert seen == rank1["custom"]["batch_logs"]
    # 4 steps per epoch, then the validation's end, for 2 epochs
    assert [entry[0] for entry in seen] == ["train"] * 4 + ["test_end"] + ["train"] * 4 + ["test_end"]
    for mine, theirs in zip(seen, reference):
        for key, value in theirs[-1].items():
            assert mine[-1][key] == pytest.approx(value, abs=1e-5), (mine, theirs)


def test_predict_returns_the_whole_result_in_order_on_every_process(runs):
    (single, one), [(rank0, _), (rank1, two)], _ = runs
    # custom predict_step (x 2), 13 samples: shares of 7 padded and trimmed again
    for key, shape in (("custom/predict", (13, 1)), ("outputs/predict_a", (10, 2)),
                       ("outputs/predict_b", (10, 3))):
        assert rank0[key].shape == single[key].shape == shape
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)
        np.testing.assert_allclose(rank0[key], single[key], rtol=0, atol=1e-5, err_msg=key)
    # predict with callbacks ran the step loop: 10 samples at global batch 4 -> 5 each, batches of 2
    assert one["outputs"]["predict_batches"] == 3
    assert two["outputs"]["predict_batches"] == 3


@pytest.mark.parametrize("case, kind, words", [
    ("tensor_logs", "TrainingError", "['predictions'] hold ['Tensor of shape (4, 1)']"),
    ("manual", "TrainingError", "hold different weights"),
    ("differ", "ConfigError", "disagree about the model"),
    ("differ_lazy", "TrainingError", "optimizers hold different variables"),
    ("layout", "NotSupportedError", "ModelParallel"),
])
def test_bad_input_is_refused_on_every_process(runs, case, kind, words):
    _, ranks, _ = runs
    for _, results in ranks:  # both processes raised it, and the job went on: nothing hung
        message = results[f"error_{case}"]
        assert message is not None and message.startswith(kind) and words in message, message
