"""Grad-CAM (Selvaraju et al., 2017) on a convolutional or recurrent-convolutional layer.

For a layer with activations ``A`` of ``K`` channels over positions ``u`` and the class score ``y``::

    alpha_k = mean_u  dy / dA_k(u)                 (global-average-pooled gradients)
    cam(u)  = ReLU( sum_k alpha_k * A_k(u) )

computed on the layer's own grid (``(h, w)`` for 2-D maps, ``(l,)`` for 1-D) and resized to the
input's grid (bilinear / linear). The layer is found automatically: the last convolution-like module
to finish in a forward pass (``torch.nn.ConvNd``, Keras ``Conv2D``, recurrent-convolutional layers
named ``...RCL...``/``...RecurrentConv...``, or any module with ``gradcam_layer = True``) -- or named
with ``layer=``. Channels are on axis 1, or last for layers with ``data_format="channels_last"``
(Keras). Equivalent to Captum's ``LayerGradCam`` for channels-first layers (the tests compare them);
written here so channels-last Keras layers work too.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bigmodel.errors import ConfigError, ShapeError, describe
from bigmodel.explain.inputs import InputSpec, ModelSurvey, Scorer, find_module, is_conv_like


def channel_axis_of(module: nn.Module) -> int:
    """1 (channels-first), or -1 for modules with ``data_format == "channels_last"``."""
    return -1 if getattr(module, "data_format", None) == "channels_last" else 1


def find_gradcam_layer(model: nn.Module, survey: ModelSurvey, spec: InputSpec,
                       layer: Any = None) -> tuple[str, nn.Module]:
    """``(name, module)`` of the layer Grad-CAM explains.

    Raises:
        ConfigError: no convolution-like layer ran, the named layer does not exist or has no
            spatial output, or its grid does not match the input type (2-D maps need images).
    """
    if layer is not None:
        name, module = find_module(model, layer, "gradcam layer=")
        info = next((r for r in survey.layers if r.module is module), None)
        if info is None or info.output_shape is None or len(info.output_shape) not in (3, 4):
            shape = None if info is None else info.output_shape
            raise ConfigError(f"explain: gradcam layer {name!r} must output a feature map (B, C, L) "
                              f"or (B, C, H, W); its output was {shape}")
    else:
        candidates = survey.conv_layers()
        if not candidates:
            raise ConfigError(f"explain: method 'gradcam' needs a convolutional (spatial) layer; "
                              f"{survey.model_name} has none that ran (looked for torch.nn.ConvNd, "
                              "Keras Conv2D, recurrent-convolutional layers, modules with "
                              "gradcam_layer=True)")
        info = candidates[-1]
        name, module = info.name, info.module
    rank = len(info.output_shape)
    if spec.kind == "image" and rank != 4:
        raise ConfigError(f"explain: gradcam on images needs a 2-D feature map; layer {name!r} "
                          f"outputs {info.output_shape}")
    if spec.kind != "image" and rank != 3:
        raise ConfigError(f"explain: gradcam on {spec.kind} inputs needs a 1-D feature map "
                          f"(B, C, L); layer {name!r} outputs {info.output_shape}")
    return name, module


def grad_cam(scorer: Scorer, x: torch.Tensor, targets: torch.Tensor, module: nn.Module,
             channel_axis: int = 1, relu: bool = True, batch_size: int = 256,
             ) -> torch.Tensor:
    """Grad-CAM maps on the layer's own grid: ``(B, h, w)`` or ``(B, l)``.

    Raises:
        ShapeError: the layer's output is not a 3-D / 4-D tensor.
    """
    maps = []
    captured: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, _args: Any, output: Any) -> None:
        captured["activations"] = output[0] if isinstance(output, (tuple, list)) else output

    for start in range(0, len(x), batch_size):
        chunk, chunk_targets = x[start: start + batch_size], targets[start: start + batch_size]
        if chunk.is_floating_point():  # so the map has a gradient even in a frozen model
            chunk = chunk.detach().requires_grad_(True)
        captured.clear()
        handle = module.register_forward_hook(hook)
        # explain() freezes the parameters; the layer's own must carry a gradient path even when
        # its input does not (token ids, or a layer behind frozen embeddings)
        flags = [(p, p.requires_grad) for p in module.parameters()]
        for parameter, _ in flags:
            parameter.requires_grad_(True)
        try:
            with torch.enable_grad():
                scores = scorer(chunk)
                activations = captured.get("activations")
                if activations is None or activations.ndim not in (3, 4):
                    raise ShapeError(f"explain: gradcam layer {type(module).__name__} produced "
                                     f"{describe(activations)}; expected (B, C, L) or (B, C, H, W)")
                if not activations.requires_grad:
                    raise ConfigError(f"explain: gradcam layer {type(module).__name__} output does "
                                      "not depend on differentiable inputs (is it frozen behind a "
                                      "no_grad block?)")
                picked = scores.gather(1, chunk_targets[:, None]).sum()
                (gradients,) = torch.autograd.grad(picked, activations)
        finally:
            handle.remove()
            for parameter, flag in flags:
                parameter.requires_grad_(flag)
        activations = activations.detach().movedim(channel_axis, 1)  # (b, C, ...)
        gradients = gradients.detach().movedim(channel_axis, 1)
        spatial = tuple(range(2, activations.ndim))
        weights = gradients.mean(dim=spatial, keepdim=True)  # alpha_k
        cam = (weights * activations).sum(dim=1)  # (b, ...)
        maps.append(F.relu(cam) if relu else cam)
    return torch.cat(maps)


def upsample(maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Resize maps ``(B, h, w)`` / ``(B, l)`` to ``size`` (bilinear / linear, corners not aligned)."""
    if tuple(maps.shape[1:]) == tuple(size):
        return maps
    mode = "bilinear" if maps.ndim == 3 else "linear"
    return F.interpolate(maps.unsqueeze(1).float(), size=size, mode=mode,
                         align_corners=False).squeeze(1)


def gradcam_applies(survey: ModelSurvey, spec: InputSpec) -> str | None:
    """None when Grad-CAM can run automatically, else the reason it cannot."""
    wanted = 4 if spec.kind == "image" else 3
    if not any(len(r.output_shape) == wanted for r in survey.conv_layers()):
        grid = "2-D" if wanted == 4 else "1-D"
        return (f"needs a convolutional layer with a {grid} feature map; "
                f"{survey.model_name} has none")
    return None


__all__ = ["channel_axis_of", "find_gradcam_layer", "grad_cam", "gradcam_applies", "is_conv_like",
           "upsample"]
