"""How ``explain`` runs the model: in eval mode, with its parameters frozen and (for image models)
convolution weights in channels-last memory format -- and everything put back afterwards.

Attribution needs gradients with respect to the *inputs* only, so switching ``requires_grad`` off on
the parameters spares autograd the weight gradients. Channels-last weights let oneDNN / cuDNN run
the convolutions in their fast layout (1.6x faster forward + backward for the seed CNN on CPU);
the values do not change, only the strides. Both are undone on exit, even after an error: the
``requires_grad`` flags, the weights' memory format and the train/eval mode are what they were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a module without any)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def prepared(model: nn.Module, channels_last: bool = False) -> Iterator[nn.Module]:
    """Context: ``model`` in eval mode with frozen parameters (and channels-last 4-D weights when
    ``channels_last``); restored on exit."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    converted = []
    try:
        model.eval()
        for parameter, _ in flags:
            parameter.requires_grad_(False)
        if channels_last:
            for parameter, _ in flags:
                if parameter.ndim != 4 or not parameter.is_contiguous():
                    continue
                # empty_like gives true channels-last strides even where a size-1 axis makes
                # .contiguous(memory_format=...) keep the NCHW ones (one input channel).
                target = torch.empty_like(parameter.data, memory_format=torch.channels_last)
                if target.stride() != parameter.data.stride():
                    converted.append((parameter, parameter.data))
                    parameter.data = target.copy_(parameter.data)
        yield model
    finally:
        for parameter, original in converted:  # nothing trains here: the originals still hold
            parameter.data = original
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
        model.train(was_training)


FUNCTIONAL_EMBEDDING = "F.embedding"


class _Lookups(TorchFunctionMode):
    """Sees the first ``F.embedding`` call on integer ids shaped ``shape``: replaces its output
    (``values``), or records its weight (and with ``capture`` stops the forward pass there)."""

    def __init__(self, shape: tuple | None = None, values: torch.Tensor | None = None,
                 capture: bool = False) -> None:
        super().__init__()
        self.shape, self.values, self.capture = shape, values, capture
        self.weight: torch.Tensor | None = None
        self.done = False

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        ids = args[0] if args else kwargs.get("input")
        if (func is F.embedding and not self.done and isinstance(ids, torch.Tensor)
                and not ids.is_floating_point()
                and (self.shape is None or tuple(ids.shape) == tuple(self.shape))):
            self.done = True
            if self.values is not None:
                return self.values
            self.weight = args[1] if len(args) > 1 else kwargs.get("weight")
            if self.capture:
                raise _Captured()
        return func(*args, **kwargs)


class _Captured(Exception):
    """Stops a forward pass once the embedding lookup was seen."""


def functional_embedding_weight(model: nn.Module, ids: torch.Tensor) -> torch.Tensor | None:
    """The weight ``model(ids)`` looks the ids up in with ``F.embedding`` itself, or None."""
    probe = _Lookups(tuple(ids.shape), capture=True)
    try:
        with torch.no_grad(), probe:
            model(ids)
    except _Captured:
        pass
    return probe.weight


class EmbeddingSite:
    """Where a token model turns ids into vectors: an embedding module (``name`` its path), or --
    for models that call ``F.embedding`` on their own weight -- the first such lookup of ids shaped
    like the input (``name == "F.embedding"``, ``weight`` the table it uses)."""

    def __init__(self, name: str, module: nn.Module | None = None,
                 weight: torch.Tensor | None = None) -> None:
        self.name = name
        self.module = module
        self.weight = weight

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """The embedding output ``(N, T, D)`` for ids ``(N, T)``, without gradients."""
        with torch.no_grad():
            if self.module is not None:
                return self.module(ids).detach()
            return F.embedding(ids, self.weight).detach()

    @contextlib.contextmanager
    def replaced(self, values: torch.Tensor, shape: tuple) -> Iterator[None]:
        """Context in which the first embedding lookup (of ids shaped ``shape``) gives ``values``."""
        if self.module is None:
            with _Lookups(shape, values=values):
                yield
            return
        state = {"done": False}

        def replace(_module: nn.Module, _args: Any, output: Any) -> Any:
            if state["done"]:
                return output
            state["done"] = True
            return values

        handle = self.module.register_forward_hook(replace)
        try:
            yield
        finally:
            handle.remove()


class EmbeddingSpace(nn.Module):
    """A token model as a function of one example's embedding output ``(N, T, D)``.

    The ids stay those of the example (so padding masks and lengths are the real text's); the
    embedding lookup in each forward returns the given values instead -- what Captum's layer
    methods do. Removing a token therefore means replacing its *embedding* by the baseline id's,
    which also works for models that refuse an all-padding text.

    Args:
        scorer: the explained function of the ids (``bigmodel.explain.inputs.Scorer``).
        site: the :class:`EmbeddingSite` inside it.
        ids: the example ``(1, T)``.
    """

    def __init__(self, scorer: nn.Module, site: EmbeddingSite, ids: torch.Tensor) -> None:
        super().__init__()
        self.scorer = scorer
        self.site = site
        self.ids = ids

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        ids = self.ids.expand(len(embedded), -1)
        with self.site.replaced(embedded, tuple(ids.shape)):
            return self.scorer(ids)
