"""In-memory batching and data adapters (bigmodel.data.batching)."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from bigmodel.data.batching import (
    ArrayBatches,
    Batches,
    EpochSteps,
    make_batches,
    prepare_batch,
    to_tensors,
)
from bigmodel.errors import DataError, InputTypeError


def test_dtypes_are_standardized():
    x = np.arange(12, dtype=np.float64).reshape(6, 2)
    y = np.array([0, 1, 2, 0, 1, 2], dtype=np.int32)
    w = np.ones(6, dtype=np.float64)
    tx, ty, tw = to_tensors((x, y, w))
    assert tx.dtype == torch.float32 and ty.dtype == torch.int64 and tw.dtype == torch.float32
    np.testing.assert_array_equal(tx.numpy(), x.astype(np.float32))
    _, ybool = to_tensors((x, np.array([True, False] * 3)))
    assert ybool.dtype == torch.float32
    tokens, _ = to_tensors((np.zeros((6, 3), dtype=np.int32), y))
    assert tokens.dtype == torch.int32  # integer inputs (token ids) keep their dtype


def test_length_mismatch_names_both_arguments():
    with pytest.raises(DataError, match=r"train x has 5.*train y has 4"):
        to_tensors((np.zeros((5, 2)), np.zeros(4)), prefix="train")


def test_empty_data_is_refused():
    with pytest.raises(DataError, match=r"train x is empty"):
        to_tensors((np.zeros((0, 2)), np.zeros(0)), prefix="train")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_are_refused_with_index(bad):
    x = np.zeros((10, 3), dtype=np.float32)
    x[7, 1] = bad
    with pytest.raises(DataError, match=r"val x contains NaN or Inf in 1 sample\(s\), first at index 7"):
        to_tensors((x, np.zeros(10)), prefix="val")
    y = np.zeros(10)
    y[2] = bad
    with pytest.raises(DataError, match=r"val y .*index 2"):
        to_tensors((np.zeros((10, 3)), y), prefix="val")


def test_large_finite_values_pass_the_screen():
    # The fast sum screen overflows here; the exact check must still accept the data.
    x = np.full((4, 2), 3e38, dtype=np.float32)
    (tx, _) = to_tensors((x, np.zeros(4)))
    assert torch.isfinite(tx).all()


def test_non_numeric_dtypes_are_refused():
    with pytest.raises(InputTypeError, match=r"train x must be a numeric array"):
        to_tensors((np.array([["a"], ["b"]]), np.zeros(2)), prefix="train")
    with pytest.raises(InputTypeError, match=r"y must be a numeric array"):
        to_tensors((np.zeros((2, 1)), np.array([object(), object()])))
    with pytest.raises(InputTypeError, match=r"x\[0\] must be a NumPy array or a torch.Tensor"):
        to_tensors(([[1.0], [2.0]], np.zeros(2)))


def test_multi_input_structures():
    x = {"a": np.zeros((4, 2)), "b": np.ones((4, 3), dtype=np.float32)}
    tx, _ = to_tensors((x, np.zeros(4)))
    assert set(tx) == {"a", "b"} and tx["a"].dtype == torch.float32
    with pytest.raises(DataError, match=r"x\['b'\] has 3"):
        to_tensors(({"a": np.zeros((4, 2)), "b": np.zeros((3, 2))}, np.zeros(4)))


def test_shuffle_is_a_seeded_permutation_per_epoch():
    x = torch.arange(10).float().unsqueeze(1)
    y = torch.arange(10)
    batches = ArrayBatches((x, y), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert len(batches) == 3
    epoch1 = [b[1] for b in batches]
    epoch2 = [b[1] for b in batches]
    assert [len(b) for b in epoch1] == [4, 4, 2]
    order1, order2 = torch.cat(epoch1), torch.cat(epoch2)
    assert sorted(order1.tolist()) == list(range(10)) and sorted(order2.tolist()) == list(range(10))
    assert not torch.equal(order1, order2)  # a new permutation each epoch
    for xb, yb in batches:
        assert torch.equal(xb.squeeze(1).long(), yb)  # x and y gathered with the same indices
    again = ArrayBatches((x, y), 4, True, torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat([b[1] for b in again]), order1)


def test_no_shuffle_keeps_order():
    x = torch.arange(5).float()
    batches = list(ArrayBatches((x.unsqueeze(1), x), batch_size=2))
    assert [b[1].tolist() for b in batches] == [[0, 1], [2, 3], [4]]


def test_make_batches_forms():
    x, y = np.zeros((6, 2), dtype=np.float32), np.zeros(6, dtype=np.int64)
    assert isinstance(make_batches((x, y), 2), ArrayBatches)
    assert isinstance(make_batches({"a": x, "b": x}, 2, require_targets=False), ArrayBatches)
    dataset = TensorDataset(torch.zeros(6, 2), torch.zeros(6))
    loader = make_batches(dataset, 4, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert isinstance(loader, Batches) and isinstance(loader.source, DataLoader) and len(loader) == 2
    given = DataLoader(dataset, batch_size=3)
    assert make_batches(given, 99).source is given
    listed = [(x[:3], y[:3]), (x[3:], y[3:])]
    wrapped = make_batches(listed, 2)  # a list of batches is not (x, y)
    assert wrapped.source is listed and not wrapped.one_shot and len(wrapped) == 2
    assert make_batches(iter(listed), 2).one_shot
    with pytest.raises(InputTypeError, match=r"train must be"):
        make_batches(42, 2, name="train")
    with pytest.raises(DataError, match=r"needs targets"):
        make_batches(x, 2, name="train")
    with pytest.raises(DataError, match=r"batch_size must be >= 1"):
        make_batches((x, y), 0)


def test_epoch_steps_continue_across_epochs():
    data = [(torch.tensor([i]), torch.tensor([i])) for i in range(5)]
    steps = EpochSteps(make_batches(data, 1), 3)
    epochs = [[int(b[1]) for b in steps] for _ in range(3)]
    assert epochs == [[0, 1, 2], [3, 4, 0], [1, 2, 3]]  # re-iterable data starts over
    once = EpochSteps(make_batches(iter(data), 1), 3)
    assert [[int(b[1]) for b in once] for _ in range(3)] == [[0, 1, 2], [3, 4], []]


def test_prepare_batch_converts_numpy_and_dtypes():
    batch = prepare_batch((np.zeros((2, 3)), np.array([1, 0], dtype=np.int32)))
    assert batch[0].dtype == torch.float32 and batch[1].dtype == torch.int64
    assert prepare_batch(torch.zeros(2, 3))[0].shape == (2, 3)
    with pytest.raises(InputTypeError, match=r"A batch must be"):
        prepare_batch("not a batch")
