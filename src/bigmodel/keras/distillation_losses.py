"""``keras.distillation``'s losses: what a :class:`~bigmodel.keras.distillation.Distiller` adds to
the student's own loss, as Keras 3 computes them.

- :class:`LogitsDistillation`: teacher and student outputs divided by ``temperature``, then
  ``loss(teacher, student)``. A :class:`~bigmodel.keras.losses.KLDivergence` *object* compares the
  softmaxes of the scaled logits and is multiplied by ``T**2`` (Hinton et al., 2015); a loss given
  by *name* (``"kl_divergence"``, the default) resolves, as in Keras, to the plain loss function,
  which is applied to the scaled logits themselves (Keras's numbers, kept as they are).
- :class:`FeatureDistillation`: ``loss(teacher_features, student_features)`` on the final outputs
  or on the outputs of two named layers.

Both take one loss or a nested structure of losses matching the outputs (``None`` skips an
output), and reduce every term to its mean and sum the terms. bigmodel's own Hinton loss
(``bigmodel.compress.distill``) sits above ``keras`` in the layering and works on log-softmaxes
without Keras's probability clipping, so the Keras surface computes with Keras's loss functions.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import losses as losses_mod
from bigmodel.keras import tree
from bigmodel.keras.object_registry import get_registered_object


def loss_function(identifier: Any) -> Any:
    """A loss name to Keras's loss *function* of that name (as ``keras.losses.get`` returns for a
    string); a Loss object or callable is kept; ``None`` stays ``None``.

    Raises:
        UnknownNameError: an unknown loss name.
    """
    if identifier is None or not isinstance(identifier, str):
        return identifier
    loss = losses_mod.get(identifier)  # resolves aliases ("mse") and fails on unknown names
    snake = re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", type(loss).__name__).lower()
    function = getattr(losses_mod, snake, None)
    return function if callable(function) and not isinstance(function, type) else loss


def _serialize_loss(loss: Any) -> Any:
    if loss is None or isinstance(loss, (list, tuple, dict)):
        return tree.map_structure(_serialize_loss, loss) if loss is not None else None
    if isinstance(loss, losses_mod.Loss):
        return losses_mod.serialize(loss)
    # Keras's form of a plain loss function
    return {"module": "builtins", "class_name": "function",
            "config": getattr(loss, "__name__", str(loss)), "registered_name": "function"}


def _deserialize_loss(spec: Any) -> Any:
    if isinstance(spec, list):
        return [_deserialize_loss(s) for s in spec]
    if isinstance(spec, dict) and "class_name" not in spec:
        return {k: _deserialize_loss(v) for k, v in spec.items()}
    if isinstance(spec, dict) and spec.get("class_name") == "function":
        return spec.get("config")  # Keras's form of a loss function: its name
    if isinstance(spec, dict):
        return losses_mod.deserialize(spec)
    return spec  # a name or None: resolved by the constructor


def _mean(value: Any) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.float32).float().mean()


class DistillationLoss:
    """Base class of the distillation losses (Keras's ``keras.distillation.DistillationLoss``).

    Subclasses override :meth:`compute_loss` (a scalar tensor from teacher and student outputs).
    """

    def compute_loss(self, teacher_outputs: Any, student_outputs: Any, **kwargs: Any) -> Any:
        """The scalar distillation loss between teacher and student outputs."""
        raise NotImplementedError("Subclasses must implement compute_loss")

    def validate_outputs(self, teacher_outputs: Any, student_outputs: Any) -> None:
        """Raises ShapeError when the outputs are not nested the same way."""
        tree.assert_same_structure(teacher_outputs, student_outputs)

    def validate_model_compatibility(self, teacher: Any, student: Any) -> None:
        """Raises when this loss cannot be used with these models (the base accepts all)."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DistillationLoss:
        config = dict(config)
        if "loss" in config:
            config["loss"] = _deserialize_loss(config["loss"])
        return cls(**config)


def _structured_losses(place: str, loss: Any) -> Any:
    resolved = tree.map_structure(loss_function, loss)
    if all(item is None for item in tree.flatten(resolved)):
        raise ConfigError(f"{place}: the `loss` argument must contain at least one non-`None` "
                          f"value; received loss={loss!r}")
    return resolved


def _check_structure(loss: Any, outputs: Any) -> None:
    try:
        tree.assert_same_structure(loss, outputs)
    except (ShapeError, ValueError) as error:
        raise ShapeError(f"Loss structure mismatch: the losses {loss!r} do not match the "
                         f"outputs' structure ({error})") from error


class FeatureDistillation(DistillationLoss):
    """Match the teacher's features: ``mean(loss(teacher, student))`` summed over outputs.

    Args:
        loss: a loss name, Loss object or callable, or a nested structure of them matching the
            outputs (``None`` skips an output). Defaults to ``"mse"``.
        teacher_layer_name / student_layer_name: the layers whose outputs are compared (both
            models then must be functional or Sequential); ``None``: the final output.

    Raises:
        ConfigError: every loss is ``None``.
        UnknownNameError: an unknown loss name.
    """

    def __init__(self, loss: Any = "mse", teacher_layer_name: str | None = None,
                 student_layer_name: str | None = None):
        self.teacher_layer_name = teacher_layer_name
        self.student_layer_name = student_layer_name
        self.loss = _structured_losses("FeatureDistillation", loss)

    def validate_model_compatibility(self, teacher: Any, student: Any) -> None:
        """Raises ConfigError: a layer name with a subclassed model, or a layer not found."""
        if self.teacher_layer_name is not None or self.student_layer_name is not None:
            subclassed = [role for role, model in (("teacher", teacher), ("student", student))
                          if getattr(model, "inputs", None) is None]
            if subclassed:
                raise ConfigError(
                    "FeatureDistillation with specific layer names requires Functional or "
                    f"Sequential models. The {' and '.join(subclassed)} model(s) appear to be "
                    "subclassed (no symbolic inputs/outputs); use FeatureDistillation without "
                    "layer names, or LogitsDistillation")
        for role, model, name in (("teacher", teacher, self.teacher_layer_name),
                                  ("student", student, self.student_layer_name)):
            if name is not None:
                try:
                    model.get_layer(name=name)
                except (ValueError, LookupError, ConfigError) as error:
                    raise ConfigError(f"In {role} model: {error}") from error

    def validate_outputs(self, teacher_outputs: Any, student_outputs: Any) -> None:
        super().validate_outputs(teacher_outputs, student_outputs)
        _check_structure(self.loss, teacher_outputs)

    def compute_loss(self, teacher_outputs: Any, student_outputs: Any, **kwargs: Any) -> Any:
        """Sum over outputs of ``mean(loss(teacher_features, student_features))``."""
        def term(loss_fn: Any, teacher: Any, student: Any) -> torch.Tensor:
            if loss_fn is None:
                return torch.zeros(())
            return _mean(loss_fn(teacher, student))

        return torch.stack(tree.flatten(tree.map_structure(
            term, self.loss, teacher_outputs, student_outputs))).sum()

    def get_config(self) -> dict[str, Any]:
        return {"loss": _serialize_loss(self.loss), "teacher_layer_name": self.teacher_layer_name,
                "student_layer_name": self.student_layer_name}


class LogitsDistillation(DistillationLoss):
    """Match the teacher's temperature-scaled logits (Keras's ``LogitsDistillation``).

    Args:
        temperature: the logits of both models are divided by it (> 0). Defaults to 3.0.
        loss: a loss name, Loss object or callable, or a nested structure of them matching the
            outputs (``None`` skips an output). Defaults to ``"kl_divergence"``.

    Raises:
        ConfigError: ``temperature`` not a positive number, or every loss ``None``.
        UnknownNameError: an unknown loss name.
    """

    def __init__(self, temperature: float = 3.0, loss: Any = "kl_divergence"):
        self.temperature = temperature
        self.loss = _structured_losses("LogitsDistillation", loss)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise ConfigError(f"LogitsDistillation: temperature must be a number; received "
                              f"temperature={temperature!r}")
        if temperature <= 0.0:
            raise ConfigError(f"LogitsDistillation: temperature must be positive; received "
                              f"temperature={temperature!r}")

    def compute_loss(self, teacher_outputs: Any, student_outputs: Any, **kwargs: Any) -> Any:
        """Sum over outputs of the loss of the logits divided by ``temperature``."""
        t = self.temperature

        def term(loss_fn: Any, teacher: Any, student: Any) -> torch.Tensor:
            if loss_fn is None:
                return torch.zeros(())
            teacher, student = teacher / t, student / t
            if isinstance(loss_fn, losses_mod.KLDivergence):  # on softened probabilities
                return _mean(loss_fn(torch.softmax(teacher, dim=-1),
                                     torch.softmax(student, dim=-1))) * (t ** 2)
            return _mean(loss_fn(teacher, student))

        return torch.stack(tree.flatten(tree.map_structure(
            term, self.loss, teacher_outputs, student_outputs))).sum()

    def get_config(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "loss": _serialize_loss(self.loss)}


def get_distillation_loss(spec: Any) -> DistillationLoss:
    """A distillation loss from its serialized form ``{"class_name", "config"}`` (or an object).

    Raises:
        ConfigError: not a distillation loss.
    """
    if isinstance(spec, DistillationLoss):
        return spec
    classes = {cls.__name__: cls for cls in (LogitsDistillation, FeatureDistillation)}
    if isinstance(spec, dict) and "class_name" in spec:
        cls = classes.get(spec["class_name"]) or get_registered_object(spec["class_name"])
        if isinstance(cls, type) and issubclass(cls, DistillationLoss):
            return cls.from_config(spec.get("config", {}))
    raise ConfigError(f"Distiller: distillation_losses must hold DistillationLoss objects; "
                      f"received {spec!r}")
