"""``/v2/models/{name}/explain``: an attribution map for one input, computed by
:func:`bigmodel.explain.explain`, as numbers and (for images) as a PNG overlay.

Default method per task: integrated gradients (images and clips against a black / silent
baseline, texts in embedding space against padding). Any name of
:data:`bigmodel.explain.METHODS` that applies to the model can be asked for.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import torch

from bigmodel.errors import ConfigError, UnknownNameError

DEFAULT_METHOD = "integrated_gradients"
MIN_PNG_SIDE = 224  # small inputs (28x28) are scaled up so the overlay can be seen


def explain_row(served, row: torch.Tensor, method: str | None = None,
                target: int | None = None) -> dict[str, Any]:
    """The explanation of one input row of ``served`` (a
    :class:`~bigmodel.serve.models.ServedModel`), as a JSON-ready dict: ``method``, ``target``,
    ``target_class``, ``probability`` (of the target), ``shape`` and flat ``attributions``;
    ``png`` (base64) for images, ``tokens`` for texts.

    Raises:
        UnknownNameError: an unknown method (lists them).
        ConfigError: a method that does not apply, a target outside the classes, or an int8
            model (no gradients).
    """
    from bigmodel.explain import METHODS, explain

    if getattr(served, "int8", False):  # an ONNX Runtime graph: no gradients, no hooks
        raise ConfigError(f"explain: model {served.name!r} is an int8 ONNX Runtime graph, which "
                          "has no gradients to attribute with; explain the run's float model "
                          "(serve it without --int8)")
    method = method or DEFAULT_METHOD
    if method not in METHODS:
        raise UnknownNameError(f"explain: unknown method {method[:64]!r}; methods are "
                               f"{', '.join(METHODS)}")
    if target is not None and not 0 <= target < served.num_classes:
        raise ConfigError(f"explain: target must be a class index in 0..{served.num_classes - 1}"
                          f"; received {target}")
    options = {"pad_id": served.pad_id} if served.kind == "text" else {}
    result = explain(served.model, row[None].to(served.device), target=target, method=method,
                     class_names=served.class_names, seed=0, **options)
    attributions = result.attributions[0].detach().float().cpu()
    chosen = int(result.targets[0])
    answer = {"model_name": served.name, "method": method, "target": chosen,
              "target_class": served.class_names[chosen],
              "probability": float(result.probabilities[0, chosen]),
              "shape": list(attributions.shape), "attributions": attributions.flatten().tolist()}
    if served.kind == "image":
        answer["png"] = base64.b64encode(overlay_png(row, attributions)).decode("ascii")
    if served.kind == "text":
        # explain() may cut a text's padding off: one token per attribution
        answer["tokens"] = served.tokens(row)[: attributions.shape[0]]
    return answer


def overlay_png(image: torch.Tensor, attributions: torch.Tensor) -> bytes:
    """A PNG of the image ``(C, H, W)`` in gray with the attribution magnitude (summed over
    channels, scaled to its maximum) in red, scaled up to at least ``MIN_PNG_SIDE`` pixels."""
    from PIL import Image

    base = image.float().mean(dim=0).clamp(0, 1).numpy()
    heat = attributions.abs().sum(dim=0).numpy() if attributions.dim() == 3 else \
        attributions.abs().numpy()
    heat = heat / heat.max() if heat.max() > 0 else heat
    red = np.clip(0.5 * base + heat, 0, 1)
    rgb = np.stack([red, 0.5 * base, 0.5 * base], axis=-1)
    picture = Image.fromarray((rgb * 255).round().astype(np.uint8), "RGB")
    scale = max(1, -(-MIN_PNG_SIDE // max(picture.size)))
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale),
                                 Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


__all__ = ["DEFAULT_METHOD", "explain_row", "overlay_png"]
