"""Training policy of a recipe's ``train`` (and ``data.augment``) section, and the one fit function.

``recipe_optimizer(train, params)`` is the optimizer of every recipe run -- ``bigmodel train``,
``finetune`` and ``compress``'s fine-tuning alike -- with Keras's defaults written out
(``epsilon=1e-7``, RMSprop ``rho=0.9``), so a model is fine-tuned with the optimizer it was trained
with. ``build_trainer`` + ``fit`` wrap the engine's ``Trainer`` with the recipe's settings; the run
path (:mod:`bigmodel.recipes.run`) and compression both train through them.
"""

from __future__ import annotations

from typing import Any

from bigmodel.errors import ConfigError

KERAS_EPSILON = 1e-7  # Keras's optimizers' epsilon (torch's default is 1e-8)
KERAS_RHO = 0.9  # Keras's RMSprop rho (torch's alpha default is 0.99)


def recipe_optimizer(train, parameters):
    """A ``torch.optim`` optimizer for ``train.optimizer`` with Keras's defaults.

    Args:
        train: a recipe's ``train`` section (optimizer, lr, weight_decay, momentum).
        parameters: parameters or param groups (groups may carry their own ``lr``).

    Returns:
        Adam / AdamW / SGD / RMSprop with ``epsilon=1e-7`` (RMSprop ``rho=0.9``); ``weight_decay``
        is torch's (added to the gradient for adam/sgd/rmsprop, decoupled for adamw).
    """
    from bigmodel.engine.optimizers import create_optimizer

    return create_optimizer(train.optimizer, list(parameters), lr=train.lr,
                            weight_decay=train.weight_decay, momentum=train.momentum,
                            epsilon=KERAS_EPSILON, rho=KERAS_RHO)


def kernel_l2_penalty(model, l2: float):
    """``extra_loss`` for the Trainer: ``l2 * sum(w**2)`` over conv/linear weights (Keras's ``l2``)."""
    import torch
    from torch import nn

    kernel_types = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)

    def penalty() -> torch.Tensor:
        # Collected per call: the Trainer may move or convert the model after this is built.
        kernels = [m.weight for m in model.modules() if isinstance(m, kernel_types)]
        return l2 * torch.stack([w.pow(2).sum() for w in kernels]).sum()

    return penalty


def build_augmentation(specs):
    """``nn.Sequential`` of ``bigmodel.nn.augment`` modules (identity in eval mode), or None.

    Raises:
        ConfigError: an unknown augmentation or arguments it does not accept (names the index).
    """
    if not specs:
        return None
    from torch import nn

    try:
        from bigmodel.nn import augment
    except ImportError as exc:
        raise ConfigError(f"data.augment needs bigmodel.nn.augment, which cannot be imported: "
                          f"{exc}") from None
    modules = []
    for index, spec in enumerate(specs):
        cls = getattr(augment, spec.name, None)
        if cls is None:
            raise ConfigError(f"data.augment.{index}.name: bigmodel.nn.augment has no {spec.name!r}")
        try:
            modules.append(cls(**spec.args))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"data.augment.{index}: {spec.name}({spec.args}) failed: {exc}") from None
    return nn.Sequential(*modules)


def augmented(model, augmentation):
    """``model`` behind ``augmentation`` (applied in training mode only): ``(B, C, H, W)`` in."""
    from torch import nn

    class Augmented(nn.Module):
        """Applies batch augmentation (training mode only) before the model: ``(B, C, H, W)``."""

        def __init__(self) -> None:
            super().__init__()
            self.augment = augmentation
            self.model = model

        def forward(self, x):
            return self.model(self.augment(x))

    return Augmented()


def build_trainer(module, train, inputs, *, run_dir=None, verbose: int = 0, extra_loss=None):
    """The engine's ``Trainer`` for ``module`` with a recipe's ``train`` settings.

    Args:
        module: what is trained (the model, possibly behind augmentation or a distiller).
        train: the recipe's ``train`` section.
        inputs: the task's :class:`~bigmodel.recipes.tasks.FitInputs` (loss, metrics, parameters).
        run_dir: where the Trainer writes checkpoints (None: nowhere).
        verbose: progress output (0, 1, 2).
        extra_loss: a penalty added to the loss (e.g. :func:`kernel_l2_penalty`).
    """
    from bigmodel.engine.trainer import Trainer

    parameters = inputs.parameters
    if parameters is None:
        parameters = [p for p in module.parameters() if p.requires_grad]
    return Trainer(
        module, loss=inputs.loss, lr=train.lr, metrics=list(inputs.metrics),
        optimizer=recipe_optimizer(train, parameters), device=train.device,
        precision=train.precision, grad_clip_norm=train.grad_clip_norm,
        run_dir=None if run_dir is None else str(run_dir), seed=train.seed, verbose=verbose,
        channels_last=train.channels_last,
        scheduler=train.scheduler.engine_spec() if train.scheduler is not None else None,
        extra_loss=extra_loss, strategy=train.strategy,
        activation_checkpointing=train.activation_checkpointing, compile=train.compile,
        grad_accum_steps=train.grad_accum_steps, checkpoint_every=train.checkpoint_every,
        keep_checkpoints=train.keep_checkpoints)


def fit(trainer, train, inputs, callbacks=(), resume: bool = False) -> Any:
    """Train ``trainer`` for ``train.epochs`` on the task's data; returns the ``History``."""
    return trainer.fit(inputs.train, inputs.validation, epochs=train.epochs,
                       batch_size=train.batch_size, shuffle=inputs.shuffle,
                       callbacks=[*inputs.callbacks, *callbacks],
                       steps_per_epoch=inputs.steps_per_epoch, resume=resume)


def early_stopping(train, verbose: int = 0):
    """The ``EarlyStopping`` callback ``train.early_stopping`` asks for, or None."""
    if train.early_stopping is None:
        return None
    from bigmodel.engine.callbacks import EarlyStopping

    spec = train.early_stopping
    return EarlyStopping(monitor=spec.monitor, patience=spec.patience, min_delta=spec.min_delta,
                         verbose=min(verbose, 1), restore_best_weights=spec.restore_best_weights)


__all__ = ["augmented", "build_augmentation", "build_trainer", "early_stopping", "fit",
           "kernel_l2_penalty", "recipe_optimizer"]
