"""Neural-network ``keras.ops``: activations, softmax, one-hot, cross-entropies, normalization,
convolution, pooling and attention.

Images and sequences are channels-last as in Keras (``data_format=None`` means
``keras.config.image_data_format()``, i.e. ``"channels_last"``); kernels have Keras layouts
(``(*spatial, in_channels, out_channels)``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from bigmodel.errors import NotSupportedError
from bigmodel.keras import config
from bigmodel.keras.ops import ctc

# Keras exports these from keras.ops.nn as well as keras.ops; they are computed in .convolution
# and .numpy_extra.
from bigmodel.keras.ops.convolution import (  # noqa: F401
    adaptive_average_pool,
    adaptive_max_pool,
    average_pool,
    conv,
    conv_transpose,
    depth_to_space,
    depthwise_conv,
    fold,
    max_pool,
    separable_conv,
    space_to_depth,
    unfold,
)
from bigmodel.keras.ops.dtypes import as_float, convert_to_tensor, to_tensors, torch_dtype
from bigmodel.keras.ops.node import keras_op, unsupported
from bigmodel.keras.ops.numpy_extra import polar  # noqa: F401
from bigmodel.keras.ops.numpy_reduce import axes_of


def _activation(name: str, fn: Any, doc: str) -> Any:
    def op(x: Any) -> torch.Tensor:
        return fn(as_float(x))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return keras_op(name)(op)


relu = _activation("relu", torch.relu, "max(x, 0).")
relu6 = _activation("relu6", F.relu6, "min(max(x, 0), 6).")
sigmoid = _activation("sigmoid", torch.sigmoid, "1 / (1 + exp(-x)).")
softplus = _activation("softplus", F.softplus, "log(1 + exp(x)).")
softsign = _activation("softsign", F.softsign, "x / (1 + |x|).")
silu = _activation("silu", F.silu, "x * sigmoid(x).")
swish = _activation("swish", F.silu, "x * sigmoid(x) (alias of silu).")
log_sigmoid = _activation("log_sigmoid", F.logsigmoid, "log(sigmoid(x)), computed stably.")
hard_sigmoid = _activation("hard_sigmoid", F.hardsigmoid, "relu6(x + 3) / 6.")
hard_silu = _activation("hard_silu", F.hardswish, "x * hard_sigmoid(x).")
hard_swish = _activation("hard_swish", F.hardswish, "x * hard_sigmoid(x) (alias of hard_silu).")
selu = _activation("selu", F.selu, "Scaled exponential linear unit.")
hard_tanh = _activation("hard_tanh", F.hardtanh, "x clipped to [-1, 1].")
tanh_shrink = _activation("tanh_shrink", F.tanhshrink, "x - tanh(x).")
sparse_plus = _activation(
    "sparse_plus", lambda x: torch.where(x <= -1, torch.zeros_like(x),
                                         torch.where(x >= 1, x, (x + 1) ** 2 / 4)),
    "0 for x <= -1, x for x >= 1, (x + 1)^2 / 4 between.")


@keras_op()
def sparse_sigmoid(x: Any) -> torch.Tensor:
    """0 for x <= -1, 1 for x >= 1, (x + 1) / 2 between."""
    return torch.clamp((as_float(x) + 1) / 2, 0.0, 1.0)


@keras_op()
def sparsemax(x: Any, axis: int = -1) -> torch.Tensor:
    """Euclidean projection of ``x`` onto the probability simplex along ``axis`` (sparse
    probabilities; Martins & Astudillo, 2016)."""
    x = torch.movedim(as_float(x), axis, -1)
    z = torch.sort(x, dim=-1, descending=True).values
    k = torch.arange(1, x.shape[-1] + 1, dtype=x.dtype, device=x.device)
    cumulative = z.cumsum(-1)
    support = (1 + k * z) > cumulative
    k_max = support.sum(-1, keepdim=True)
    tau = (torch.gather(cumulative, -1, k_max - 1) - 1) / k_max.to(x.dtype)
    return torch.movedim(torch.clamp(x - tau, min=0), -1, axis)


@keras_op()
def psnr(x1: Any, x2: Any, max_val: float) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB: ``20 log10(max_val) - 10 log10(mse)``.

    Raises:
        ValueError: when the shapes differ.
    """
    a, b = to_tensors(x1, x2, dtype=as_float(x1).dtype)
    if a.shape != b.shape:
        raise ValueError(f"psnr: x1 and x2 must have the same shape; received "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    mse = torch.mean((a - b) ** 2)
    return 20 * torch.log10(torch.as_tensor(float(max_val), dtype=a.dtype)) - 10 * torch.log10(mse)


@keras_op()
def leaky_relu(x: Any, negative_slope: float = 0.2) -> torch.Tensor:
    """x for x >= 0, ``negative_slope * x`` below."""
    return F.leaky_relu(as_float(x), negative_slope)


@keras_op()
def elu(x: Any, alpha: float = 1.0) -> torch.Tensor:
    """x for x > 0, ``alpha * (exp(x) - 1)`` below."""
    return F.elu(as_float(x), alpha)


@keras_op()
def celu(x: Any, alpha: float = 1.0) -> torch.Tensor:
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    return F.celu(as_float(x), alpha)


@keras_op()
def gelu(x: Any, approximate: bool = True) -> torch.Tensor:
    """Gaussian error linear unit (the tanh approximation by default, as Keras)."""
    return F.gelu(as_float(x), approximate="tanh" if approximate else "none")


@keras_op()
def glu(x: Any, axis: int = -1) -> torch.Tensor:
    """Gated linear unit: first half of ``axis`` times sigmoid of the second half."""
    return F.glu(as_float(x), dim=axis)


@keras_op()
def soft_shrink(x: Any, threshold: float = 0.5) -> torch.Tensor:
    """x - threshold above threshold, x + threshold below -threshold, 0 between."""
    return F.softshrink(as_float(x), threshold)


@keras_op()
def hard_shrink(x: Any, threshold: float = 0.5) -> torch.Tensor:
    """x where |x| > threshold, else 0."""
    return F.hardshrink(as_float(x), threshold)


@keras_op()
def squareplus(x: Any, b: float = 4) -> torch.Tensor:
    """(x + sqrt(x^2 + b)) / 2."""
    x = as_float(x)
    return (x + torch.sqrt(x * x + b)) / 2


@keras_op()
def threshold(x: Any, threshold: float, default_value: float) -> torch.Tensor:
    """x where x > threshold, else ``default_value``."""
    x = convert_to_tensor(x)
    return torch.where(x > threshold, x, torch.as_tensor(default_value, dtype=x.dtype,
                                                          device=x.device))


def _softmax_like(fn: Any, x: Any, axis: Any) -> torch.Tensor:
    x = as_float(x)
    if isinstance(axis, int):
        return fn(x, dim=axis)
    dims = axes_of(x, axis)  # several axes: flatten them into one
    rest = [d for d in range(x.dim()) if d not in dims]
    moved = x.permute(*rest, *dims)
    out = fn(moved.reshape(*moved.shape[:len(rest)], -1), dim=-1).reshape(moved.shape)
    return out.permute(*torch.argsort(torch.tensor([*rest, *dims])).tolist())


@keras_op()
def softmax(x: Any, axis: Any = -1) -> torch.Tensor:
    """exp(x) / sum(exp(x)) over ``axis`` (an int or a tuple of axes)."""
    return _softmax_like(torch.softmax, x, axis)


@keras_op()
def log_softmax(x: Any, axis: Any = -1) -> torch.Tensor:
    """log(softmax(x)) over ``axis``, computed stably."""
    return _softmax_like(torch.log_softmax, x, axis)


@keras_op()
def one_hot(x: Any, num_classes: int, axis: int = -1, dtype: Any = None,
            sparse: bool = False) -> torch.Tensor:
    """One-hot vectors of ``num_classes`` along a new ``axis``; indices outside
    ``[0, num_classes)`` give all-zero vectors. floatx unless ``dtype``."""
    if sparse:
        raise NotSupportedError("keras.ops.one_hot(sparse=True) is not supported: tensors here "
                                "are dense. See docs/keras.md")
    x = convert_to_tensor(x).long()
    valid = (x >= 0) & (x < num_classes)
    out = F.one_hot(torch.where(valid, x, torch.zeros_like(x)), num_classes)
    out = (out * valid.unsqueeze(-1)).to(torch_dtype(dtype or config.floatx()))
    return torch.movedim(out, -1, axis) if axis != -1 else out


@keras_op()
def multi_hot(inputs: Any, num_classes: int | None = None, axis: int = -1, dtype: Any = None,
              sparse: bool = False, **kwargs: Any) -> torch.Tensor:
    """Multi-hot vectors: 1 at every class listed in the last axis of ``inputs``."""
    num_classes = kwargs.pop("num_tokens", num_classes)
    x = convert_to_tensor(inputs)
    encoded = one_hot(x, num_classes, axis=axis, dtype=dtype, sparse=sparse)
    reduce_axis = 1 if x.dim() > 1 else 0
    return torch.amax(encoded, dim=reduce_axis)


def _clip_probs(output: torch.Tensor) -> torch.Tensor:
    eps = config.epsilon()
    return torch.clamp(output, eps, 1.0 - eps)


@keras_op()
def categorical_crossentropy(target: Any, output: Any, from_logits: bool = False,
                             axis: int = -1) -> torch.Tensor:
    """Cross-entropy of one-hot (or soft) ``target`` against ``output`` along ``axis``.

    Probabilities are renormalized to sum to 1 and clipped to ``[eps, 1 - eps]`` as Keras does.

    Raises:
        ValueError: when the shapes of ``target`` and ``output`` differ.
    """
    target, output = to_tensors(target, output, dtype=as_float(output).dtype)
    if target.shape != output.shape:
        raise ValueError(f"categorical_crossentropy: target and output must have the same shape; "
                         f"received target.shape={tuple(target.shape)}, "
                         f"output.shape={tuple(output.shape)}")
    if from_logits:
        log_prob = torch.log_softmax(output, dim=axis)
    else:
        log_prob = torch.log(_clip_probs(output / output.sum(dim=axis, keepdim=True)))
    return -(target * log_prob).sum(dim=axis)


@keras_op()
def sparse_categorical_crossentropy(target: Any, output: Any, from_logits: bool = False,
                                    axis: int = -1) -> torch.Tensor:
    """Cross-entropy of integer class ``target`` against ``output`` (classes along ``axis``).

    Raises:
        ValueError: when ``target``'s shape is not ``output``'s without the class axis.
    """
    output = as_float(output)
    target = convert_to_tensor(target, device=output.device).long()
    if target.dim() == output.dim() and target.shape[axis] == 1:
        target = target.squeeze(axis)
    expected = list(output.shape)
    del expected[axis]
    if list(target.shape) != expected:
        raise ValueError(f"sparse_categorical_crossentropy: target must have output's shape "
                         f"without the class axis; received target.shape={tuple(target.shape)}, "
                         f"output.shape={tuple(output.shape)}")
    if from_logits:
        log_prob = torch.log_softmax(output, dim=axis)
    else:
        log_prob = torch.log(_clip_probs(output / output.sum(dim=axis, keepdim=True)))
    picked = torch.gather(log_prob, axis % output.dim(), target.unsqueeze(axis % output.dim()))
    return -picked.squeeze(axis % output.dim())


@keras_op()
def binary_crossentropy(target: Any, output: Any, from_logits: bool = False) -> torch.Tensor:
    """Element-wise binary cross-entropy (probabilities clipped to ``[eps, 1 - eps]``).

    Raises:
        ValueError: when the shapes of ``target`` and ``output`` differ.
    """
    target, output = to_tensors(target, output, dtype=as_float(output).dtype)
    if target.shape != output.shape:
        raise ValueError(f"binary_crossentropy: target and output must have the same shape; "
                         f"received target.shape={tuple(target.shape)}, "
                         f"output.shape={tuple(output.shape)}")
    if from_logits:
        return F.binary_cross_entropy_with_logits(output, target, reduction="none")
    output = _clip_probs(output)
    return -(target * torch.log(output) + (1 - target) * torch.log(1 - output))


@keras_op()
def moments(x: Any, axes: Any, keepdims: bool = False,
            synchronized: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, population variance) of ``x`` over ``axes``."""
    x = as_float(x)
    dims = axes_of(x, axes)
    mean = torch.mean(x, dim=dims, keepdim=True)
    variance = torch.mean(torch.square(x - mean), dim=dims, keepdim=True)
    if not keepdims:
        mean, variance = mean.squeeze(dims), variance.squeeze(dims)
    return mean, variance


@keras_op()
def batch_normalization(x: Any, mean: Any, variance: Any, axis: int, offset: Any = None,
                        scale: Any = None, epsilon: float = 1e-3) -> torch.Tensor:
    """``(x - mean) / sqrt(variance + epsilon) * scale + offset``; the 1-D statistics lie along
    ``axis`` of ``x``."""
    x = as_float(x)
    shape = [1] * x.dim()
    shape[axis] = x.shape[axis]

    def along(v: Any) -> torch.Tensor:
        return convert_to_tensor(v, dtype=x.dtype, device=x.device).reshape(shape)

    out = (x - along(mean)) * torch.rsqrt(along(variance) + epsilon)
    if scale is not None:
        out = out * along(scale)
    if offset is not None:
        out = out + along(offset)
    return out


@keras_op()
def normalize(x: Any, axis: int = -1, order: int = 2, epsilon: float | None = None) -> torch.Tensor:
    """``x / max(norm(x, order, axis), epsilon)`` (``epsilon`` defaults to Keras's epsilon).

    Raises:
        ValueError: when ``order`` is not an int >= 1.
    """
    if not isinstance(order, int) or order < 1:
        raise ValueError(f"normalize: order must be an int >= 1; received order={order!r}")
    x = as_float(x)
    eps = config.epsilon() if epsilon is None else epsilon
    norm = torch.linalg.vector_norm(x, ord=order, dim=axis, keepdim=True)
    return x / torch.clamp(norm, min=eps)


@keras_op()
def layer_normalization(x: Any, gamma: Any = None, beta: Any = None, axis: int = -1,
                        epsilon: float | None = None, **kwargs: Any) -> torch.Tensor:
    """Normalize over ``axis`` to zero mean and unit variance, then scale and shift."""
    x = as_float(x)
    eps = 1e-3 if epsilon is None else epsilon
    mean, variance = moments(x, axis, keepdims=True)
    out = (x - mean) * torch.rsqrt(variance + eps)
    if gamma is not None:
        out = out * convert_to_tensor(gamma, dtype=x.dtype, device=x.device)
    if beta is not None:
        out = out + convert_to_tensor(beta, dtype=x.dtype, device=x.device)
    return out


@keras_op()
def rms_normalization(x: Any, scale: Any = None, axis: int = -1,
                      epsilon: float | None = None) -> torch.Tensor:
    """``x / sqrt(mean(x^2) + epsilon) * scale`` over ``axis``."""
    x = as_float(x)
    eps = config.epsilon() if epsilon is None else epsilon
    out = x * torch.rsqrt(torch.mean(x * x, dim=axis, keepdim=True) + eps)
    return out if scale is None else out * convert_to_tensor(scale, dtype=x.dtype, device=x.device)


@keras_op()
def dot_product_attention(query: Any, key: Any, value: Any, bias: Any = None, mask: Any = None,
                          scale: float | None = None, is_causal: bool = False,
                          flash_attention: bool | None = None,
                          attn_logits_soft_cap: float | None = None) -> torch.Tensor:
    """softmax(q k^T * scale + bias, masked) v for ``(batch, seq, heads, head_dim)`` inputs.

    ``mask`` is boolean, true where attention is allowed; ``scale`` defaults to 1/sqrt(head_dim).
    """
    if attn_logits_soft_cap is not None:
        raise NotSupportedError("dot_product_attention(attn_logits_soft_cap=...) is not "
                                "supported. See docs/keras.md")
    q, k, v = to_tensors(query, key, value, dtype=as_float(query).dtype)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (batch, heads, seq, head_dim)
    attn_mask = None
    if bias is not None:
        attn_mask = convert_to_tensor(bias, dtype=q.dtype, device=q.device)
    if mask is not None:
        allowed = convert_to_tensor(mask, device=q.device).bool()
        blocked = torch.zeros(allowed.shape, dtype=q.dtype, device=q.device).masked_fill(
            ~allowed, -math.inf)
        attn_mask = blocked if attn_mask is None else attn_mask + blocked
    if is_causal:
        t_q, t_k = q.shape[-2], k.shape[-2]
        causal = torch.ones(t_q, t_k, dtype=torch.bool, device=q.device).tril()
        blocked = torch.zeros(t_q, t_k, dtype=q.dtype, device=q.device).masked_fill(
            ~causal, -math.inf)
        attn_mask = blocked if attn_mask is None else attn_mask + blocked
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)
    return out.transpose(1, 2)


@keras_op()
def ctc_loss(target: Any, output: Any, target_length: Any, output_length: Any,
             mask_index: int = 0) -> torch.Tensor:
    """Per-sequence CTC loss of integer labels against logits (see :mod:`.ctc`)."""
    return ctc.ctc_loss(target, output, target_length, output_length, mask_index=mask_index)


@keras_op()
def ctc_decode(inputs: Any, sequence_lengths: Any, strategy: str = "greedy",
               beam_width: int = 100, top_paths: int = 1, merge_repeated: bool = True,
               mask_index: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy or beam-search decoding of CTC logits, in Keras's format (see :mod:`.ctc`)."""
    return ctc.ctc_decode(inputs, sequence_lengths, strategy=strategy, beam_width=beam_width,
                          top_paths=top_paths, merge_repeated=merge_repeated,
                          mask_index=mask_index)


def __getattr__(name: str) -> Any:
    raise unsupported("keras.ops.nn", name)
