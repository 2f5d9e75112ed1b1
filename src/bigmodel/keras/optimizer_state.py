"""An optimizer's state in a Keras 3 ``.keras`` archive (``model.weights.h5``, group
``optimizer/vars``), so that real Keras continues training where bigmodel stopped, and back.

Keras 3 writes ``optimizer.variables`` by index: ``0`` the step count (``iterations``, int64),
``1`` the learning rate (float32), then the slots of the trainable variables (in the order of
``model.trainable_variables``, each in the variable's Keras layout): slots created together are
interleaved per variable (Adam: ``momentum_0, velocity_0, momentum_1, ...``), slots created apart
follow in blocks (RMSprop: every ``velocity``, then every ``momentum``). :data:`_SLOTS` says, per
optimizer class, which torch state tensor is which Keras slot (Adam's ``exp_avg`` is Keras's
``momentum``; SGD's ``momentum_buffer`` is Keras's ``momentum`` divided by ``-learning_rate``:
torch's SGD keeps the velocity without the rate, Keras's with it).

Written for what maps one to one: SGD, RMSprop, Adam (AMSGrad's ``velocity_hat`` in a block of
its own), AdamW, Adagrad, Adamax, Nadam (its momentum product last), Adadelta, Lion, Lamb, Ftrl,
Muon (Adam's velocity only for the weights that take Adam's step) and ScheduleFreeAdamW at a
constant learning rate, and Adafactor (its row / column factors in Keras's layout, two
placeholder scalars for a weight of one axis), for a Sequential or functional model
whose layers hold their weights directly (no recurrent cell, attention projections or nested
models, whose Keras variable order differs from the file's). Anything else writes no optimizer
state, as before: Keras then warns that it skips the optimizer variables and starts fresh.
Reading is the same mapping backwards (other cases warn and start fresh).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bigmodel.keras import optimizers as optimizers_mod
from bigmodel.keras.keras_weights import weight_entries
from bigmodel.keras.model_classes import model_class
from bigmodel.keras.optimizer_rules_extra import KerasMuon

__all__ = ["keras_optimizer_variables", "read_optimizer_arrays", "restore_optimizer_variables",
           "write_optimizer_variables"]

_FLAT_EXCLUDED = ("SimpleRNN", "LSTM", "GRU", "MultiHeadAttention", "TimeDistributed",
                  "Bidirectional")


def _trainable_entries(model: Any) -> list[tuple[Any, str]] | None:
    """``(layer, attribute)`` of every trainable weight in Keras's ``trainable_variables`` order,
    or None when that order cannot be vouched for (see the module docstring)."""
    if not isinstance(model, (model_class("Sequential"), model_class("Functional"))):
        return None
    found = []
    for owner, attr, path in weight_entries(model):
        if not attr:
            continue
        if type(owner).__name__ in _FLAT_EXCLUDED or path.count("/") != 3:
            return None  # not layers/<name>/vars/<i>: a nested layer or model
        param = getattr(owner, attr)
        if isinstance(param, torch.nn.Parameter) and param.requires_grad:
            found.append((owner, attr))
    return found


def _keras_layout(owner: Any, attr: str, tensor: torch.Tensor) -> np.ndarray:
    perm = owner._weight_perms.get(attr)
    if perm is not None:  # torch layout -> Keras layout, as the weights themselves
        tensor = tensor.permute(*np.argsort(perm).tolist())
    return tensor.detach().cpu().contiguous().numpy()


# torch state key and the factor Keras's slot is of it, per slot; slots of one group are
# interleaved per variable, the groups follow one another (see the module docstring). A group
# may be a function of the weight when its slots differ per weight (Muon: Adam's velocity only
# for the weights that take Adam's step).
_Slot = tuple[str, float]
_Group = list[_Slot] | Callable[[torch.Tensor], list[_Slot]]


def _slot_groups(optimizer: Any) -> list[_Group] | None:
    """Keras's slots of ``optimizer`` as torch state keys, or None when they do not map."""
    opt = optimizers_mod
    kind = type(optimizer)
    if getattr(optimizer, "_schedule", None) is not None:
        return None  # Keras would save the schedule's rate; bigmodel keeps a constant one
    if kind in (opt.Adam, opt.AdamW):
        groups: list[_Group] = [[("exp_avg", 1.0), ("exp_avg_sq", 1.0)]]
        return groups + [[("max_exp_avg_sq", 1.0)]] if optimizer.amsgrad else groups
    lr = optimizer.learning_rate if kind in (opt.SGD, opt.RMSprop) else 1.0
    if lr == 0:
        return None  # a velocity scaled by a zero rate could not be read back
    if kind is opt.SGD:
        # torch keeps the velocity without the rate (w -= lr * buf), Keras with it (w += m)
        return [[("momentum_buffer", -lr)]] if optimizer.momentum else []
    if kind is opt.RMSprop:
        groups = [[("square_avg", 1.0)]]
        if optimizer.momentum:
            groups.append([("momentum_buffer", lr)])
        if optimizer.centered:
            groups.append([("grad_avg", 1.0)])
        return groups
    if kind is opt.Muon:
        choice = {"exclude_embeddings": optimizer.exclude_embeddings,
                  "exclude_layers": optimizer.exclude_layers}
        return [lambda p: [("m", 1.0), ("v", 1.0)] if KerasMuon.uses_adam(p, choice)
                else [("m", 1.0)]]
    if kind is opt.Adafactor:
        return [_adafactor_slots]
    table = {opt.Adamax: [("m", 1.0), ("u", 1.0)], opt.Nadam: [("m", 1.0), ("v", 1.0)],
             opt.Adagrad: [("sum", 1.0)], opt.Adadelta: [("square_avg", 1.0), ("acc_delta", 1.0)],
             opt.Lion: [("m", 1.0)], opt.Lamb: [("m", 1.0), ("v", 1.0)],
             opt.Ftrl: [("accumulator", 1.0), ("linear", 1.0)],
             opt.ScheduleFreeAdamW: [("m", 1.0), ("v", 1.0)]}
    return [table[kind]] if kind in table else None


def _adafactor_slots(param: torch.Tensor) -> list[_Slot]:
    # KerasAdafactor keeps r, c, v in the weight's Keras layout already ("=" keys); a weight of
    # fewer than 2 axes has Keras's two placeholder scalars ("0") before its v
    rank = param.dim()
    return [("=r", 1.0), ("=c", 1.0), ("=v", 1.0)] if rank >= 2 else [
        ("0", 1.0), ("0", 1.0), ("=v", 1.0)]


def _slot_shape(key: str, keras_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of slot ``key`` of a weight of ``keras_shape`` (Adafactor's factored ones)."""
    if key == "0":
        return ()
    if key == "=r":
        return keras_shape[:-1]
    if key == "=c":
        return keras_shape[:-2] + keras_shape[-1:]
    return keras_shape


def _trailing(optimizer: Any) -> int:
    """How many scalars Keras keeps after the slots (Nadam: its momentum product)."""
    return 1 if type(optimizer) is optimizers_mod.Nadam else 0


def _positions(groups: list[_Group], params: list[torch.Tensor],
               ) -> tuple[list[list[tuple[int, str, float]]], int]:
    """Per weight (in order), ``(index in optimizer.variables, torch key, factor)`` of its slots,
    and the number of variables up to the last slot."""
    result: list[list[tuple[int, str, float]]] = [[] for _ in params]
    offset = 2  # iterations, learning_rate
    for group in groups:
        for index, param in enumerate(params):
            for key, factor in (group(param) if callable(group) else group):
                result[index].append((offset, key, factor))
                offset += 1
    return result, offset


def _iterations(optimizer: Any, states: list[dict]) -> int | None:
    steps = {int(state["step"]) for state in states if "step" in state}
    if len(steps) > 1:
        return None
    # torch's SGD counts no steps: the optimizer's own count of updates
    return steps.pop() if steps else int(optimizer._schedule_step)


def keras_optimizer_variables(model: Any) -> list[np.ndarray] | None:
    """The arrays of Keras 3's ``optimizer.variables`` for ``model``'s optimizer, or None when
    its state cannot be written in Keras's form (see the module docstring).

    Args:
        model: a compiled bigmodel Keras model, after at least one training step.

    Returns:
        ``[iterations, learning_rate, slots...]`` or None.
    """
    optimizer = getattr(model, "optimizer", None)
    if not isinstance(optimizer, optimizers_mod.Optimizer) or not optimizer.built:
        return None
    groups = _slot_groups(optimizer)
    entries = _trainable_entries(model)
    if groups is None or not entries or optimizer._schedule_step == 0:
        return None
    torch_optimizer = optimizer.torch_optimizer
    states = [torch_optimizer.state.get(getattr(owner, attr)) or {} for owner, attr in entries]
    positions, _ = _positions(groups, [getattr(owner, attr) for owner, attr in entries])
    slots: dict[int, np.ndarray] = {}
    for (owner, attr), state, places in zip(entries, states, positions):
        for index, key, factor in places:
            if key == "0":
                slots[index] = np.zeros((), np.float32)
            elif key.lstrip("=") not in state:
                return None  # a weight the optimizer has not stepped: no state to match Keras's
            elif key.startswith("="):
                slots[index] = state[key[1:]].detach().cpu().contiguous().numpy()
            else:
                slots[index] = _keras_layout(owner, attr, state[key] * factor)
    iterations = _iterations(optimizer, states)
    if iterations is None:
        return None
    lr = float(torch_optimizer.param_groups[0]["lr"])
    trailing = [np.asarray(torch_optimizer.param_groups[0].get("u_product", 1.0), np.float32)
                ] * _trailing(optimizer)
    return [np.asarray(iterations, dtype=np.int64), np.asarray(lr, dtype=np.float32),
            *(slots[i] for i in sorted(slots)), *trailing]


def write_optimizer_variables(model: Any, h5: Any) -> bool:
    """Write ``optimizer/vars/<i>`` into the open h5py file ``h5`` when the state maps to
    Keras's (see :func:`keras_optimizer_variables`). Returns whether it was written."""
    arrays = keras_optimizer_variables(model)
    if arrays is None:
        return False
    group = h5.require_group("optimizer/vars")
    h5["optimizer"].attrs["name"] = type(model.optimizer).__name__.lower()
    for index, array in enumerate(arrays):
        group.create_dataset(str(index), data=array)
    return True


def read_optimizer_arrays(h5: Any) -> list[np.ndarray] | None:
    """``optimizer/vars/<i>`` of an open Keras weights file in index order, or None."""
    group = h5.get("optimizer/vars") if "optimizer" in h5 else None
    if group is None or not len(group):
        return None
    return [np.asarray(group[str(i)]) for i in range(len(group))]


_TORCH_STEP = (torch.optim.Adam, torch.optim.AdamW, torch.optim.Adagrad, torch.optim.Adadelta,
               torch.optim.RMSprop)


def restore_optimizer_variables(model: Any, arrays: list[np.ndarray], where: Any) -> bool:
    """Give ``model``'s (compiled) optimizer the state in ``arrays`` (Keras 3's
    ``optimizer.variables`` of a ``.keras`` file, from Keras or bigmodel), building its torch
    optimizer.

    A state that does not map (another optimizer, a model outside the module docstring's cases,
    another number of variables) is skipped with a warning, as Keras skips it: the optimizer
    starts fresh.

    Returns:
        Whether the state was restored.

    Raises:
        WeightsFileError: the right number of variables, but one of another shape.
    """
    import warnings

    from bigmodel.keras.keras_weights import WeightsFileError

    if len(arrays) <= 2 and (not arrays or int(arrays[0]) == 0):
        return False  # an optimizer saved before its first step: fresh is what it held
    optimizer = getattr(model, "optimizer", None)
    entries = _trainable_entries(model)
    groups = _slot_groups(optimizer) if isinstance(optimizer, optimizers_mod.Optimizer) else None
    reason = None
    positions, expected_count = _positions(
        groups or [], [getattr(owner, attr) for owner, attr in entries or []])
    expected_count += _trailing(optimizer)
    if groups is None:
        reason = (f"its optimizer is {type(optimizer).__name__}; bigmodel restores SGD, RMSprop, "
                  "Adam, AdamW, Adagrad, Adamax, Nadam, Adadelta, Lion, Lamb, Ftrl, Muon, "
                  "ScheduleFreeAdamW and Adafactor at a constant learning rate")
    elif not entries:
        reason = "bigmodel restores it for Sequential/functional models of plain layers"
    elif len(arrays) != expected_count:
        reason = (f"the file holds {len(arrays)} optimizer variables, {type(optimizer).__name__} "
                  f"has {expected_count} for this model")
    if reason is not None:
        warnings.warn(f"'{where}': the optimizer's saved state is not restored ({reason}); it "
                      "starts fresh", stacklevel=3)
        return False
    slots: list[dict[str, torch.Tensor]] = []
    for (owner, attr), places in zip(entries, positions):
        param = getattr(owner, attr)
        perm = owner._weight_perms.get(attr)
        expected = tuple(int(param.shape[i]) for i in np.argsort(perm)) if perm is not None \
            else tuple(param.shape)
        found = {}
        for index, key, factor in places:
            array, shape = arrays[index], _slot_shape(key, expected)
            if tuple(array.shape) != shape:
                raise WeightsFileError(f"'{where}': optimizer variable {index} for "
                                       f"'{owner.name}/{attr}' has shape {tuple(array.shape)}; "
                                       f"{'the weight' if shape == expected else 'this slot'}'s "
                                       f"is {shape}")
            if key == "0":
                continue  # Keras's placeholder
            tensor = torch.from_numpy(np.array(array, dtype=np.float32)) / factor
            if key.startswith("="):
                found[key[1:]] = tensor  # kept in Keras's layout
            else:
                found[key] = tensor.permute(*perm) if perm is not None else tensor
        slots.append(found)
    if not optimizer.built:
        optimizer.build(model.parameters())
    torch_optimizer = optimizer.torch_optimizer
    step = int(arrays[0])
    for (owner, attr), found in zip(entries, slots):
        param = getattr(owner, attr)
        state = {key: value.to(param.device, param.dtype).contiguous()
                 for key, value in found.items()}
        if isinstance(torch_optimizer, _TORCH_STEP):
            state["step"] = torch.tensor(float(step))
        elif not isinstance(torch_optimizer, torch.optim.SGD):
            state["step"] = step  # bigmodel's Keras rules count in Python ints
        torch_optimizer.state[param] = state
    optimizer._schedule_step = step
    for group in torch_optimizer.param_groups:
        group["lr"] = float(arrays[1])
        if _trailing(optimizer):  # Nadam's momentum product and its step count
            group["u_product"], group["iterations"] = float(arrays[-1]), step
    return True
