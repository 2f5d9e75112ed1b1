"""Knowledge distillation (Hinton et al., 2015): a student learns the teacher's softened outputs.

``loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)``
(+ ``feature_weight`` times a feature-matching term). The ``T^2`` factor keeps the soft term's
gradients on the scale of the hard term's as ``T`` grows.

Feature matching pairs a student layer with a teacher layer (``features=[("conv3", "conv3")]``):
``"attention"`` compares their spatial attention maps (Zagoruyko & Komodakis, 2017: the channel mean
of squared activations, L2-normalized), which works across different channel counts; ``"mse"``
compares the raw activations (same shapes).

Any teacher/student pair of the same task works: :class:`Distiller` wraps them as one module the
engine's ``Trainer`` trains (only the student's parameters), with :meth:`Distiller.loss` as loss.

>>> distiller = Distiller(student, teacher, temperature=2.0, alpha=0.5)
>>> Trainer(distiller, loss=distiller.loss, metrics=["accuracy"]).fit((x, y), epochs=5)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bigmodel.errors import ConfigError, ShapeError

FEATURE_LOSSES = ("attention", "mse")


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      targets: torch.Tensor | None, temperature: float = 2.0,
                      alpha: float = 0.5) -> torch.Tensor:
    """Hinton's loss: ``alpha * T^2 * KL(p_t^T || p_s^T) + (1 - alpha) * CE(s, y)``.

    Args:
        student_logits / teacher_logits: ``(B, K)`` logits of the same ``K`` classes.
        targets: ``(B,)`` class indices (ignored when ``alpha == 1``; may then be None).
        temperature: softening ``T > 0``.
        alpha: weight of the soft term in [0, 1].

    Raises:
        ShapeError: the logits have different shapes (e.g. different class counts).
        ConfigError: ``temperature <= 0`` or ``alpha`` outside [0, 1].
    """
    _check_hyper(temperature, alpha)
    if student_logits.shape != teacher_logits.shape:
        raise ShapeError(f"distillation: student logits {tuple(student_logits.shape)} and teacher "
                         f"logits {tuple(teacher_logits.shape)} differ; teacher and student must "
                         "predict the same classes")
    t = float(temperature)
    log_student = F.log_softmax(student_logits.float() / t, dim=-1)
    log_teacher = F.log_softmax(teacher_logits.detach().float() / t, dim=-1)
    soft = F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True) * t * t
    if alpha >= 1.0 or targets is None:
        return soft
    hard = F.cross_entropy(student_logits.float(), targets.long())
    return alpha * soft + (1.0 - alpha) * hard


def attention_map(features: torch.Tensor) -> torch.Tensor:
    """``(B, H*W)`` L2-normalized channel mean of squared activations of ``(B, C, H, W)``."""
    if features.ndim < 3:
        raise ShapeError(f"attention map needs features (B, C, ...); received {tuple(features.shape)}")
    maps = features.float().pow(2).mean(dim=1).flatten(1)
    return F.normalize(maps, dim=1)


def _check_hyper(temperature: float, alpha: float) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature <= 0:
        raise ConfigError(f"distillation: 'temperature' must be > 0; received {temperature!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"distillation: 'alpha' must be in [0, 1]; received {alpha!r}")


def _num_classes(model: nn.Module) -> int | None:
    value = getattr(model, "num_classes", None)
    return value if isinstance(value, int) else None


class Distiller(nn.Module):
    """Teacher (frozen, eval mode) + student as one trainable module; forward gives student logits.

    Args:
        student: the model being trained.
        teacher: a trained model of the same task (its parameters are frozen).
        temperature / alpha: see :func:`distillation_loss`. The defaults (T=2, alpha=0.5) beat
            the student trained alone on the seed CNN, LSTM and ViT in ``BENCHMARKS.md``, where
            T=4, alpha=0.9 (soft term dominant) did not.
        features: ``(student layer name, teacher layer name)`` pairs to match.
        feature_loss: ``"attention"`` or ``"mse"``.
        feature_weight: weight of the feature term.

    Raises:
        ConfigError: bad hyper-parameters, unknown layer names, or teacher and student that declare
            different ``num_classes``.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, temperature: float = 2.0,
                 alpha: float = 0.5, features: Sequence[tuple[str, str]] = (),
                 feature_loss: str = "attention", feature_weight: float = 1.0) -> None:
        super().__init__()
        _check_hyper(temperature, alpha)
        if feature_loss not in FEATURE_LOSSES:
            raise ConfigError(f"Distiller: 'feature_loss' must be one of {', '.join(FEATURE_LOSSES)}; "
                              f"received {feature_loss!r}")
        s_classes, t_classes = _num_classes(student), _num_classes(teacher)
        if s_classes is not None and t_classes is not None and s_classes != t_classes:
            raise ConfigError(f"Distiller: the teacher predicts {t_classes} classes and the student "
                              f"{s_classes}; distillation needs the same classes on both")
        self.student = student
        self.teacher = teacher.eval()
        for param in self.teacher.parameters():
            param.requires_grad_(False)
        self.temperature, self.alpha = float(temperature), float(alpha)
        self.feature_loss, self.feature_weight = feature_loss, float(feature_weight)
        self._captured: dict[str, torch.Tensor] = {}
        self._teacher_logits: torch.Tensor | None = None
        self.features = [tuple(pair) for pair in features]
        s_layers, t_layers = dict(student.named_modules()), dict(teacher.named_modules())
        for s_name, t_name in self.features:
            for name, layers, who in ((s_name, s_layers, "student"), (t_name, t_layers, "teacher")):
                if name not in layers:
                    raise ConfigError(f"Distiller: the {who} has no layer {name!r}")
            s_layers[s_name].register_forward_hook(self._capture(f"s:{s_name}"))
            t_layers[t_name].register_forward_hook(self._capture(f"t:{t_name}"))

    def _capture(self, key: str):
        def hook(module, args, output):
            self._captured[key] = output[0] if isinstance(output, tuple) else output
        return hook

    def train(self, mode: bool = True) -> Distiller:
        super().train(mode)
        self.teacher.eval()  # the teacher's dropout / batch norm stay in inference mode
        return self

    def forward(self, *inputs) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            with torch.no_grad():
                self._teacher_logits = self.teacher(*inputs)
        else:
            self._teacher_logits = None
        logits = self.student(*inputs)
        if self._teacher_logits is not None and logits.shape != self._teacher_logits.shape:
            raise ShapeError(f"Distiller: student output {tuple(logits.shape)} and teacher output "
                             f"{tuple(self._teacher_logits.shape)} differ; the teacher must predict "
                             "the same classes as the student")
        return logits

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The distillation loss for the last forward (plain cross-entropy when no teacher ran)."""
        if self._teacher_logits is None:
            return F.cross_entropy(outputs.float(), targets.long())
        total = distillation_loss(outputs, self._teacher_logits, targets, self.temperature,
                                  self.alpha)
        if self.features:
            total = total + self.feature_weight * self.feature_term()
        return total

    def feature_term(self) -> torch.Tensor:
        """Mean feature-matching loss over the configured layer pairs (last forward)."""
        terms = []
        for s_name, t_name in self.features:
            s, t = self._captured[f"s:{s_name}"], self._captured[f"t:{t_name}"].detach()
            if self.feature_loss == "attention":
                s_map, t_map = attention_map(s), attention_map(t)
                if s_map.shape != t_map.shape:
                    raise ShapeError(f"Distiller: attention maps of '{s_name}' {tuple(s.shape)} "
                                     f"and '{t_name}' {tuple(t.shape)} have different sizes")
                terms.append((s_map - t_map).pow(2).sum(dim=1).mean())
            else:
                if s.shape != t.shape:
                    raise ShapeError(f"Distiller: 'mse' feature matching needs equal shapes; "
                                     f"'{s_name}' is {tuple(s.shape)}, '{t_name}' is "
                                     f"{tuple(t.shape)} (use feature_loss='attention')")
                terms.append(F.mse_loss(s.float(), t.float()))
        return torch.stack(terms).mean()
