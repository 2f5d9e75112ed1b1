"""Open Inference Protocol v2 (KServe / Triton REST) request and response bodies for classifiers.

An infer request names one input tensor: ``{"inputs": [{"name", "shape", "datatype", "data"}],
"outputs": [{"name"}...]?, "id"?}``. Data is a flat (row-major) or nested list. Accepted:

- image models: ``FP32`` ``[N, C, H, W]`` pixels in [0, 1];
- text models: ``BYTES`` ``[N]`` texts (encoded by the run's tokenizer), or ``INT64`` ``[N, L]``
  token ids;
- speech models: ``FP32`` ``[N, S]`` samples at the run's rate.

The response holds ``logits`` and ``probabilities`` (``FP32 [N, K]``), or the outputs asked for.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import torch

from bigmodel.errors import BigModelError, DataError, InputTypeError, ShapeError

try:  # 3-4x faster than the json module on a 784-float body (extra 'serve'); same numbers
    import orjson
except ModuleNotFoundError:  # pragma: no cover - the extra installs it
    orjson = None

DATATYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
             "FP16", "FP32", "FP64", "BYTES")
OUTPUTS = ("logits", "probabilities")


class RequestError(BigModelError, ValueError):
    """A request the server refuses (``status``: the HTTP code: 400 bad body, 404 unknown model,
    413 too large, 415 wrong media, 503 not ready / busy)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_json(body: bytes, what: str = "request body") -> Any:
    """The parsed JSON of a request body.

    Raises:
        RequestError: empty, not UTF-8, not JSON, or nested too deeply.
    """
    if not body.strip():
        raise RequestError(f"{what} is empty; expected a JSON object")
    try:
        text = body.decode("utf-8")
        return orjson.loads(text) if orjson is not None else json.loads(text)
    except UnicodeDecodeError as exc:
        raise RequestError(f"{what} is not UTF-8 text: {exc}") from None
    except RecursionError:
        raise RequestError(f"{what} is nested too deeply") from None
    except ValueError as exc:
        raise RequestError(f"{what} is malformed JSON: {exc}") from None


def json_bytes(document: Any) -> bytes:
    """``document`` as compact UTF-8 JSON (orjson where installed: a reply's floats are written
    in the shortest form that reads back to the same value either way).

    Raises:
        TypeError: a value JSON cannot hold.
    """
    if orjson is not None:
        return orjson.dumps(document)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def input_tensor(document: Any) -> dict:
    """The one input tensor object ``{name, shape, datatype, data}`` of an infer request.

    Raises:
        RequestError: not a JSON object, not exactly one input tensor, or a field missing.
    """
    if not isinstance(document, dict):
        raise RequestError(f"infer request must be a JSON object; received "
                           f"{type(document).__name__}")
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise RequestError("infer request: 'inputs' must be a list of exactly one tensor object "
                           f"{{name, shape, datatype, data}}; received {_short(inputs)}")
    tensor = inputs[0]
    for key in ("name", "shape", "datatype", "data"):
        if key not in tensor:
            raise RequestError(f"infer request: input tensor lacks {key!r}")
    return tensor


def parse_infer_request(document: Any, model) -> tuple[list[torch.Tensor], list[str], Any]:
    """``(rows, output names, request id)`` of an infer request for ``model`` (a
    :class:`~bigmodel.serve.models.ServedModel`).

    Raises:
        RequestError: a missing or mistyped field, an unknown output name.
        InputTypeError: a datatype the model does not take, or data of the wrong type.
        ShapeError: a shape that is not the model's, or data that does not fill it.
        DataError: values out of range (pixels outside [0, 1], unknown token ids, NaN).
    """
    tensor = input_tensor(document)
    name, shape, datatype, data = (tensor["name"], tensor["shape"], tensor["datatype"],
                                   tensor["data"])
    if not isinstance(shape, list) or not shape or not all(
            type(d) is int and d >= 0 for d in shape):
        raise ShapeError(f"input {name!r}: 'shape' must be a non-empty list of non-negative ints; "
                         f"received {_short(shape)}")
    if datatype not in DATATYPES:
        raise InputTypeError(f"input {name!r}: unknown datatype {_short(datatype)}; the Open "
                             f"Inference Protocol names {', '.join(DATATYPES)}")
    if not isinstance(data, list):
        raise InputTypeError(f"input {name!r}: 'data' must be a list; received "
                             f"{type(data).__name__}")
    if shape[0] == 0:
        raise ShapeError(f"input {name!r}: holds no rows (shape {shape})")
    accepted = {"image": ("FP32",), "audio": ("FP32",), "text": ("BYTES", "INT64")}[model.kind]
    if datatype not in accepted:
        raise InputTypeError(f"input {name!r}: model {model.name!r} ({model.kind}) takes "
                             f"{' or '.join(accepted)} tensors; received datatype {datatype}")
    if datatype == "BYTES":
        rows = _text_rows(name, shape, data, model)
    else:
        rows = _numeric_rows(name, shape, datatype, data, model)
    return rows, _output_names(document.get("outputs")), document.get("id")


def _text_rows(name, shape, data, model) -> list[torch.Tensor]:
    if len(shape) != 1:
        raise ShapeError(f"input {name!r}: BYTES texts have shape [N]; received shape {shape}")
    flat = _flatten(data, name)
    if len(flat) != shape[0]:
        raise ShapeError(f"input {name!r}: shape {shape} needs {shape[0]} texts; 'data' holds "
                         f"{len(flat)}")
    return [model.encode_text(text, source=f"input {name!r} text {i}")
            for i, text in enumerate(flat)]


def _numeric_rows(name, shape, datatype, data, model) -> list[torch.Tensor]:
    expected = [shape[0], *model.item_shape]
    if model.kind == "text":
        expected = [shape[0], shape[1] if len(shape) == 2 else -1]
    if len(shape) != len(expected) or any(e >= 0 and s != e for s, e in zip(shape, expected)):
        wanted = "[N, " + ", ".join("L" if e < 0 else str(e) for e in expected[1:]) + "]"
        raise ShapeError(f"input {name!r}: model {model.name!r} takes shape {wanted}; received "
                         f"shape {shape}")
    flat = _flatten(data, name)
    count = math.prod(shape)
    if len(flat) != count:
        raise ShapeError(f"input {name!r}: shape {shape} needs {count} values; 'data' holds "
                         f"{len(flat)}")
    types = set(map(type, flat))  # C loops: a 784-value body costs microseconds, not a ms
    if not types <= {int, float} or (datatype == "INT64" and float in types):
        raise InputTypeError(f"input {name!r}: {datatype} data must be "
                             f"{'integers' if datatype == 'INT64' else 'numbers'}")
    if datatype == "INT64":
        array = np.asarray(flat, dtype=np.int64).reshape(shape)
        low, high = int(array.min()), int(array.max())
        if shape[1] == 0 or low < 0 or high >= model.vocab_size:
            raise DataError(f"input {name!r}: token ids must be in 0..{model.vocab_size - 1} with "
                            f"at least one per row; found {low}..{high} in shape {shape}")
        return list(torch.from_numpy(array))
    array = np.asarray(flat, dtype=np.float64)
    if not np.isfinite(array).all():
        raise DataError(f"input {name!r}: holds NaN or Inf")
    array = array.astype(np.float32).reshape(shape)
    if model.kind == "image":
        return list(model.image_rows(array, source=f"input {name!r}"))
    return list(torch.from_numpy(array))


def _flatten(data: list, name: str) -> list:
    """Row-major flat values of a flat or nested list (no recursion: depth comes from clients)."""
    if list not in set(map(type, data)):
        return data
    flat, stack = [], [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            flat.append(value)
        else:
            stack.pop()
    return flat


def _output_names(outputs: Any) -> list[str]:
    if outputs is None:
        return list(OUTPUTS)
    if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
        raise RequestError(f"infer request: 'outputs' must be a list of {{\"name\": ...}}; "
                           f"received {_short(outputs)}")
    names = [o["name"] for o in outputs]
    unknown = [n for n in names if n not in OUTPUTS]
    if unknown:
        raise RequestError(f"infer request: unknown output {unknown[0]!r}; outputs are "
                           f"{', '.join(OUTPUTS)}")
    return names


def infer_response(model, logits: torch.Tensor, outputs: list[str], request_id: Any) -> dict:
    """The v2 response body for logits ``(N, K)``."""
    values = {"logits": logits, "probabilities": torch.softmax(logits, dim=-1)}
    body = {"model_name": model.name, "model_version": "1", "outputs": [
        {"name": name, "datatype": "FP32", "shape": list(values[name].shape),
         "data": values[name].flatten().tolist()} for name in outputs]}
    if isinstance(request_id, str):
        body["id"] = request_id
    return body


def ranked(model, logits: torch.Tensor, top_k: int) -> list[list[dict]]:
    """Per row, the ``top_k`` classes ``{"index", "class", "probability"}``, most probable
    first."""
    probabilities = torch.softmax(logits, dim=-1)
    top_p, top_i = probabilities.topk(min(top_k, probabilities.shape[-1]), dim=-1)
    return [[{"index": i, "class": model.class_names[i], "probability": p}
             for p, i in zip(ps, ids)] for ps, ids in zip(top_p.tolist(), top_i.tolist())]


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


__all__ = ["DATATYPES", "OUTPUTS", "RequestError", "infer_response", "json_bytes",
           "parse_infer_request", "parse_json", "ranked"]
