"""An optimizer's state in a Keras 3 ``.keras`` archive (``model.weights.h5``, group
``optimizer/vars``), so that real Keras continues training where bigmodel stopped.

Keras 3 writes ``optimizer.variables`` by index: ``0`` the step count (``iterations``, int64),
``1`` the learning rate (float32), then each trainable variable's slots in the order of
``model.trainable_variables`` (Adam: ``momentum``, ``velocity``), in the variable's Keras layout.
bigmodel's Adam is torch's: ``exp_avg`` and ``exp_avg_sq`` are Keras's momentum and velocity (the
same moving averages), ``step`` its iterations.

Written for what maps one to one: an ``Adam`` (no AMSGrad, no weight decay, a constant learning
rate) of a Sequential or functional model whose layers hold their weights directly (no recurrent
cell, attention projections or nested models, whose Keras variable order differs from the file's).
Anything else writes no optimizer state, as before: Keras then warns that it skips the optimizer
variables and starts the optimizer fresh. Reading is the same mapping backwards: a ``.keras`` file
from Keras or bigmodel gives a loaded model's Adam its state (other cases warn and start fresh).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bigmodel.keras import optimizers as optimizers_mod
from bigmodel.keras.keras_weights import weight_entries
from bigmodel.keras.model_classes import model_class

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


def keras_optimizer_variables(model: Any) -> list[np.ndarray] | None:
    """The arrays of Keras 3's ``optimizer.variables`` for ``model``'s optimizer, or None when
    its state cannot be written in Keras's form (see the module docstring).

    Args:
        model: a compiled bigmodel Keras model, after at least one training step.

    Returns:
        ``[iterations, learning_rate, momentum_0, velocity_0, momentum_1, ...]`` or None.
    """
    optimizer = getattr(model, "optimizer", None)
    if type(optimizer) is not optimizers_mod.Adam or optimizer.amsgrad or optimizer.weight_decay \
            or getattr(optimizer, "_schedule", None) is not None or not optimizer.built:
        return None
    entries = _trainable_entries(model)
    torch_optimizer = optimizer.torch_optimizer
    if not entries:
        return None
    slots: list[np.ndarray] = []
    steps = set()
    for owner, attr in entries:
        state = torch_optimizer.state.get(getattr(owner, attr))
        if not state or "exp_avg" not in state:
            return None  # a weight the optimizer has not stepped: no state to match Keras's
        steps.add(int(state["step"]))
        slots += [_keras_layout(owner, attr, state["exp_avg"]),
                  _keras_layout(owner, attr, state["exp_avg_sq"])]
    if len(steps) != 1:
        return None
    lr = float(torch_optimizer.param_groups[0]["lr"])
    return [np.asarray(steps.pop(), dtype=np.int64), np.asarray(lr, dtype=np.float32), *slots]


def write_optimizer_variables(model: Any, h5: Any) -> bool:
    """Write ``optimizer/vars/<i>`` into the open h5py file ``h5`` when the state maps to
    Keras's (see :func:`keras_optimizer_variables`). Returns whether it was written."""
    arrays = keras_optimizer_variables(model)
    if arrays is None:
        return False
    group = h5.require_group("optimizer/vars")
    h5["optimizer"].attrs["name"] = "adam"
    for index, array in enumerate(arrays):
        group.create_dataset(str(index), data=array)
    return True


def read_optimizer_arrays(h5: Any) -> list[np.ndarray] | None:
    """``optimizer/vars/<i>`` of an open Keras weights file in index order, or None."""
    group = h5.get("optimizer/vars") if "optimizer" in h5 else None
    if group is None or not len(group):
        return None
    return [np.asarray(group[str(i)]) for i in range(len(group))]


def restore_optimizer_variables(model: Any, arrays: list[np.ndarray], where: Any) -> bool:
    """Give ``model``'s (compiled) Adam the state in ``arrays`` (Keras 3's ``optimizer.variables``
    of a ``.keras`` file, from Keras or bigmodel), building its torch optimizer.

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
    reason = None
    if type(optimizer) is not optimizers_mod.Adam or optimizer.amsgrad or optimizer.weight_decay:
        reason = f"its optimizer is {type(optimizer).__name__}, bigmodel restores plain Adam's"
    elif not entries:
        reason = "bigmodel restores it for Sequential/functional models of plain layers"
    elif len(arrays) != 2 + 2 * len(entries):
        reason = (f"the file holds {len(arrays)} optimizer variables, Adam has "
                  f"{2 + 2 * len(entries)} for this model")
    if reason is not None:
        warnings.warn(f"'{where}': the optimizer's saved state is not restored ({reason}); it "
                      "starts fresh", stacklevel=3)
        return False
    slots = []
    for index, (owner, attr) in enumerate(entries):
        param = getattr(owner, attr)
        perm = owner._weight_perms.get(attr)
        for position in (2 + 2 * index, 3 + 2 * index):
            array = arrays[position]
            expected = tuple(int(param.shape[i]) for i in np.argsort(perm)) if perm is not None \
                else tuple(param.shape)
            if tuple(array.shape) != expected:
                raise WeightsFileError(f"'{where}': optimizer variable {position} for "
                                       f"'{owner.name}/{attr}' has shape {tuple(array.shape)}; "
                                       f"the weight's is {expected}")
            tensor = torch.from_numpy(np.array(array, dtype=np.float32))
            slots.append(tensor.permute(*perm) if perm is not None else tensor)
    if not optimizer.built:
        optimizer.build(model.parameters())
    torch_optimizer = optimizer.torch_optimizer
    step = float(arrays[0])
    for index, (owner, attr) in enumerate(entries):
        param = getattr(owner, attr)
        torch_optimizer.state[param] = {
            "step": torch.tensor(step),
            "exp_avg": slots[2 * index].to(param.device, param.dtype).contiguous(),
            "exp_avg_sq": slots[2 * index + 1].to(param.device, param.dtype).contiguous()}
    if optimizer._schedule is None:
        for group in torch_optimizer.param_groups:
            group["lr"] = float(arrays[1])
    return True
