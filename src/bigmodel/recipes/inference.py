"""Inference helpers shared by the commands that run a trained model (train's final measurement,
evaluate, predict, finetune): batched logits in eval mode (through :func:`bigmodel.engine.inference.predict_batches`), loss and
accuracy. The device comes from :func:`bigmodel.engine.resolve.resolve_device`."""

from __future__ import annotations

import math


def predict_logits(model, images, batch_size: int = 256, prepare=None):
    """Logits ``(N, K)`` float32 on CPU for images (or token ids), in eval mode, on the model's
    device; ``prepare(batch) -> batch`` reshapes each CPU batch first (e.g. trims padding).
    No samples give an empty ``(0, model.num_classes)``."""
    import torch

    from bigmodel.engine.inference import predict_batches

    return predict_batches(
        model, images, batch_size, collate=prepare, forward=lambda batch: model(batch).float(),
        empty=lambda: torch.empty(0, getattr(model, "num_classes", 0)), name="predict_logits")


def loss_and_accuracy(logits, labels) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of logits ``(N, K)`` against int labels ``(N,)``."""
    import torch
    import torch.nn.functional as F

    targets = torch.as_tensor(labels, dtype=torch.long)
    if len(targets) == 0:
        return math.nan, math.nan
    loss = F.cross_entropy(logits, targets).item()
    accuracy = (logits.argmax(dim=1) == targets).double().mean().item()
    return loss, accuracy


__all__ = ["loss_and_accuracy", "predict_logits"]
