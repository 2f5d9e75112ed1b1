"""What ``explain`` needs to know about a model and its inputs, found without per-model cases.

- :class:`InputSpec`: the kind of input (``image``, ``sequence``, ``tokens``, ``vector``) and, for
  images, where the channel axis is. Found from the tensor (integer ``(B, T)`` -> tokens; float
  ``(B, T, F)`` -> sequence; float 4-D -> image) and the model (Keras-surface models are
  channels-last), or given by the caller.
- :class:`Scorer`: the explained function ``x -> (B, K)`` class scores: the model's own outputs
  (logits for plain modules, probabilities for a Keras model ending in softmax), its probabilities,
  or a Keras softmax model's pre-softmax logits.
- :class:`ModelSurvey`: one forward pass with hooks on every submodule, recording which modules ran
  in which order with which output shapes: the convolutional layers Grad-CAM can use, the embedding
  a token model starts with, the attention modules (see :mod:`bigmodel.explain.attention`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from bigmodel.errors import ConfigError, InputTypeError, ShapeError, describe

INPUT_TYPES = ("image", "sequence", "tokens", "vector")
OUTPUTS = ("auto", "probabilities", "logits")

# Class names of convolution-like layers outside torch.nn (Keras surface, recurrent-convolutional).
_CONV_NAMES = re.compile(r"^(Conv[123]D|Convolution[123]D|SeparableConv[12]D|DepthwiseConv[12]D)$|"
                         r"RCL|RecurrentConv")
_EMBEDDING_NAMES = ("Embedding",)


def is_keras_model(model: nn.Module) -> bool:
    """True for models of the Keras surface (``bigmodel.keras``), which take channels-last images."""
    return any(cls.__module__.startswith("bigmodel.keras") for cls in type(model).__mro__)


def to_tensor(inputs: Any, device: torch.device | None = None) -> torch.Tensor:
    """A batch as a tensor: NumPy arrays and lists converted, float64 narrowed to float32.

    Raises:
        InputTypeError: not an array/tensor of numbers.
        ShapeError: a scalar or an empty batch.
    """
    if isinstance(inputs, (list, tuple)):
        inputs = np.asarray(inputs)
    if isinstance(inputs, np.ndarray):
        if inputs.dtype.kind not in "biuf":
            raise InputTypeError(f"explain: inputs must hold numbers; received {describe(inputs)}")
        inputs = torch.from_numpy(np.ascontiguousarray(inputs))
    if not isinstance(inputs, torch.Tensor):
        raise InputTypeError(f"explain: inputs must be a torch.Tensor or NumPy array batch; "
                             f"received {describe(inputs)}")
    if inputs.dtype == torch.bool or inputs.is_complex():
        raise InputTypeError(f"explain: inputs must be real numbers; received {describe(inputs)}")
    if inputs.ndim < 2:
        raise ShapeError(f"explain: inputs must be a batch (first axis = examples) of at least 2 "
                         f"dimensions, e.g. (B, C, H, W) images, (B, T, F) sequences or (B, T) "
                         f"token ids; received {describe(inputs)}")
    if len(inputs) == 0:
        raise ShapeError(f"explain: received an empty batch {describe(inputs)}")
    if inputs.dtype == torch.float64:
        inputs = inputs.float()
    return inputs.to(device) if device is not None else inputs


@dataclass(frozen=True)
class InputSpec:
    """Kind of input and layout.

    Attributes:
        kind: ``image`` (B, C, H, W) or channels-last (B, H, W, C); ``sequence`` (B, T, F) floats;
            ``tokens`` (B, T) integer ids; ``vector`` (B, F) floats.
        channels_last: images only: the channel axis is the last one (Keras layout).
    """

    kind: str
    channels_last: bool = False

    @property
    def channel_axis(self) -> int:
        return -1 if self.channels_last else 1

    def spatial_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        """``(H, W)`` of image batches, ``(T,)`` of sequences and tokens, ``(F,)`` of vectors."""
        if self.kind == "image":
            return tuple(x.shape[1:3]) if self.channels_last else tuple(x.shape[2:4])
        return (x.shape[1],)

    def position_map(self, attributions: torch.Tensor) -> torch.Tensor:
        """Attribution per position: summed over image channels / sequence features.

        Returns ``(B, H, W)`` for images, ``(B, T)`` for sequences and tokens, ``(B, F)`` vectors.
        """
        if self.kind == "image":
            return attributions.sum(dim=self.channel_axis)
        if self.kind == "sequence":
            return attributions.sum(dim=-1)
        return attributions

    def expand_map(self, positions: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """A per-position map (see :meth:`position_map`) broadcast to the shape of ``like``."""
        if self.kind == "image":
            return positions.unsqueeze(self.channel_axis).expand_as(like)
        if self.kind == "sequence":
            return positions.unsqueeze(-1).expand_as(like)
        return positions.expand_as(like)


def infer_spec(model: nn.Module, x: torch.Tensor, input_type: str = "auto",
               channels_last: bool | None = None) -> tuple[InputSpec, torch.Tensor]:
    """The :class:`InputSpec` of batch ``x`` for ``model``, and ``x`` itself -- with a channel axis
    added to single-channel images given as ``(B, H, W)`` (``input_type="image"``, or a Keras model
    declared with 4-D inputs).

    Raises:
        ConfigError: an unknown ``input_type``.
        ShapeError / InputTypeError: ``x`` does not fit the (given or inferred) input type.
    """
    if input_type not in ("auto", *INPUT_TYPES):
        raise ConfigError(f"explain: unknown input_type {input_type!r}; expected 'auto' or one of "
                          f"{', '.join(INPUT_TYPES)}")
    integer = not x.is_floating_point()
    declared = getattr(model, "_declared_input_shape", None) if is_keras_model(model) else None
    if input_type == "auto" and x.ndim == 3 and not integer and declared is not None \
            and len(declared) == 4 and declared[-1] == 1:
        input_type = "image"
    if input_type == "image" and x.ndim == 3 and not integer:
        keras_layout = is_keras_model(model) if channels_last is None else channels_last
        x = x.unsqueeze(-1) if keras_layout else x.unsqueeze(1)
    if input_type == "auto":
        if integer:
            if x.ndim != 2:
                raise InputTypeError(
                    f"explain: integer inputs are read as token ids and must be (B, T); received "
                    f"{describe(x)}. Convert images to floating point first (e.g. uint8 pixels / "
                    "255)")
            input_type = "tokens"
        else:
            input_type = {2: "vector", 3: "sequence", 4: "image"}.get(x.ndim, "")
            if not input_type:
                raise ShapeError(f"explain: cannot tell the input type of {describe(x)}; expected "
                                 "(B, F) vectors, (B, T, F) sequences or 4-D image batches, or pass "
                                 "input_type=")
    expected_rank = {"image": 4, "sequence": 3, "tokens": 2, "vector": 2}[input_type]
    if x.ndim != expected_rank:
        raise ShapeError(f"explain: input_type={input_type!r} needs a {expected_rank}-D batch; "
                         f"received {describe(x)}")
    if input_type == "tokens" and not integer:
        raise InputTypeError(f"explain: token inputs must be integer ids (B, T); received "
                             f"{describe(x)}")
    if input_type != "tokens" and integer:
        raise InputTypeError(f"explain: {input_type} inputs must be floating point; received "
                             f"{describe(x)}")
    if input_type != "image":
        return InputSpec(input_type), x
    if channels_last is None:
        small = (1, 2, 3, 4)
        if is_keras_model(model):
            channels_last = True
        else:  # plain PyTorch: NCHW unless only the last axis looks like channels
            channels_last = x.shape[1] not in small and x.shape[-1] in small
    return InputSpec("image", bool(channels_last)), x


# -- the explained function -------------------------------------------------------------------


def _keras_softmax_output(model: nn.Module) -> bool:
    layers = getattr(model, "layers", None)
    if not is_keras_model(model) or not layers:
        return False
    activation = getattr(layers[-1], "activation", None)
    return getattr(activation, "_bigmodel_kind", None) == "softmax"


class Scorer(nn.Module):
    """``x -> (B, K)`` class scores of ``model``: the function every method explains.

    Args:
        model: any classifier ``nn.Module`` returning ``(B, K)`` (or a tuple whose first element is).
        output: ``"auto"`` the model's own outputs; ``"probabilities"`` softmax of them (unless they
            already are probabilities); ``"logits"`` the pre-softmax outputs of a Keras model whose
            last layer has a softmax activation (plain modules already return logits).

    Raises:
        ConfigError: unknown ``output``, or ``"logits"`` for a Keras softmax model that cannot give
            its pre-activation outputs.
    """

    def __init__(self, model: nn.Module, output: str = "auto") -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ConfigError(f"explain: unknown output {output!r}; expected one of "
                              f"{', '.join(OUTPUTS)}")
        self.model = model
        self.output = output
        keras_softmax = _keras_softmax_output(model)
        self._logits_mode = output == "logits" and keras_softmax
        if self._logits_mode and not getattr(type(model), "_supports_logits", False):
            raise ConfigError(f"explain: output='logits' is not available for "
                              f"{type(model).__name__}; use output='auto' or 'probabilities'")
        self._apply_softmax = output == "probabilities" and not keras_softmax
        # None until the first call when the model's raw outputs might be either kind.
        self.returns_probabilities: bool | None = (
            True if output == "probabilities" or (keras_softmax and not self._logits_mode)
            else (False if self._logits_mode else None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._logits_mode:
            self.model._logits_mode = True  # type: ignore[attr-defined]
            try:
                out = self.model(x)
            finally:
                self.model._logits_mode = False  # type: ignore[attr-defined]
        else:
            out = self.model(x)
        if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
            out = out[0]
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != x.shape[0]:
            raise ShapeError(f"explain: {type(self.model).__name__} must return class scores "
                             f"(B, num_classes) for a batch of {x.shape[0]}; it returned "
                             f"{describe(out)}")
        if self._apply_softmax:
            out = out.softmax(dim=-1)
        if self.returns_probabilities is None:
            with torch.no_grad():
                sums = out.detach().float().sum(dim=-1)
                self.returns_probabilities = bool(
                    (out.detach() >= 0).all() and torch.allclose(sums, torch.ones_like(sums),
                                                                 atol=1e-4))
        return out

    def probabilities(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Class probabilities ``(B, K)`` (softmax unless the scores already are), no gradient."""
        parts = []
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                out = self(x[start: start + batch_size]).float()
                parts.append(out if self.returns_probabilities else out.softmax(dim=-1))
        return torch.cat(parts)

    def scores(self, x: torch.Tensor, targets: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """The explained score ``f(x)[target]`` per example ``(B,)``, no gradient."""
        parts = []
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                out = self(x[start: start + batch_size]).float()
                parts.append(out.gather(1, targets[start: start + batch_size, None]).squeeze(1))
        return torch.cat(parts)


def run_model(scorer: Scorer, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """``scorer(x)`` without gradients; a model error on the input becomes a :class:`ShapeError`.

    The model's own errors (:class:`ShapeError`, ``InputTypeError``) pass through unchanged: they
    already say what it expects.
    """
    parts = []
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                parts.append(scorer(x[start: start + batch_size]).float())
    except (ShapeError, InputTypeError):
        raise
    except (RuntimeError, IndexError) as exc:
        raise ShapeError(f"explain: {type(scorer.model).__name__} failed on inputs "
                         f"{describe(x)}: {str(exc).splitlines()[0]}") from None
    return torch.cat(parts)


def resolve_targets(target: Any, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Explained class per example ``(B,)``: the prediction when ``target`` is None.

    Raises:
        ConfigError: a class outside ``[0, num_classes)``, or a per-example list of the wrong length.
        InputTypeError: a target that is not an int or a sequence of ints.
    """
    batch = len(predictions)
    if target is None:
        return predictions.clone()
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        values = torch.full((batch,), int(target), dtype=torch.long)
    else:
        if isinstance(target, torch.Tensor):
            array = target.detach().cpu().numpy()
        else:
            array = np.asarray(target)
        if array.dtype.kind not in "iu":
            raise InputTypeError(f"explain: target must be None, an int or one int per example; "
                                 f"received {describe(target)}")
        array = array.reshape(-1)
        if len(array) == 1:
            array = np.repeat(array, batch)
        if len(array) != batch:
            raise ConfigError(f"explain: target has {len(array)} entries for a batch of {batch} "
                              "examples; give one class per example or a single int")
        values = torch.as_tensor(array, dtype=torch.long)
    bad = values[(values < 0) | (values >= num_classes)]
    if len(bad):
        raise ConfigError(f"explain: target class {int(bad[0])} is out of range for a model with "
                          f"{num_classes} classes; expected 0..{num_classes - 1}")
    return values.to(predictions.device)


# -- survey -----------------------------------------------------------------------------------


@dataclass
class LayerInfo:
    """One executed submodule: dotted name, the module, output shape, dtype of its first input."""

    name: str
    module: nn.Module
    output_shape: tuple[int, ...] | None
    input_dtype: torch.dtype | None
    start: int  # order in which the module's forward started
    end: int  # order in which it finished


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def is_conv_like(module: nn.Module) -> bool:
    """Convolutions (torch ``nn.ConvNd``, Keras ``Conv2D``...), recurrent-convolutional layers
    (class names with ``RCL``/``RecurrentConv``) and modules declaring ``gradcam_layer = True``."""
    return (isinstance(module, nn.modules.conv._ConvNd)
            or bool(_CONV_NAMES.search(type(module).__name__))
            or getattr(module, "gradcam_layer", False) is True)


def is_embedding(module: nn.Module) -> bool:
    return isinstance(module, nn.Embedding) or type(module).__name__ in _EMBEDDING_NAMES


class ModelSurvey:
    """Runs ``model`` once on ``x`` with hooks on every submodule and keeps what ran.

    Attributes:
        layers: :class:`LayerInfo` of every submodule that ran, in the order they finished.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor) -> None:
        from bigmodel.explain.attention import is_attention_module

        self.model_name = type(model).__name__
        records: dict[int, LayerInfo] = {}
        counter = {"start": 0, "end": 0}
        handles = []

        def pre_hook(name: str):
            def hook(module: nn.Module, args: tuple) -> None:
                first = _first_tensor(args)
                if id(module) not in records:
                    records[id(module)] = LayerInfo(name, module, None,
                                                    first.dtype if first is not None else None,
                                                    counter["start"], -1)
                    counter["start"] += 1
            return hook

        def post_hook(module: nn.Module, args: tuple, output: Any) -> None:
            info = records.get(id(module))
            if info is not None and info.end < 0:
                out = _first_tensor(output)
                info.output_shape = tuple(out.shape) if out is not None else None
                info.end = counter["end"]
                counter["end"] += 1

        for name, module in model.named_modules():
            if module is model:
                continue
            handles.append(module.register_forward_pre_hook(pre_hook(name)))
            handles.append(module.register_forward_hook(post_hook))
        try:
            # With gradients on: torch's fused Transformer fast path (taken under no_grad) would
            # skip the attention modules' own forward.
            with torch.enable_grad():
                model(x)
        finally:
            for handle in handles:
                handle.remove()
        self.layers = sorted((r for r in records.values() if r.end >= 0), key=lambda r: r.end)
        self.functional_embedding: torch.Tensor | None = None  # the table of an F.embedding
        if not x.is_floating_point() and not self.embedding_layers():
            from bigmodel.explain.runtime import functional_embedding_weight

            self.functional_embedding = functional_embedding_weight(model, x)
        found = [r for r in sorted(self.layers, key=lambda r: r.start)
                 if is_attention_module(r.module)]
        # Keep the innermost attention modules: a Transformer layer passing need_weights down to
        # its attention module must not be counted as a second attention layer.
        def wraps_another(record: LayerInfo) -> bool:
            inside = {id(m) for m in record.module.modules() if m is not record.module}
            return any(id(other.module) in inside for other in found)

        self.attention = [r for r in found if not wraps_another(r)]

    def conv_layers(self) -> list[LayerInfo]:
        """Convolution-like modules with a spatial output (B, C, L) / (B, C, H, W), finishing order."""
        return [r for r in self.layers if is_conv_like(r.module) and r.output_shape is not None
                and len(r.output_shape) in (3, 4)]

    def batch_rows(self, budget_bytes: int = 1 << 30, low: int = 32, high: int = 2048) -> int:
        """Rows per forward + backward pass that keep activations near ``budget_bytes``.

        Counts the outputs of every submodule for one example, times 4 for what the count misses
        (functional activations, gradients, autograd buffers), 4 bytes each.
        """
        values = sum(math.prod(r.output_shape[1:]) for r in self.layers
                     if r.output_shape is not None and len(r.output_shape) > 0)
        for record in self.attention:  # score matrices are intermediate: ~16 heads x T x T
            shape = record.output_shape
            if shape is not None and len(shape) == 3:
                values += 16 * shape[1] * shape[1]
        per_row = max(1, 16 * values)
        return int(min(high, max(low, budget_bytes // per_row)))

    def can_embed(self) -> bool:
        """Token ids reach an embedding module, or an ``F.embedding`` lookup of their own."""
        return bool(self.embedding_layers()) or self.functional_embedding is not None

    def embedding_layers(self) -> list[LayerInfo]:
        """Embedding modules fed integer ids, in the order they started."""
        return [r for r in sorted(self.layers, key=lambda r: r.start)
                if is_embedding(r.module) and r.input_dtype is not None
                and not r.input_dtype.is_floating_point]


def display_name(name: str, module: nn.Module) -> str:
    """A layer's Keras name when it has one (``conv2d_1``), else its module path (``conv3``)."""
    keras_name = getattr(module, "name", None)
    return keras_name if isinstance(keras_name, str) and keras_name else name


def find_module(model: nn.Module, layer: str | nn.Module, what: str) -> tuple[str, nn.Module]:
    """``(name, module)`` for a layer given as a module, a dotted module path or a Keras layer name.

    Raises:
        ConfigError: no such layer (the message lists the model's layer names).
    """
    named = list(model.named_modules())
    if isinstance(layer, nn.Module):
        for name, module in named:
            if module is layer:
                return name, module
        raise ConfigError(f"explain: the {what} module given is not part of "
                          f"{type(model).__name__}")
    if not isinstance(layer, str):
        raise InputTypeError(f"explain: {what} must be a module or a layer name; received "
                             f"{describe(layer)}")
    for name, module in named:
        if name == layer or (getattr(module, "name", None) == layer and module is not model):
            return name, module
    names = [n for n, _ in named if n]
    raise ConfigError(f"explain: {type(model).__name__} has no layer named {layer!r} for {what}. "
                      f"Layers: {', '.join(names[:40])}" + (" ..." if len(names) > 40 else ""))


def check_names(given: Sequence[str], accepted: Sequence[str], method: str) -> None:
    """Raise :class:`ConfigError` naming options ``method`` does not take."""
    unknown = [name for name in given if name not in accepted]
    if unknown:
        raise ConfigError(f"explain: method {method!r} does not take option(s) "
                          f"{', '.join(repr(u) for u in unknown)}; it accepts: "
                          f"{', '.join(accepted) or '(none)'}")
