"""``keras.distillation``: a :class:`Distiller` model trains a student on its own loss plus what a
frozen teacher predicts, as Keras 3's ``keras.distillation.Distiller`` does.

``total = w * student_loss + (1 - w) * sum_i(weight_i * distillation_loss_i)`` with
``w = student_loss_weight``. ``compile(optimizer, loss, metrics)`` and ``fit`` work as for any
model; the logs add ``student_loss``, ``distillation_loss`` and ``total_loss``.

>>> distiller = Distiller(teacher, student, LogitsDistillation(temperature=3.0))
>>> distiller.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
...                   metrics=["accuracy"])
>>> distiller.fit(x, y, epochs=5)
>>> trained = distiller.student
"""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import metrics as metrics_mod
from bigmodel.keras import tree
from bigmodel.keras.distillation_losses import (
    DistillationLoss,
    FeatureDistillation,
    LogitsDistillation,
    get_distillation_loss,
    loss_function,
)
from bigmodel.keras.model import Model
from bigmodel.keras.sequential import Sequential
from bigmodel.keras.serialization import deserialize_keras_object, serialize_keras_object

__all__ = ["DistillationLoss", "Distiller", "FeatureDistillation", "LogitsDistillation"]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Distiller(Model):
    """A model that trains ``student`` from labels and from a frozen ``teacher``.

    Args:
        teacher: a trained :class:`Model`; frozen (``trainable = False``).
        student: the :class:`Model` trained; ``distiller.student`` after ``fit``.
        distillation_losses: one :class:`DistillationLoss` or a list of them.
        distillation_loss_weights: one weight per distillation loss (default all 1.0).
        student_loss_weight: weight ``w`` in [0, 1] of the student's supervised loss; the
            distillation losses get ``1 - w``. Defaults to 0.5.
        name: the model name. Defaults to ``"distiller"``.

    Raises:
        ConfigError: not models, ``student_loss_weight`` outside [0, 1], no distillation loss,
            weights of another length, a FeatureDistillation layer not found.
        ShapeError: teacher and student inputs or outputs of different shapes or dtypes.
    """

    def __init__(self, teacher: Any, student: Any, distillation_losses: Any,
                 distillation_loss_weights: Any = None, student_loss_weight: float = 0.5,
                 name: str = "distiller", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        for role, model in (("teacher", teacher), ("student", student)):
            if not isinstance(model, Model):
                raise ConfigError(f"Distiller: {role} must be a keras.Model; received "
                                  f"{type(model).__name__}")
        _check_compatible(teacher, student)
        self.teacher = teacher
        self.student = student
        if not _is_number(student_loss_weight) or not 0.0 <= student_loss_weight <= 1.0:
            raise ConfigError(f"Distiller: student_loss_weight must be a number between 0.0 "
                              f"and 1.0; received student_loss_weight={student_loss_weight!r}")
        self.student_loss_weight = student_loss_weight
        if distillation_losses is None:
            raise ConfigError("Distiller: 'distillation_losses' cannot be None; pass a "
                              "LogitsDistillation, a FeatureDistillation or a list of them")
        if not isinstance(distillation_losses, (list, tuple)):
            distillation_losses, distillation_loss_weights = [distillation_losses], [1.0]
        losses = [get_distillation_loss(loss) for loss in distillation_losses]
        if distillation_loss_weights is None:
            distillation_loss_weights = [1.0] * len(losses)
        if len(distillation_loss_weights) != len(losses):
            raise ConfigError(f"Distiller: number of distillation_loss_weights "
                              f"({len(distillation_loss_weights)}) must match number of "
                              f"distillation_losses ({len(losses)})")
        # a plain list attribute: these are not layers, nothing to track
        object.__setattr__(self, "distillation_losses", losses)
        self.distillation_loss_weights = list(distillation_loss_weights)
        for loss in losses:
            loss.validate_model_compatibility(teacher, student)
        # not registered as sub-modules: they share the teacher's and student's layers, whose
        # weights must be listed (and stepped by the optimizer) once
        object.__setattr__(self, "_teacher_features",
                           _feature_extractor(teacher, losses, "teacher_layer_name"))
        object.__setattr__(self, "_student_features",
                           _feature_extractor(student, losses, "student_layer_name"))
        self.teacher.trainable = False
        self.student_loss_tracker = metrics_mod.Mean(name="student_loss")
        self.distillation_loss_tracker = metrics_mod.Mean(name="distillation_loss")
        self.total_loss_tracker = metrics_mod.Mean(name="total_loss")

    def compile(self, optimizer: Any = "adam", loss: Any = None, metrics: Any = None,
                **kwargs: Any) -> None:
        """Keras's ``Distiller.compile``: ``loss`` is the student's supervised loss (required).

        Raises:
            ConfigError: ``loss`` is None, or ``metrics`` is not a list or tuple.
        """
        if loss is None:
            raise ConfigError("Distiller.compile: 'loss' cannot be None; pass the student's "
                              "loss (e.g. 'sparse_categorical_crossentropy')")
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise ConfigError(f"Distiller.compile: metrics must be a list or tuple; received "
                              f"{type(metrics).__name__}")
        object.__setattr__(self, "_student_loss", tree.map_structure(loss_function, loss))
        super().compile(optimizer=optimizer, loss=None, metrics=metrics, **kwargs)

    def call(self, inputs: Any, training: Any = None) -> Any:
        """The student's predictions."""
        return self.student(inputs, training=training)

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None,
                     sample_weight: Any = None, training: bool = True) -> torch.Tensor:
        """``w * student_loss + (1 - w) * weighted distillation losses`` (sample weights are not
        used, as in Keras); updates the three loss trackers.

        Raises:
            ConfigError: not compiled with a loss.
            ShapeError: a distillation loss returned a non-scalar.
        """
        if getattr(self, "_student_loss", None) is None:
            raise ConfigError("Distiller: call compile(loss=...) before training")
        if y_pred is None:
            y_pred = self(x, training=training)
        student_loss = torch.zeros(())
        if self.student_loss_weight > 0.0 and y is not None:
            values = tree.flatten(tree.map_structure(
                lambda loss, target, pred: loss(target, pred), self._student_loss, y, y_pred))
            student_loss = torch.stack([torch.as_tensor(v).float().mean() for v in values]).sum()
        distillation_loss = torch.zeros(())
        if self.student_loss_weight < 1.0:
            with torch.no_grad():
                teacher = self._features(self.teacher, self._teacher_features, x, False)
            student = (self._features(self.student, self._student_features, x, training)
                       if self._student_features is not None else {"final_output": y_pred})
            for loss, weight in zip(self.distillation_losses, self.distillation_loss_weights):
                t_key = getattr(loss, "teacher_layer_name", None) or "final_output"
                s_key = getattr(loss, "student_layer_name", None) or "final_output"
                t_out = teacher[t_key]
                s_out = y_pred if s_key == "final_output" else student[s_key]
                loss.validate_outputs(t_out, s_out)
                value = torch.as_tensor(loss.compute_loss(t_out, s_out))
                if value.ndim > 0:
                    raise ShapeError(f"Distillation loss {type(loss).__name__} returned a "
                                     f"non-scalar loss with shape {tuple(value.shape)}; "
                                     "compute_loss must return a scalar tensor")
                distillation_loss = distillation_loss + weight * value
        w = self.student_loss_weight
        total = w * student_loss + (1.0 - w) * distillation_loss
        self.student_loss_tracker.update_state(student_loss.detach())
        self.distillation_loss_tracker.update_state(distillation_loss.detach())
        self.total_loss_tracker.update_state(total.detach())
        return total

    @staticmethod
    def _features(model: Any, extractor: Any, x: Any, training: Any) -> dict[str, Any]:
        if extractor is None:
            return {"final_output": model(x, training=training)}
        return extractor(x, training=training)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "trainable": self.trainable,
                "teacher": serialize_keras_object(self.teacher),
                "student": serialize_keras_object(self.student),
                "distillation_losses": [{"class_name": type(loss).__name__,
                                         "config": loss.get_config()}
                                        for loss in self.distillation_losses],
                "distillation_loss_weights": self.distillation_loss_weights,
                "student_loss_weight": self.student_loss_weight}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> Distiller:
        config = dict(config)
        config.pop("trainable", None)
        config.pop("dtype", None)
        for role in ("teacher", "student"):
            config[role] = deserialize_keras_object(config[role], custom_objects=custom_objects)
        return cls(**config)


def _check_compatible(teacher: Any, student: Any) -> None:
    """Keras's checks: symbolic inputs and outputs of both models of equal shapes and dtypes."""
    for what in ("inputs", "outputs"):
        t_list, s_list = getattr(teacher, what, None), getattr(student, what, None)
        if not t_list or not s_list:
            continue
        for t, s in zip(tree.flatten(t_list), tree.flatten(s_list)):
            t_shape, s_shape = tuple(t.shape), tuple(s.shape)
            if len(t_shape) != len(s_shape) or any(
                    a is not None and b is not None and a != b for a, b in zip(t_shape, s_shape)):
                raise ShapeError(f"Distiller: teacher and student {what[:-1]} shapes are "
                                 f"incompatible. Teacher: {t_shape}, Student: {s_shape}")
            if str(t.dtype) != str(s.dtype):
                raise ShapeError(f"Distiller: teacher and student {what[:-1]} dtypes must "
                                 f"match. Teacher: {t.dtype}, Student: {s.dtype}")


def _feature_extractor(model: Any, losses: list[DistillationLoss], attribute: str) -> Any:
    """A functional model returning ``{"final_output": ..., layer_name: ...}`` for the layers the
    losses name (one forward pass for all of them), or None when none is named."""
    names: list[str] = []
    for loss in losses:
        name = getattr(loss, attribute, None)
        if name and name not in names:
            names.append(name)
    if not names:
        return None
    final = model.layers[-1].output if isinstance(model, Sequential) else model.output
    outputs = {"final_output": final}
    for name in names:
        outputs[name] = model.get_layer(name=name).output
    return Model(inputs=model.inputs, outputs=outputs,
                 name=f"{model.name}_multi_feature_extractor")
