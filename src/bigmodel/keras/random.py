"""``keras.random``: random tensors with Keras 3's seed semantics, drawn by PyTorch generators.

``seed`` may be:
- ``None``: draw from PyTorch's global generator (``torch.manual_seed`` /
  ``keras.utils.set_random_seed`` make it reproducible);
- an ``int``: the same int gives the same values every call (a fresh generator seeded with it);
- a :class:`SeedGenerator`: a stateful seed that gives new values each call and the same sequence
  for the same starting seed, as in Keras.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from bigmodel.errors import ConfigError
from bigmodel.keras import config
from bigmodel.keras.ops.dtypes import as_float, convert_to_tensor, torch_dtype
from bigmodel.keras.unsupported import unsupported_attribute

_MASK64 = (1 << 63) - 1


class SeedGenerator:
    """A stateful seed: each draw made with it advances its state.

    Args:
        seed: initial seed (an int; random when ``None``).
        name: a name, for Keras compatibility.
    """

    def __init__(self, seed: int | None = None, name: str | None = None, **kwargs: Any):
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError(f"SeedGenerator: seed must be an int or None; received {seed!r}")
        self.name = name or "seed_generator"
        self.initial_seed = seed
        self.state = torch.tensor([seed, 0], dtype=torch.int64)

    def next(self, ordered: bool = True) -> int:
        """A new 63-bit seed derived from the initial seed and the number of draws so far."""
        seed, count = (int(v) for v in self.state.tolist())
        self.state[1] += 1
        # SplitMix64 mixing: neighbouring counters give unrelated seeds.
        z = (seed * 0x9E3779B97F4A7C15 + (count + 1) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
        return (z ^ (z >> 31)) & _MASK64

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.initial_seed, "name": self.name}


def _generator(seed: Any) -> torch.Generator | None:
    if seed is None:
        return None
    if isinstance(seed, SeedGenerator):
        return torch.Generator().manual_seed(seed.next())
    if isinstance(seed, int) and not isinstance(seed, bool):
        return torch.Generator().manual_seed(seed & _MASK64)
    raise ConfigError(f"seed must be None, an int or a keras.random.SeedGenerator; received "
                      f"{seed!r}")


def _shape(shape: Any) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)


def _float(dtype: Any) -> torch.dtype:
    target = torch_dtype(dtype or config.floatx())
    if not target.is_floating_point:
        raise ConfigError(f"this random op needs a float dtype; received dtype={dtype!r}")
    return target


def normal(shape: Any, mean: float = 0.0, stddev: float = 1.0, dtype: Any = None,
           seed: Any = None) -> torch.Tensor:
    """Samples of a normal distribution N(mean, stddev^2)."""
    out = torch.randn(_shape(shape), generator=_generator(seed), dtype=torch.float32)
    return (out * stddev + mean).to(_float(dtype))


def uniform(shape: Any, minval: float = 0.0, maxval: float = 1.0, dtype: Any = None,
            seed: Any = None) -> torch.Tensor:
    """Samples of a uniform distribution on ``[minval, maxval)``."""
    out = torch.rand(_shape(shape), generator=_generator(seed), dtype=torch.float32)
    return (out * (maxval - minval) + minval).to(_float(dtype))


def truncated_normal(shape: Any, mean: float = 0.0, stddev: float = 1.0, dtype: Any = None,
                     seed: Any = None) -> torch.Tensor:
    """Normal samples more than two standard deviations from the mean redrawn (as Keras)."""
    out = torch.empty(_shape(shape), dtype=torch.float32)
    torch.nn.init.trunc_normal_(out, 0.0, 1.0, -2.0, 2.0, generator=_generator(seed))
    return (out * stddev + mean).to(_float(dtype))


def randint(shape: Any, minval: int, maxval: int, dtype: Any = "int32",
            seed: Any = None) -> torch.Tensor:
    """Integers drawn uniformly from ``[minval, maxval)``."""
    out = torch.randint(int(minval), int(maxval), _shape(shape), generator=_generator(seed))
    return out.to(torch_dtype(dtype))


def categorical(logits: Any, num_samples: int, dtype: Any = "int32",
                seed: Any = None) -> torch.Tensor:
    """``num_samples`` class indices per row of 2-D unnormalized log-probabilities ``logits``.

    Raises:
        ConfigError: when ``logits`` is not 2-D.
    """
    logits = as_float(logits)
    if logits.dim() != 2:
        raise ConfigError(f"categorical: logits must be 2-D (batch, classes); received shape "
                          f"{tuple(logits.shape)}")
    probs = torch.softmax(logits.float().cpu(), dim=-1)
    out = torch.multinomial(probs, num_samples, replacement=True, generator=_generator(seed))
    return out.to(device=logits.device, dtype=torch_dtype(dtype))


def dropout(inputs: Any, rate: float, noise_shape: Any = None, seed: Any = None) -> torch.Tensor:
    """``inputs`` with a fraction ``rate`` of values zeroed and the rest scaled by
    ``1 / (1 - rate)``; ``noise_shape`` (broadcast against ``inputs``) shares the mask.

    Raises:
        ConfigError: when ``rate`` is not in ``[0, 1)``.
    """
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"dropout: rate must be in [0, 1); received rate={rate!r}")
    x = as_float(inputs)
    shape = tuple(x.shape) if noise_shape is None else tuple(
        x.shape[i] if s is None else int(s) for i, s in enumerate(noise_shape))
    keep = torch.rand(shape, generator=_generator(seed)) >= rate
    return x * keep.to(device=x.device, dtype=x.dtype) / (1.0 - rate)


def shuffle(x: Any, axis: int = 0, seed: Any = None) -> torch.Tensor:
    """``x`` with its slices along ``axis`` in a random order."""
    x = convert_to_tensor(x)
    order = torch.randperm(x.shape[axis], generator=_generator(seed)).to(x.device)
    return torch.index_select(x, axis, order)


def gamma(shape: Any, alpha: float, dtype: Any = None, seed: Any = None) -> torch.Tensor:
    """Samples of a Gamma(alpha, 1) distribution (Marsaglia-Tsang, with the alpha < 1 boost)."""
    generator = _generator(seed)
    shape = _shape(shape)
    a = torch.full(shape, float(alpha), dtype=torch.float64)
    boost = a < 1
    a = torch.where(boost, a + 1, a)
    d = a - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.zeros(shape, dtype=torch.float64)
    todo = torch.ones(shape, dtype=torch.bool)
    while bool(todo.any()):
        z = torch.randn(shape, generator=generator, dtype=torch.float64)
        u = torch.rand(shape, generator=generator, dtype=torch.float64)
        v = (1 + c * z) ** 3
        ok = (v > 0) & (torch.log(u.clamp_min(1e-300)) < 0.5 * z * z + d - d * v
                        + d * torch.log(v.clamp_min(1e-300)))
        take = todo & ok
        out = torch.where(take, d * v, out)
        todo = todo & ~ok
    if bool(boost.any()):
        u = torch.rand(shape, generator=generator, dtype=torch.float64)
        out = torch.where(boost, out * u ** (1.0 / float(alpha)), out)
    return out.to(_float(dtype))


def beta(shape: Any, alpha: float, beta: float, dtype: Any = None,
         seed: Any = None) -> torch.Tensor:
    """Samples of a Beta(alpha, beta) distribution (ratio of two Gamma draws)."""
    generator_seed = seed if isinstance(seed, SeedGenerator) or seed is None else SeedGenerator(seed)
    x = gamma(shape, alpha, "float64", generator_seed)
    y = gamma(shape, beta, "float64", generator_seed)
    return (x / (x + y)).to(_float(dtype))


def binomial(shape: Any, counts: Any, probabilities: Any, dtype: Any = None,
             seed: Any = None) -> torch.Tensor:
    """Samples of Binomial(counts, probabilities) (float dtype, as Keras)."""
    counts_t = torch.broadcast_to(torch.as_tensor(counts, dtype=torch.float64), _shape(shape))
    probs_t = torch.broadcast_to(torch.as_tensor(probabilities, dtype=torch.float64),
                                 _shape(shape))
    max_count = int(math.ceil(float(counts_t.max()))) if counts_t.numel() else 0
    draws = torch.rand((*_shape(shape), max_count), generator=_generator(seed),
                       dtype=torch.float64)
    trials = torch.arange(max_count, dtype=torch.float64) < counts_t.unsqueeze(-1)
    out = ((draws < probs_t.unsqueeze(-1)) & trials).sum(-1)
    return out.to(_float(dtype))


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.random", name)
