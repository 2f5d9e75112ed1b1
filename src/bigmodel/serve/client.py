"""A Python client for ``bigmodel serve`` (httpx)::

    from bigmodel.serve import Client
    with Client("http://127.0.0.1:8080") as client:
        client.models()                                   # [{"name", "state", "kind"}, ...]
        client.infer("fashion", images)                   # {"logits": (N, K), "probabilities": ...}
        client.classify("fashion", image="shoe.png")      # [[{"class", "index", "probability"}]]
        client.classify("topics", text="launch the booster")
        client.explain("fashion", image="shoe.png")       # attributions, target class, PNG bytes

A refused request raises :class:`~bigmodel.serve.protocol.RequestError` carrying the server's
status and message.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import numpy as np

from bigmodel.errors import InputTypeError, describe
from bigmodel.serve.protocol import RequestError


class Client:
    """Talks to one server.

    Args:
        url: the server's base URL.
        timeout: seconds per request.
    """

    def __init__(self, url: str = "http://127.0.0.1:8080", timeout: float = 30.0) -> None:
        import httpx

        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def live(self) -> bool:
        return self._http.get("/v2/health/live").status_code == 200

    def ready(self, name: str | None = None) -> bool:
        """Whether the server (or model ``name``) answers inference requests."""
        path = "/v2/health/ready" if name is None else f"/v2/models/{name}/ready"
        return self._http.get(path).status_code == 200

    def models(self) -> list[dict]:
        return self._json(self._http.get("/v2/models"))["models"]

    def metadata(self, name: str) -> dict:
        return self._json(self._http.get(f"/v2/models/{name}"))

    def infer(self, name: str, inputs: Any, outputs: tuple[str, ...] = ("logits",
                                                                         "probabilities")) -> dict:
        """Run ``inputs`` (a NumPy array / tensor: FP32 images or clips, INT64 token ids; or a
        list of texts) through model ``name``; returns ``{output name: float32 array}``.

        Raises:
            InputTypeError: inputs that are neither numbers nor a list of texts.
            RequestError: the server refused the request.
        """
        if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(t, str)
                                                                 for t in inputs):
            tensor = {"name": "text", "shape": [len(inputs)], "datatype": "BYTES",
                      "data": list(inputs)}
        else:
            array = np.asarray(inputs.cpu() if hasattr(inputs, "cpu") else inputs)
            if np.issubdtype(array.dtype, np.integer):
                datatype, array = "INT64", array.astype(np.int64)
            elif np.issubdtype(array.dtype, np.floating):
                datatype, array = "FP32", array.astype(np.float32)
            else:
                raise InputTypeError(f"Client.infer: inputs must be numbers or a list of texts; "
                                     f"received {describe(inputs)}")
            tensor = {"name": "input", "shape": list(array.shape), "datatype": datatype,
                      "data": array.ravel().tolist()}
        body = {"inputs": [tensor], "outputs": [{"name": o} for o in outputs]}
        answer = self._json(self._http.post(f"/v2/models/{name}/infer", json=body))
        return {o["name"]: np.asarray(o["data"], dtype=np.float32).reshape(o["shape"])
                for o in answer["outputs"]}

    def classify(self, name: str, *, image: Any = None, text: str | None = None,
                 wav: Any = None, top_k: int = 5) -> list[list[dict]]:
        """Ranked classes per row for an image (path, PNG/.npy bytes or a NumPy array), a text or
        a WAV file (path or bytes)."""
        return self._json(self._post_person(name, "classify", image, text, wav,
                                            {"top_k": top_k}))["predictions"]

    def explain(self, name: str, *, image: Any = None, text: str | None = None, wav: Any = None,
                method: str | None = None, target: int | None = None) -> dict:
        """The server's explanation of one input: ``attributions`` (float32 array shaped like
        the model input), ``target`` / ``target_class``, ``method``, and ``png`` (bytes of the
        overlay picture, images only)."""
        params = {k: v for k, v in (("method", method), ("target", target)) if v is not None}
        answer = self._json(self._post_person(name, "explain", image, text, wav, params))
        answer["attributions"] = np.asarray(answer["attributions"], dtype=np.float32).reshape(
            answer["shape"])
        if answer.get("png"):
            answer["png"] = base64.b64decode(answer["png"])
        return answer

    def generate(self, name: str, prompt: str, max_tokens: int = 100, temperature: float = 1.0,
                 top_k: int | None = None, seed: int | None = None,
                 num_samples: int = 1) -> list[str]:
        """A language-model run's ``num_samples`` continuations of ``prompt`` (prompt included),
        as ``bigmodel generate`` prints them for the same options and seed."""
        body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": temperature,
                "top_k": top_k, "seed": seed, "num_samples": num_samples}
        return self._json(self._http.post(f"/v2/models/{name}/generate", json=body))["samples"]

    def translate(self, name: str, texts: str | list[str], beam: int = 1,
                  max_length: int | None = None) -> list[str]:
        """A seq2seq run's output for each text (one text: a list of one), as ``bigmodel
        translate`` prints them."""
        body = {"texts": [texts] if isinstance(texts, str) else list(texts), "beam": beam,
                "max_length": max_length}
        return self._json(self._http.post(f"/v2/models/{name}/translate",
                                          json=body))["translations"]

    def _post_person(self, name, endpoint, image, text, wav, params):
        given = [v is not None for v in (image, text, wav)]
        if sum(given) != 1:
            raise InputTypeError(f"Client.{endpoint}: give exactly one of image=, text=, wav=")
        path = f"/v2/models/{name}/{endpoint}"
        if text is not None:
            return self._http.post(path, params=params, json={"text": text})
        data = _file_bytes(image if image is not None else wav)
        return self._http.post(path, params=params, files={"file": ("input", data)})

    @staticmethod
    def _json(response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text[:200]}
        if response.status_code >= 400:
            raise RequestError(f"server answered {response.status_code}: "
                               f"{body.get('error', body)}", response.status_code)
        return body


def _file_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, (str, os.PathLike)):
        return Path(value).read_bytes()
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(value), allow_pickle=False)
    return buffer.getvalue()


__all__ = ["Client"]
