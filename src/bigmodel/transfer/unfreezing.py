"""Gradual unfreezing (Howard & Ruder, 2018): train the head first, then one more block per stage.

``GradualUnfreezing`` is an engine callback, so it works with ``Trainer.fit`` and Keras
``Model.fit`` alike::

    groups = layerwise_lr(model, base_lr=1e-3)                  # every parameter, frozen or not
    trainer = Trainer(model, loss, optimizer=lambda _: torch.optim.AdamW(groups))
    trainer.fit(data, epochs=4, callbacks=[GradualUnfreezing(model)])

At the start of training every block except the top ``initial`` ones is frozen; at the start of
each later stage (every ``every`` epochs) the next block down is unfrozen. A parameter unfrozen
that the optimizer does not hold yet (an optimizer built over trainable parameters only) is added
to it as a new group with ``lr`` (default: the learning rate of the optimizer's last group).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from bigmodel.engine.callbacks import Callback
from bigmodel.errors import ConfigError, InputTypeError
from bigmodel.transfer.freezing import freeze, match_parameters, unfreeze
from bigmodel.transfer.param_groups import layer_blocks

__all__ = ["GradualUnfreezing"]


class GradualUnfreezing(Callback):
    """Unfreeze ``blocks`` from the top down, one every ``every`` epochs.

    Args:
        module: the network (default: the trainer's ``model``, or the Keras model itself).
        blocks: module names or globs from input to output (default:
            :func:`~bigmodel.transfer.param_groups.layer_blocks` of the module).
        every: epochs per stage (>= 1).
        initial: blocks trainable from the first epoch (>= 1; the head).
        lr: learning rate of groups added to the optimizer for newly unfrozen parameters.
        verbose: print each unfreezing.

    Raises:
        ConfigError: ``every`` / ``initial`` out of range, or a block that matches nothing.
    """

    def __init__(self, module: nn.Module | None = None, blocks: Sequence[str] | None = None,
                 every: int = 1, initial: int = 1, lr: float | None = None, verbose: int = 0) -> None:
        super().__init__()
        if module is not None and not isinstance(module, nn.Module):
            raise InputTypeError(f"GradualUnfreezing: 'module' must be an nn.Module; received "
                                 f"{type(module).__name__}")
        for name, value in (("every", every), ("initial", initial)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"GradualUnfreezing: '{name}' must be an int >= 1; received "
                                  f"{value!r}")
        if lr is not None and not lr > 0:
            raise ConfigError(f"GradualUnfreezing: 'lr' must be > 0 or None; received {lr!r}")
        self.module, self.every, self.initial, self.lr = module, every, initial, lr
        self.blocks = list(blocks) if blocks is not None else None
        self.verbose = verbose
        self.unfrozen: list[str] = []  # blocks unfrozen so far, top first
        if module is not None:
            self._check_blocks(module)

    def _check_blocks(self, module: nn.Module) -> list[str]:
        blocks = self.blocks if self.blocks is not None else layer_blocks(module)
        if not blocks:
            raise ConfigError(f"GradualUnfreezing: {type(module).__name__} has no blocks")
        match_parameters(module, blocks, "GradualUnfreezing")  # every block must match
        self.blocks = blocks
        return blocks

    def _network(self) -> nn.Module:
        if self.module is not None:
            return self.module
        target = self.model
        inner = getattr(target, "model", None)
        module = inner if isinstance(inner, nn.Module) else target
        if not isinstance(module, nn.Module):
            raise ConfigError("GradualUnfreezing: cannot find the network to unfreeze; pass "
                              "module=...")
        self.module = module
        return module

    def _torch_optimizer(self) -> Any:
        optimizer = getattr(self.model, "optimizer", None)
        return getattr(optimizer, "torch_optimizer", optimizer)

    def stage(self, epoch: int) -> int:
        """Number of blocks trainable during ``epoch`` (0-based)."""
        return min(len(self.blocks or ()), self.initial + epoch // self.every)

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        module = self._network()
        blocks = self._check_blocks(module)
        freeze(module, blocks)
        self.unfrozen = []

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        blocks = self.blocks or []
        wanted = blocks[len(blocks) - self.stage(epoch):][::-1]  # top first
        new = [b for b in wanted if b not in self.unfrozen]
        if not new:
            return
        module = self._network()
        names = [n for block in new for n in unfreeze(module, block)]
        self.unfrozen.extend(new)
        self._add_to_optimizer(module, names)
        if self.verbose:
            print(f"GradualUnfreezing: epoch {epoch + 1}: unfroze {', '.join(new)}")

    def _add_to_optimizer(self, module: nn.Module, names: list[str]) -> None:
        optimizer = self._torch_optimizer()
        if optimizer is None:
            return
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        params = dict(module.named_parameters())
        missing = [params[n] for n in names if id(params[n]) not in held]
        if not missing:
            return
        lr = self.lr if self.lr is not None else optimizer.param_groups[-1]["lr"]
        optimizer.add_param_group({"params": missing, "lr": lr, "name": "unfrozen"})
        clip_list = getattr(self.model, "_params", None)  # the Trainer clips these gradients
        if isinstance(clip_list, list):
            clip_list.extend(missing)
