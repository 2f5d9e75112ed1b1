"""Inference helpers shared by the commands that run a trained model (train's final measurement,
evaluate, predict, finetune): batched logits in eval mode, loss and accuracy. The device comes from
:func:`bigmodel.engine.resolve.resolve_device`."""

from __future__ import annotations

import math


def predict_logits(model, images, batch_size: int = 256, prepare=None):
    """Logits ``(N, K)`` on CPU for float32 images (or token ids), in eval mode, on the model's
    device; ``prepare(batch) -> batch`` reshapes each CPU batch first (e.g. trims padding)."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outputs = []
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = torch.as_tensor(images[start: start + batch_size])
                if prepare is not None:
                    batch = prepare(batch)
                outputs.append(model(batch.to(device)).float().cpu())
    finally:
        model.train(was_training)
    if not outputs:
        return torch.empty(0, getattr(model, "num_classes", 0))
    return torch.cat(outputs)


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
