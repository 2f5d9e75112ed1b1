"""Keras 3 callbacks that live only on the Keras surface: ``ProgbarLogger``, ``RemoteMonitor`` and
``SwapEMAWeights`` (exported by :mod:`bigmodel.keras.callbacks`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import warnings
from typing import Any

import numpy as np

from bigmodel.engine.callback_base import Callback
from bigmodel.errors import ConfigError, InputTypeError

__all__ = ["ProgbarLogger", "RemoteMonitor", "SwapEMAWeights"]


class ProgbarLogger(Callback):
    """Keras's progress-bar callback.

    bigmodel's ``fit`` / ``evaluate`` / ``predict`` draw the progress bar themselves, as ``verbose``
    asks (Keras's ``ProgbarLogger`` also follows ``verbose``: nothing at 0, a bar at 1, a line per
    epoch at 2). Passing one in ``callbacks`` is accepted, as in Keras, and the progress is printed
    once, by the engine: this object draws nothing itself.
    """

    def __init__(self) -> None:
        super().__init__()
        self.verbose: int | str = 1
        self.epochs = 1

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params.get("epochs", 1)


class RemoteMonitor(Callback):
    """POST the logs of every epoch to a server (Keras's ``RemoteMonitor``).

    The body is ``{"epoch": epoch, **logs}`` as JSON (``send_as_json=True``), or a form with that
    JSON under ``field`` (the default, as Keras sends it). An unreachable server gives a warning,
    not an error, as in Keras; training goes on. (Keras uses ``requests``; this uses the standard
    library, with a 10 second timeout per request so a hung server cannot stall training.)

    Args:
        root: the server's root URL (``http://`` or ``https://``).
        path: appended to ``root``.
        field: the form field holding the JSON (``send_as_json=False``).
        headers: extra HTTP headers.
        send_as_json: send ``application/json`` instead of a form.

    Raises:
        ConfigError: ``root`` is not an http(s) URL. InputTypeError: ``headers`` not a dict.
    """

    def __init__(self, root: str = "http://localhost:9000", path: str = "/publish/epoch/end/",
                 field: str = "data", headers: dict[str, str] | None = None,
                 send_as_json: bool = False) -> None:
        super().__init__()
        if not isinstance(root, str) or urllib.parse.urlparse(root).scheme not in ("http", "https"):
            raise ConfigError(f"RemoteMonitor: root must be an http:// or https:// URL; "
                              f"received {root!r}")
        if headers is not None and not isinstance(headers, dict):
            raise InputTypeError(f"RemoteMonitor: headers must be a dict or None; received "
                                 f"{type(headers).__name__}")
        self.root = root
        self.path = path
        self.field = field
        self.headers = headers
        self.send_as_json = send_as_json

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        send: dict[str, Any] = {"epoch": epoch}
        for key, value in (logs or {}).items():
            send[key] = value.item() if isinstance(value, (np.ndarray, np.generic)) else value
        headers = dict(self.headers or {})
        if self.send_as_json:
            body = json.dumps(send).encode()
            headers.setdefault("Content-Type", "application/json")
        else:
            body = urllib.parse.urlencode({self.field: json.dumps(send)}).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        request = urllib.request.Request(self.root + self.path, data=body, headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except (urllib.error.URLError, OSError):
            warnings.warn(f"Could not reach RemoteMonitor root server at {self.root}",
                          stacklevel=2)


class SwapEMAWeights(Callback):
    """Evaluate (and predict) with the optimizer's moving average of the weights (Keras's
    ``SwapEMAWeights``; the optimizer needs ``use_ema=True``).

    The weights and their averages are exchanged in place before ``evaluate`` / validation /
    ``predict`` and back afterwards. With ``swap_on_epoch=True`` they are exchanged at the end of
    each epoch too (so ``ModelCheckpoint`` after it saves the averaged weights) and back at the
    start of the next.

    Raises:
        ConfigError: at the first swap, when the model's optimizer has no ``use_ema``.
    """

    def __init__(self, swap_on_epoch: bool = False) -> None:
        super().__init__()
        self.swap_on_epoch = swap_on_epoch
        self._ema_weights_in_model = False

    def _optimizers(self) -> list[Any]:
        optimizer = getattr(self.model, "optimizer", None)
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)
        inner = getattr(optimizer, "optimizers", None)
        if inner is not None:  # a MultiOptimizer: those of its optimizers that average
            chosen = [opt for opt in inner if getattr(opt, "use_ema", False)]
            if not chosen:
                raise ConfigError("SwapEMAWeights must be used when at least one inner optimizer "
                                  "has `use_ema=True` set. Received a MultiOptimizer with all "
                                  "inner optimizers having `use_ema=False`.")
            return chosen
        if not getattr(optimizer, "use_ema", False):
            raise ConfigError("SwapEMAWeights must be used when `use_ema=True` is set on the "
                              f"optimizer. Received: optimizer={type(optimizer).__name__}, "
                              f"use_ema={getattr(optimizer, 'use_ema', None)}")
        return [optimizer]

    def _swap(self) -> None:
        for optimizer in self._optimizers():
            optimizer.swap_ema_weights()

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if self.swap_on_epoch and self._ema_weights_in_model:
            self._swap()
            self._ema_weights_in_model = False

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if self.swap_on_epoch and not self._ema_weights_in_model:
            self._swap()
            self._ema_weights_in_model = True
            # the last epoch: the averages must hold the averaged weights again, since the end
            # of fit writes the averages into the model (as Keras's callback does)
            if epoch == self.params.get("epochs", 0) - 1:
                for optimizer in self._optimizers():
                    optimizer.copy_weights_to_averages()

    def on_test_begin(self, logs: dict[str, float] | None = None) -> None:
        if not self._ema_weights_in_model:
            self._swap()
            self._ema_weights_in_model = True

    def on_test_end(self, logs: dict[str, float] | None = None) -> None:
        if self._ema_weights_in_model:
            self._swap()
            self._ema_weights_in_model = False

    on_predict_begin = on_test_begin
    on_predict_end = on_test_end
