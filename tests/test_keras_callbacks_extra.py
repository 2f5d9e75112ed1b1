"""keras.callbacks.ProgbarLogger and RemoteMonitor (SwapEMAWeights: tests/test_keras_ema.py)."""

import json
import socket
import threading
import urllib.parse
import warnings
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from bigmodel import keras
from bigmodel.errors import ConfigError, InputTypeError
from keras_reference import real_keras as _real_keras


def _fit(lib, callbacks, verbose=0, epochs=2):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 3)).astype("float32"), rng.integers(0, 2, size=16)
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model, model.fit(x, y, batch_size=8, epochs=epochs, verbose=verbose,
                            callbacks=callbacks, shuffle=False)


@pytest.fixture
def server():
    """An HTTP server on 127.0.0.1 recording (path, content type, body) of every POST."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            received.append((self.path, self.headers["Content-Type"], body,
                             self.headers.get("X-Run")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", received
    httpd.shutdown()
    httpd.server_close()


def test_progbar_logger_in_fit_prints_the_progress_once(capsys):
    _fit(keras, [], verbose=1)
    alone = capsys.readouterr().out
    logger = keras.callbacks.ProgbarLogger()
    _fit(keras, [logger], verbose=1)
    with_logger = capsys.readouterr().out
    assert alone.count("Epoch 1/2") == with_logger.count("Epoch 1/2") >= 1
    assert with_logger.count("Epoch 2/2") == alone.count("Epoch 2/2")
    assert (logger.verbose, logger.epochs) == (1, 2)  # read from fit's params, as Keras's
    _fit(keras, [keras.callbacks.ProgbarLogger()], verbose=0)
    assert "Epoch" not in capsys.readouterr().out  # verbose=0: nothing, as in Keras


def test_remote_monitor_posts_each_epoch_as_keras_does(server):
    root, received = server
    _, history = _fit(keras, [keras.callbacks.RemoteMonitor(root=root, send_as_json=True,
                                                            headers={"X-Run": "7"})])
    assert [r[0] for r in received] == ["/publish/epoch/end/"] * 2
    sent = [json.loads(body) for _, kind, body, _ in received]
    assert received[0][1] == "application/json" and received[0][3] == "7"
    assert [s["epoch"] for s in sent] == [0, 1]
    assert [s["loss"] for s in sent] == pytest.approx(history.history["loss"])
    # the default: a form whose `data` field holds the JSON; compare with real Keras's request
    real = _real_keras()
    pytest.importorskip("requests")
    for lib in (keras, real):
        received.clear()
        _fit(lib, [lib.callbacks.RemoteMonitor(root=root, path="/p", field="f")], epochs=1)
        path, kind, body, _ = received[0]
        form = urllib.parse.parse_qs(body)
        assert (path, kind, sorted(form)) == ("/p", "application/x-www-form-urlencoded", ["f"])
        assert sorted(json.loads(form["f"][0])) == ["epoch", "loss"]


def test_remote_monitor_warns_when_the_server_is_unreachable_and_refuses_bad_arguments():
    with socket.socket() as probe:  # a port nothing listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monitor = keras.callbacks.RemoteMonitor(root=f"http://127.0.0.1:{port}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monitor.on_epoch_end(0, {"loss": 1.0})
    assert any("Could not reach RemoteMonitor" in str(w.message) for w in caught)
    with pytest.raises(ConfigError, match="root"):
        keras.callbacks.RemoteMonitor(root="localhost:9000")
    with pytest.raises(InputTypeError, match="headers"):
        keras.callbacks.RemoteMonitor(headers=["X-Run: 1"])
