"""What int8 quantization will do with a model, decided from its layers before any export: the
mode (``"auto"``: dynamic for attention models, static for other convolutional models, dynamic
otherwise) and the recurrent layers no int8 kernel of that mode takes (:func:`check_int8`), so
``bigmodel compress`` refuses them up front instead of after minutes of export and calibration.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from bigmodel.errors import ConfigError

MODES = ("auto", "static", "dynamic")


def has_attention(model: nn.Module) -> bool:
    """Whether a layer of ``model`` is an attention layer (by class name)."""
    return any("Attention" in type(m).__name__ for m in model.modules())


def convolutions(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``[(name, layer)]`` of the convolution layers of ``model``."""
    # Layers beyond torch.nn declare it (the Keras-surface Conv2D: ``is_convolution = True``).
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d))
            or getattr(type(m), "is_convolution", False)]


def has_conv(model: nn.Module) -> bool:
    """Whether ``model`` has a convolution layer."""
    return bool(convolutions(model))


def fixed_transforms(model: nn.Module) -> list[str]:
    """Names of the outermost layers that hold constant float tensors but learn nothing (a mel
    filterbank, a sinusoidal table): their constants may feed a matrix product that int8 leaves
    in fp32 (dynamic int8 did so for a speech model's mel filterbank), and that is fine."""
    found: list[str] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(f"{outer}.") for outer in found):
            continue
        if next(module.parameters(), None) is None and \
                any(b.is_floating_point() and b.dim() >= 2 for b in module.buffers()):
            found.append(name)
    return found


# Layers (by class name: torch.nn, bigmodel.nn and the Keras surface alike) that export as an ONNX
# recurrent op, and the int8 modes whose kernels take that op's weights (none take GRU / RNN; only
# dynamic int8 takes LSTM). bigmodel's SimpleRNN exports as MatMuls, which every mode takes.
RECURRENT_OPS = {"GRU": ("GRU", ()), "LSTM": ("LSTM", ("dynamic",)), "RNN": ("RNN", ())}


def resolve_mode(model: nn.Module, mode: str = "auto") -> str:
    """The int8 mode ``quantize_int8`` uses for ``model``: ``"auto"`` is dynamic for models with
    attention layers, static for other models with convolutions, dynamic otherwise.

    Raises:
        ConfigError: an unknown mode.
    """
    if mode not in MODES:
        raise ConfigError(f"quantize_int8: 'mode' must be one of {', '.join(MODES)}; received "
                          f"{mode!r}")
    if mode != "auto":
        return mode
    if has_attention(model):
        return "dynamic"
    return "static" if has_conv(model) else "dynamic"


def _unsupported_recurrent(model: nn.Module, mode: str) -> list[tuple[str, str]]:
    """``[(layer name, class name)]`` of the outermost recurrent layers whose ONNX op no ``mode``
    int8 kernel takes."""
    found: list[tuple[str, str]] = []
    for name, module in model.named_modules():
        kind = type(module).__name__
        if kind not in RECURRENT_OPS or any(name.startswith(f"{outer}.") for outer, _ in found):
            continue
        if mode not in RECURRENT_OPS[kind][1]:
            found.append((name, kind))
    return found


def check_int8(model: nn.Module, mode: str = "auto", keep_fp32: Sequence[str] = (),
               option: str = "keep_fp32") -> str:
    """Refuse, before any export or calibration, a model that ``quantize_int8`` would refuse for
    its layer types: recurrent layers that no int8 kernel of the mode takes (a GRU anywhere, an
    LSTM in static mode), unless ``keep_fp32`` names them. Returns the mode that will be used.

    Args:
        option: how the caller's user passes ``keep_fp32``, named in the message
            (``"--keep-fp32"`` for the command line).

    Raises:
        ConfigError: an unknown mode; ``keep_fp32`` names a layer the model lacks; or a refused
            layer (the message names each one, its type, and the ``option`` value that keeps it).
    """
    mode = resolve_mode(model, mode)
    names = {name for name, _ in model.named_modules()}
    unknown = [k for k in keep_fp32 if k not in names]
    if unknown:
        layers = ", ".join(repr(n) for n in sorted(names) if n and "." not in n)
        raise ConfigError(f"{option} names {', '.join(map(repr, unknown))}, which "
                          f"{type(model).__name__} does not have; its top-level layers are {layers}")
    refused = [(name, kind) for name, kind in _unsupported_recurrent(model, mode)
               if not _kept(name, keep_fp32)]
    if refused:
        listed = ", ".join(f"{name or '<model>'} ({kind})" for name, kind in refused)
        layer_names = [name for name, _ in refused]
        value = (f"{option} {','.join(layer_names)}" if option.startswith("-")
                 else f"{option}={layer_names!r}")
        raise ConfigError(
            f"int8 quantization ({mode}): ONNX Runtime has no {mode} int8 kernel for {listed} of "
            f"{type(model).__name__}. Keep {'it' if len(refused) == 1 else 'them'} in fp32 with "
            f"{value}: the other layers are still quantized, and the kept weights are stored as "
            "int8 and computed in fp32")
    return mode


def _kept(name: str, keep_fp32: Sequence[str]) -> bool:
    return any(k == "" or name == k or name.startswith(k + ".") for k in keep_fp32)


def kept_ops_of(model: nn.Module, mode: str, keep_fp32: Sequence[str]) -> dict[str, list[str]]:
    """``{ONNX op: ["rnn (GRU)", ...]}`` for the unsupported recurrent layers ``keep_fp32`` keeps."""
    kept: dict[str, list[str]] = {}
    for name, kind in _unsupported_recurrent(model, mode):
        if _kept(name, keep_fp32):
            kept.setdefault(RECURRENT_OPS[kind][0], []).append(f"{name or '<model>'} ({kind})")
    return kept


__all__ = ["MODES", "RECURRENT_OPS", "check_int8", "convolutions", "fixed_transforms",
           "has_attention", "has_conv",
           "kept_ops_of", "resolve_mode"]
