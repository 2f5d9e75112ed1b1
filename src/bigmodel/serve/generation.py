"""Language-model and seq2seq runs behind the server: ``/v2/models/{name}/generate`` (continue a
prompt), ``/v2/models/{name}/translate`` (decode texts) and Open Inference Protocol ``/infer`` with
``BYTES`` texts in and ``BYTES`` texts out.

The decoding is :mod:`bigmodel.recipes.generation`'s, the one ``bigmodel generate`` and ``bigmodel
translate`` run (:func:`~bigmodel.recipes.generation.generate_text`,
:func:`~bigmodel.recipes.generation.translate_texts`), on a run loaded once: the same inputs and
seed give the same text as the commands. A request decodes in its model's worker thread (one
request at a time per model, between batches; requests are not batched with each other).
Request sizes are bounded (:data:`LIMITS`): more is refused with a 400 naming the limit.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from bigmodel.compress.saving import read_any_spec
from bigmodel.errors import ConfigError
from bigmodel.serve.models import NAME_PATTERN
from bigmodel.serve.protocol import RequestError, input_tensor, parse_json

GENERATIVE_TASKS = ("language_model", "seq2seq")
#: the most a request may ask for: new characters per sample, samples per prompt, beam width,
#: texts (prompts) per request
LIMITS = {"max_tokens": 1000, "num_samples": 16, "beam": 16, "texts": 64}
GENERATE_FIELDS = ("prompt", "max_tokens", "temperature", "top_k", "seed", "num_samples")
TRANSLATE_FIELDS = ("text", "texts", "beam", "max_length")


def run_task(run_dir: str | Path) -> str:
    """The task recorded in a run's ``model.json`` (``image_classification`` when none is).

    Raises:
        CheckpointError: no valid ``model.json``.
    """
    metadata = read_any_spec(Path(run_dir)).get("metadata") or {}  # compressed stages too
    task = metadata.get("task", "image_classification") if isinstance(metadata, dict) else None
    return task if isinstance(task, str) else "image_classification"


class GenerativeModel:
    """A ``language_model`` or ``seq2seq`` run loaded once for the server.

    Args:
        run_dir: a directory written by ``bigmodel train`` for such a recipe.
        name: the name clients use (default: the folder's name).
        device: where the model runs.

    Attributes:
        kind: ``"language_model"`` or ``"seq2seq"``.

    Raises:
        ConfigError: a run of another task, or an invalid name.
        CheckpointError / DataFileError: missing or invalid model or tokenizer files.
    """

    def __init__(self, run_dir: str | Path, name: str | None = None,
                 device: str | torch.device = "cpu") -> None:
        from bigmodel.recipes.generation import load_language_model, load_seq2seq

        self.run_dir = Path(run_dir)
        self.name = name or self.run_dir.resolve().name
        if not NAME_PATTERN.match(self.name):
            raise ConfigError(f"serve: model name {self.name!r} (from {run_dir}) must be letters, "
                              "digits, '.', '_' or '-' (at most 128)")
        self.kind = run_task(self.run_dir)
        if self.kind not in GENERATIVE_TASKS:
            article = "an" if self.kind[:1] in "aeiou" else "a"
            raise ConfigError(f"serve: {run_dir} is {article} {self.kind} run, not a "
                              "language-model or seq2seq run")
        load = load_language_model if self.kind == "language_model" else load_seq2seq
        self.run = load(self.run_dir, device=str(device))
        self.model = self.run.model
        self.device = next(self.model.parameters()).device

    @property
    def endpoint(self) -> str:
        return "generate" if self.kind == "language_model" else "translate"

    def describe(self) -> dict[str, Any]:
        """Open Inference Protocol model metadata: ``BYTES`` texts in and out."""
        name = "prompt" if self.kind == "language_model" else "text"
        fields = GENERATE_FIELDS[1:] if self.kind == "language_model" else ("beam", "max_length")
        return {"name": self.name, "versions": ["1"], "platform": "pytorch",
                "inputs": [{"name": name, "datatype": "BYTES", "shape": [-1]}],
                "outputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
                "parameters": {"kind": self.kind, "endpoint": self.endpoint,
                               "max_length": int(self.model.max_length),
                               "request_parameters": list(fields), "limits": dict(LIMITS)}}

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Not a classifier: rows are never batched for this model."""
        raise RequestError(f"model {self.name!r} ({self.kind}) decodes texts; use "
                           f"/v2/models/{self.name}/{self.endpoint}")

    # -- decoding (call from the model's worker thread) ----------------------------------------
    def generate(self, prompts: list[str], options: dict[str, Any]) -> list[list[str]]:
        """Per prompt, its ``num_samples`` continuations (prompt included), as ``bigmodel
        generate`` prints them for the same prompt and options."""
        from bigmodel.recipes.generation import generate_text

        return [[sample.text for sample in generate_text(self.run, prompt, **options)]
                for prompt in prompts]

    def translate(self, texts: list[str], options: dict[str, Any]) -> list[str]:
        """One output per text, as ``bigmodel translate TEXT ...`` prints them."""
        from bigmodel.recipes.generation import translate_texts

        return translate_texts(self.run, texts, beam_size=options.get("beam", 1),
                               max_length=options.get("max_length"))


def classifier(served: Any) -> Any:
    """``served`` when it classifies; a generative model is pointed to its endpoint.

    Raises:
        RequestError: a language-model or seq2seq run (400 naming ``/generate`` or
            ``/translate``).
    """
    if isinstance(served, GenerativeModel):
        raise RequestError(f"model {served.name!r} is a {served.kind} run: it decodes texts, it "
                           f"does not classify them; use POST /v2/models/{served.name}/"
                           f"{served.endpoint}")
    return served


def decoder(served: Any, kind: str) -> GenerativeModel:
    """``served`` when it is a generative model of ``kind``; any other is pointed to its
    endpoint.

    Raises:
        RequestError: another kind of run (400 naming the endpoint it answers).
    """
    if isinstance(served, GenerativeModel) and served.kind == kind:
        return served
    use = served.endpoint if isinstance(served, GenerativeModel) else "classify"
    what = {"language_model": "language-model", "seq2seq": "seq2seq"}[kind]
    raise RequestError(f"model {served.name!r} is not a {what} run (it is {served.kind}); use "
                       f"POST /v2/models/{served.name}/{use}")


# -- request bodies ------------------------------------------------------------------------------
def generate_options(document: dict[str, Any], where: str) -> dict[str, Any]:
    """``max_tokens`` / ``temperature`` / ``top_k`` / ``seed`` / ``num_samples`` from a request
    (defaults as ``bigmodel generate``: 100, 1.0, all, unseeded, 1).

    Raises:
        RequestError: a field of the wrong type or out of range (``max_tokens`` and
            ``num_samples`` above :data:`LIMITS`).
    """
    options = {"max_tokens": _integer(document, "max_tokens", 100, where),
               "temperature": 1.0 if document.get("temperature") is None
               else document["temperature"],
               "top_k": _integer(document, "top_k", None, where),
               "seed": _integer(document, "seed", None, where, low=0),
               "num_samples": _integer(document, "num_samples", 1, where)}
    if options["seed"] is not None and options["seed"] >= 2 ** 63:
        raise RequestError(f"{where}: 'seed' must be below 2**63; received {options['seed']}")
    temperature = options["temperature"]
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not math.isfinite(temperature) or temperature < 0:
        raise RequestError(f"{where}: 'temperature' must be a finite number >= 0 (0: greedy); "
                           f"received {_short(temperature)}")
    options["temperature"] = float(temperature)
    for key in ("max_tokens", "num_samples"):
        if options[key] > LIMITS[key]:
            raise RequestError(f"{where}: '{key}' is {options[key]}; this server allows at most "
                               f"{LIMITS[key]} per request")
    return options


def translate_options(document: dict[str, Any], where: str) -> dict[str, Any]:
    """``beam`` (default 1, at most ``LIMITS["beam"]``) and ``max_length`` (default: the
    model's) from a request.

    Raises:
        RequestError: a field of the wrong type or out of range.
    """
    beam = _integer(document, "beam", 1, where)
    if beam > LIMITS["beam"]:
        raise RequestError(f"{where}: 'beam' is {beam}; this server allows at most "
                           f"{LIMITS['beam']}")
    return {"beam": beam, "max_length": _integer(document, "max_length", None, where)}


def check_fields(document: Any, allowed: tuple[str, ...], where: str) -> dict[str, Any]:
    """``document`` as a JSON object holding only ``allowed`` keys (nothing silently ignored).

    Raises:
        RequestError: not an object, or an unknown key.
    """
    if not isinstance(document, dict):
        raise RequestError(f"{where}: expected a JSON object; received "
                           f"{type(document).__name__}")
    unknown = sorted(set(document) - set(allowed))
    if unknown:
        raise RequestError(f"{where}: unknown field {unknown[0][:64]!r}; fields are "
                           f"{', '.join(allowed)}")
    return document


def texts_of(value: Any, where: str) -> list[str]:
    """A non-empty list of at most ``LIMITS["texts"]`` strings from a string or a list.

    Raises:
        RequestError: not strings, none, or too many.
    """
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise RequestError(f"{where}: expected a text or a list of texts; received "
                           f"{_short(value)}")
    if not texts:
        raise RequestError(f"{where}: no text given")
    if len(texts) > LIMITS["texts"]:
        raise RequestError(f"{where}: {len(texts)} texts; this server decodes at most "
                           f"{LIMITS['texts']} per request")
    return texts


def parse_generate(body: bytes) -> tuple[list[str], dict[str, Any], bool]:
    """``(prompts, options, one prompt?)`` of a ``/generate`` body: a JSON object with
    ``prompt`` (a text or a list) and the options of :func:`generate_options`.

    Raises:
        RequestError: not such an object, an unknown field, or an option out of range.
    """
    document = check_fields(parse_json(body), GENERATE_FIELDS, "generate")
    if "prompt" not in document:
        raise RequestError('generate: expected a JSON object {"prompt": "...", ...}')
    prompts = texts_of(document["prompt"], "generate: 'prompt'")
    return prompts, generate_options(document, "generate"), isinstance(document["prompt"], str)


def parse_translate(body: bytes, content_type: str) -> tuple[list[str], dict[str, Any]]:
    """``(texts, options)`` of a ``/translate`` body: a JSON object with ``text`` or ``texts``
    and the options of :func:`translate_options`, or a ``text/plain`` body (one text per line,
    blank lines skipped, as ``bigmodel translate --input`` reads a file).

    Raises:
        RequestError: neither, both, an unknown field, not UTF-8, or an option out of range.
    """
    if content_type.split(";")[0].strip().lower().startswith("text/"):
        try:
            lines = body.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise RequestError("translate: the text body is not UTF-8") from None
        document = {"texts": [line.strip() for line in lines if line.strip()]}
    else:
        document = check_fields(parse_json(body), TRANSLATE_FIELDS, "translate")
    if ("text" in document) == ("texts" in document):
        raise RequestError('translate: expected a JSON object with one of "text" (one text) or '
                           '"texts" (a list)')
    texts = texts_of(document.get("text", document.get("texts")), "translate")
    return texts, translate_options(document, "translate")


def parse_generative_infer(document: Any, model: GenerativeModel) -> tuple[list[str], dict, Any]:
    """``(texts, decoding options, request id)`` of an Open Inference Protocol infer request for a
    generative model: one ``BYTES`` tensor of shape ``[N]`` and optional request ``parameters``
    (those of ``/generate`` or ``/translate``).

    Raises:
        RequestError: a missing or mistyped field, a datatype other than BYTES, a shape other
            than ``[N]``, data not filling it, or an option out of range.
    """
    tensor = input_tensor(document)
    where = f"input {_short(tensor['name'], 40)}"
    if tensor["datatype"] != "BYTES":
        raise RequestError(f"{where}: model {model.name!r} ({model.kind}) takes BYTES texts; "
                           f"received datatype {_short(tensor['datatype'], 40)}")
    shape, data = tensor["shape"], tensor["data"]
    if not (isinstance(shape, list) and len(shape) == 1 and type(shape[0]) is int
            and shape[0] >= 1):
        raise RequestError(f"{where}: BYTES texts have shape [N] (N >= 1); received shape "
                           f"{_short(shape)}")
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], list):
        data = data[0]  # [[...]]: the nested form of the same N texts
    if not isinstance(data, list) or len(data) != shape[0]:
        raise RequestError(f"{where}: shape {shape} needs {shape[0]} texts; 'data' holds "
                           f"{len(data) if isinstance(data, list) else _short(data)}")
    texts = texts_of(data, where)
    outputs = document.get("outputs")
    if outputs is not None and outputs != [{"name": "text"}]:
        raise RequestError(f"infer request: model {model.name!r} has one output, 'text'; "
                           f"received outputs {_short(outputs)}")
    parameters = document.get("parameters") or {}
    allowed = GENERATE_FIELDS[1:] if model.kind == "language_model" else ("beam", "max_length")
    check_fields(parameters, allowed, "infer request parameters")
    options = (generate_options if model.kind == "language_model" else translate_options)(
        parameters, "infer request parameters")
    return texts, options, document.get("id")


def infer_text_response(model: GenerativeModel, outputs: list, request_id: Any) -> dict:
    """The v2 response: ``text`` ``BYTES [N]`` (``[N, num_samples]`` for a language model)."""
    if model.kind == "language_model":
        shape = [len(outputs), len(outputs[0])]
        data = [text for samples in outputs for text in samples]
    else:
        shape, data = [len(outputs)], list(outputs)
    body = {"model_name": model.name, "model_version": "1",
            "outputs": [{"name": "text", "datatype": "BYTES", "shape": shape, "data": data}]}
    if isinstance(request_id, str):
        body["id"] = request_id
    return body


def _integer(document: dict, key: str, default: int | None, where: str,
             low: int | None = 1) -> int | None:
    value = document.get(key)
    if value is None:  # absent or null: the default
        return default
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        bound = f" >= {low}" if low is not None else ""
        raise RequestError(f"{where}: '{key}' must be an integer{bound}; received "
                           f"{_short(value)}")
    return value


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


__all__ = ["GENERATIVE_TASKS", "LIMITS", "GenerativeModel", "check_fields", "classifier", "decoder",
           "generate_options", "infer_text_response", "parse_generate", "parse_generative_infer",
           "parse_translate", "run_task", "texts_of", "translate_options"]
