"""Training callbacks, shared by the engine's ``Trainer`` and the Keras surface.

The hook names and ``logs`` dicts are Keras's, so a Keras callback ports unchanged. ``self.model`` is
whatever object the user trains through: a ``bigmodel.keras.Model`` or an ``engine.Trainer``. Both
expose ``stop_training`` (bool, settable), ``optimizer`` (a ``torch.optim.Optimizer``) and
``save(path)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class Callback:
    """Base class: override the hooks you need. ``logs`` holds floats keyed like Keras."""

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None: ...
    def on_train_end(self, logs: dict[str, float] | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None: ...
    def on_train_batch_begin(self, batch: int, logs: dict[str, float] | None = None) -> None: ...
    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None: ...
    def on_test_begin(self, logs: dict[str, float] | None = None) -> None: ...
    def on_test_end(self, logs: dict[str, float] | None = None) -> None: ...
    def on_predict_begin(self, logs: dict[str, float] | None = None) -> None: ...
    def on_predict_end(self, logs: dict[str, float] | None = None) -> None: ...


class CallbackList(Callback):
    """Forwards each hook to a list of callbacks, in order."""

    def __init__(self, callbacks: Iterable[Callback] = (), model: Any = None,
                 params: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.callbacks = list(callbacks)
        if model is not None:
            self.set_model(model)
        if params is not None:
            self.set_params(params)

    def set_model(self, model: Any) -> None:
        self.model = model
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params
        for cb in self.callbacks:
            cb.set_params(params)

    def _each(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def on_train_begin(self, logs=None): self._each("on_train_begin", logs)
    def on_train_end(self, logs=None): self._each("on_train_end", logs)
    def on_epoch_begin(self, epoch, logs=None): self._each("on_epoch_begin", epoch, logs)
    def on_epoch_end(self, epoch, logs=None): self._each("on_epoch_end", epoch, logs)
    def on_train_batch_begin(self, batch, logs=None): self._each("on_train_batch_begin", batch, logs)
    def on_train_batch_end(self, batch, logs=None): self._each("on_train_batch_end", batch, logs)
    def on_test_begin(self, logs=None): self._each("on_test_begin", logs)
    def on_test_end(self, logs=None): self._each("on_test_end", logs)
    def on_predict_begin(self, logs=None): self._each("on_predict_begin", logs)
    def on_predict_end(self, logs=None): self._each("on_predict_end", logs)


class History(Callback):
    """Records each epoch's logs: ``history.history['loss']`` is a list with one float per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None) -> None:
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
