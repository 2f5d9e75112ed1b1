"""Language-model and seq2seq runs after training: generate text, translate, measure again.

``generate_from_run(run_dir, prompt, ...)`` continues a prompt with a ``language_model`` run's
GPT and its character tokenizer (``bigmodel generate``); ``translate_with_run(run_dir, texts,
...)`` decodes texts with a ``seq2seq`` run's encoder-decoder and its two tokenizers (``bigmodel
translate``); ``evaluate_sequence_run(run_dir)`` repeats the run's own measurement (the task's
``evaluate`` on the data its resolved recipe regenerates) for ``bigmodel evaluate``.

Decoding is the library's: :meth:`bigmodel.models.gpt.GPT.generate` (KV-cached sampling, temperature
0 = greedy) and :meth:`bigmodel.models.transformer.TransformerModel.translate` (greedy or beam
search). A generation longer than the model's context slides its window: every new character is
predicted from the last ``max_length`` characters at most (as nanoGPT's ``generate`` does; a
prompt longer than the context is kept whole in the output).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bigmodel.errors import ConfigError, DataError

__all__ = ["Generation", "LanguageModelRun", "Seq2SeqRun", "evaluate_sequence_run",
           "generate_from_run", "generate_text", "load_language_model", "load_seq2seq", "read_lines",
           "translate_texts", "translate_with_run"]

SEQUENCE_TASKS = ("seq2seq", "language_model")
# what each sequence task's run is used with, for the messages that point a user elsewhere
COMMAND_OF = {"language_model": "bigmodel generate RUN_DIR --prompt TEXT",
              "seq2seq": 'bigmodel translate RUN_DIR "TEXT"'}


@dataclass
class Generation:
    """One generated sample: ``ids`` (prompt + new tokens) and their ``text``."""

    ids: list[int]
    text: str


def _run_task(run_dir: str | Path) -> tuple[Path, dict[str, Any]]:
    """``(run_dir, model.json metadata)``; the task defaults to image classification (old runs).

    Raises:
        ConfigError: ``run_dir`` is not a directory. CheckpointError: no valid ``model.json``.
    """
    from bigmodel.models import read_model_spec

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"Run directory not found: {run_dir}")
    metadata = read_model_spec(run_dir).get("metadata") or {}
    return run_dir, metadata


def _require_task(run_dir: Path, metadata: dict[str, Any], task: str, command: str) -> None:
    found = metadata.get("task", "image_classification")
    if found != task:
        hint = (f"; use '{COMMAND_OF[found]}'" if found in COMMAND_OF
                else "; use 'bigmodel predict RUN_DIR INPUT'")
        article = "an" if found[:1] in "aeiou" else "a"
        raise ConfigError(f"{command} needs a {task} run; {run_dir} is {article} {found} "
                          f"run{hint}")


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer; received {value!r}")
    return value


def _unknown_characters(text: str, tokenizer: Any) -> list[str]:
    """The distinct characters of ``text`` a character tokenizer would map to ``<unk>``."""
    known = set(getattr(tokenizer, "chars", ()))
    return sorted({c for c in text if c not in known})


def _load(run_dir: Path, device: str) -> Any:
    from bigmodel.engine.resolve import resolve_device
    from bigmodel.models import load_model

    return load_model(run_dir, device=resolve_device(device))


# ----------------------------------------------------------------------------------- generate
@dataclass
class LanguageModelRun:
    """A ``language_model`` run loaded once (``bigmodel serve`` keeps it; ``bigmodel generate``
    loads it per call): its directory, GPT and character tokenizer."""

    run_dir: Path
    model: Any
    tokenizer: Any


def load_language_model(run_dir: str | Path, device: str = "auto") -> LanguageModelRun:
    """The GPT and tokenizer of a ``language_model`` run.

    Raises:
        ConfigError: not a directory, or a run of another task.
        CheckpointError / DataFileError: missing or invalid model or tokenizer files.
    """
    from bigmodel.data.tokenizers import load_tokenizer

    run_dir, metadata = _run_task(run_dir)
    _require_task(run_dir, metadata, "language_model", "generate")
    tokenizer = load_tokenizer(run_dir, metadata.get("tokenizer", "tokenizer.json"))
    return LanguageModelRun(run_dir, _load(run_dir, device), tokenizer)


def generate_from_run(run_dir: str | Path, prompt: str, max_tokens: int, temperature: float = 1.0,
                      top_k: int | None = None, seed: int | None = None, num_samples: int = 1,
                      device: str = "auto") -> list[Generation]:
    """Continue ``prompt`` with a language-model run's GPT (see the module doc): checks the
    arguments, :func:`load_language_model`, then :func:`generate_text`.

    Args:
        run_dir: a directory written by ``bigmodel train`` for a ``language_model`` recipe.
        prompt / max_tokens / temperature / top_k / seed / num_samples: as :func:`generate_text`.

    Returns:
        ``num_samples`` generations, each ``len(prompt) + max_tokens`` ids long, the prompt first.

    Raises:
        ConfigError: a run of another task, or an argument :func:`generate_text` refuses.
        DataError: prompt characters the run never saw in training (named).
        CheckpointError / DataFileError: missing or invalid model or tokenizer files.
    """
    run_dir, metadata = _run_task(run_dir)
    _require_task(run_dir, metadata, "language_model", "generate")
    _check_generation(prompt, max_tokens, temperature, top_k, num_samples)  # before loading
    return generate_text(load_language_model(run_dir, device), prompt, max_tokens, temperature,
                         top_k, seed, num_samples)


def _check_generation(prompt: Any, max_tokens: Any, temperature: Any, top_k: Any,
                      num_samples: Any) -> None:
    import math

    _positive("--max-tokens", max_tokens)
    _positive("--num-samples", num_samples)
    if top_k is not None:
        _positive("--top-k", top_k)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not math.isfinite(temperature) or temperature < 0:
        raise ConfigError(f"--temperature must be a finite number >= 0 (0: greedy); received "
                          f"{temperature!r}")
    if not isinstance(prompt, str) or not prompt:
        raise ConfigError("--prompt must hold at least one character (the model continues a "
                          "text); received an empty prompt")


def generate_text(run: LanguageModelRun, prompt: str, max_tokens: int, temperature: float = 1.0,
                  top_k: int | None = None, seed: int | None = None,
                  num_samples: int = 1) -> list[Generation]:
    """Continue ``prompt`` with a loaded language-model run (the decoding of ``bigmodel
    generate`` and of ``bigmodel serve``'s ``/generate``).

    Args:
        run: from :func:`load_language_model`.
        prompt: the start of the text; every character must be in the run's vocabulary.
        max_tokens: new characters per sample (beyond the context the window slides).
        temperature: 0 = greedy (argmax); otherwise logits are divided by it before sampling.
        top_k: sample among the ``top_k`` most likely characters (None: all).
        seed: makes sampling reproducible (None: torch's global generator).
        num_samples: independent samples of the same prompt.

    Returns:
        ``num_samples`` generations, each ``len(prompt) + max_tokens`` ids long, the prompt first.

    Raises:
        ConfigError: an empty prompt, ``max_tokens`` / ``top_k`` / ``num_samples`` < 1, a
            negative or non-finite temperature.
        DataError: prompt characters the run never saw in training (named).
    """
    import torch

    _check_generation(prompt, max_tokens, temperature, top_k, num_samples)
    unknown = _unknown_characters(prompt, run.tokenizer)
    if unknown:
        raise DataError(f"--prompt: characters not in the vocabulary of {run.run_dir} (learned "
                        f"from its training text): {', '.join(repr(c) for c in unknown)}; remove "
                        "or replace them")
    ids = torch.tensor([run.tokenizer.encode(prompt)] * num_samples, dtype=torch.long)
    out = _generate(run.model, ids, max_tokens, float(temperature), top_k, seed)
    return [Generation(row, run.tokenizer.decode(row, skip_special_tokens=False))
            for row in out.tolist()]


def _generate(model: Any, ids: Any, max_tokens: int, temperature: float, top_k: int | None,
              seed: int | None) -> Any:
    """``model.generate`` within the context; past it, one uncached forward pass per character
    over the last ``max_length`` characters (the window slides)."""
    import torch

    from bigmodel.models.decoding import sample_logits

    block = model.max_length
    # A prompt that fills the context goes straight to the sliding window (every new id then sees
    # the last block ids, the first one included).
    first = min(max_tokens, block - ids.shape[1]) if ids.shape[1] < block else 0
    out = ids.cpu()
    if first:
        out = model.generate(ids, first, temperature=temperature, top_k=top_k, seed=seed).cpu()
    left = max_tokens - first
    if not left:
        return out
    device = next(model.parameters()).device
    # A private generator continues the seeded sequence past the cached part (seed + 1: the
    # first part's generator is internal to GPT.generate).
    generator = None if seed is None else torch.Generator(device=device).manual_seed(int(seed) + 1)
    with torch.no_grad():
        for _ in range(left):
            logits = model(out[:, -block:].to(device))[:, -1]
            token = sample_logits(logits, temperature, top_k, generator=generator)
            out = torch.cat([out, token[:, None].cpu()], dim=1)
    return out


# ---------------------------------------------------------------------------------- translate
def read_lines(path: str | Path) -> list[str]:
    """The texts of a UTF-8 text file, one per line (blank lines skipped, ends stripped).

    Raises:
        DataFileError: the file is missing or not UTF-8 text. DataError: it holds no text.
    """
    from bigmodel.errors import DataFileError

    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"--input: file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(f"--input: {path} cannot be read as UTF-8 text: {exc}") from None
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise DataError(f"--input: {path} holds no text (one text per line)")
    return texts


def _seq2seq_tokenizers(run_dir: Path, metadata: dict[str, Any]) -> tuple[Any, Any]:
    from bigmodel.data.tokenizers import load_tokenizer

    names = metadata.get("tokenizers") or {}
    return (load_tokenizer(run_dir, names.get("source", "source_tokenizer.json")),
            load_tokenizer(run_dir, names.get("target", "target_tokenizer.json")))


@dataclass
class Seq2SeqRun:
    """A ``seq2seq`` run loaded once: its directory, encoder-decoder and the source and target
    tokenizers."""

    run_dir: Path
    model: Any
    source: Any
    target: Any


def load_seq2seq(run_dir: str | Path, device: str = "auto") -> Seq2SeqRun:
    """The encoder-decoder and tokenizers of a ``seq2seq`` run.

    Raises:
        ConfigError: not a directory, or a run of another task.
        CheckpointError / DataFileError: missing or invalid model or tokenizer files.
    """
    run_dir, metadata = _run_task(run_dir)
    _require_task(run_dir, metadata, "seq2seq", "translate")
    source, target = _seq2seq_tokenizers(run_dir, metadata)
    return Seq2SeqRun(run_dir, _load(run_dir, device), source, target)


def translate_with_run(run_dir: str | Path, texts: list[str], beam_size: int = 1,
                       max_length: int | None = None, batch_size: int = 64,
                       device: str = "auto") -> list[str]:
    """Decode ``texts`` with a seq2seq run's encoder-decoder, one output per text, in order:
    :func:`load_seq2seq`, then :func:`translate_texts`.

    Args:
        run_dir: a directory written by ``bigmodel train`` for a ``seq2seq`` recipe.
        texts / beam_size / max_length / batch_size: as :func:`translate_texts`.

    Raises:
        ConfigError: a run of another task, or an argument :func:`translate_texts` refuses.
        DataError: a text :func:`translate_texts` refuses.
        CheckpointError / DataFileError: missing or invalid model or tokenizer files.
    """
    run_dir, metadata = _run_task(run_dir)
    _require_task(run_dir, metadata, "seq2seq", "translate")
    _positive("--beam", beam_size)  # before loading the model
    _positive("--batch-size", batch_size)
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts:
        raise DataError("translate: no text given (pass texts or --input FILE.txt)")
    return translate_texts(load_seq2seq(run_dir, device), texts, beam_size, max_length,
                           batch_size)


def translate_texts(run: Seq2SeqRun, texts: list[str], beam_size: int = 1,
                    max_length: int | None = None, batch_size: int = 64) -> list[str]:
    """Decode ``texts`` with a loaded seq2seq run (the decoding of ``bigmodel translate`` and of
    ``bigmodel serve``'s ``/translate``), one output per text, in order.

    Args:
        run: from :func:`load_seq2seq`.
        texts: the sources (e.g. dates, or numbers written in digits).
        beam_size: 1 = greedy; more = beam search (GNMT length normalization, alpha 0.6).
        max_length: most output tokens per text (None: the model's ``max_length - 1``).
        batch_size: texts decoded together.

    Raises:
        ConfigError: ``beam_size`` / ``batch_size`` < 1, ``max_length`` outside
            ``[1, model max_length - 1]``.
        DataError: no texts, an empty text, characters the run never saw (named with the text's
            number) or a text longer than the model reads.
    """
    beam_size, batch_size = _positive("--beam", beam_size), _positive("--batch-size", batch_size)
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts:
        raise DataError("translate: no text given (pass texts or --input FILE.txt)")
    model, source = run.model, run.source
    limit = model.max_length - 1
    if max_length is None:
        max_length = limit
    elif _positive("--max-length", max_length) > limit:
        raise ConfigError(f"--max-length must be at most {limit} (the model's max_length - 1, "
                          f"its positions); received {max_length}")
    for number, text in enumerate(texts, 1):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"translate: text {number} is empty")
        unknown = _unknown_characters(text, source) if hasattr(source, "chars") else []
        if unknown:
            raise DataError(f"translate: text {number} ({text!r}) has characters not in the "
                            f"source vocabulary of {run.run_dir}: "
                            f"{', '.join(repr(c) for c in unknown)}")
        length = len(source.encode(text))
        if length > model.max_length:
            raise DataError(f"translate: text {number} has {length} tokens; the model reads at "
                            f"most {model.max_length} (max_length)")
    outputs: list[str] = []
    for start in range(0, len(texts), batch_size):
        outputs += model.translate(texts[start: start + batch_size], tokenizer=source,
                                   target_tokenizer=run.target, max_new_tokens=max_length,
                                   beam_size=beam_size)
    return outputs


# ----------------------------------------------------------------------------------- evaluate
def _check_tokenizers(run_dir: Path, metadata: dict[str, Any], task: str, data: Any) -> None:
    """The tokenizers relearned from the regenerated data must be the run's saved ones (the
    model's ids mean those); otherwise the data changed since training.

    Raises:
        DataError: a relearned tokenizer differs from the saved one.
    """
    from bigmodel.data.tokenizers import load_tokenizer

    if task == "language_model":
        pairs = [("tokenizer", load_tokenizer(run_dir, metadata.get("tokenizer",
                                                                    "tokenizer.json")),
                  data.tokenizer)]
    else:
        saved = _seq2seq_tokenizers(run_dir, metadata)
        pairs = [("source tokenizer", saved[0], data.source_tokenizer),
                 ("target tokenizer", saved[1], data.target_tokenizer)]
    for what, saved_one, relearned in pairs:
        if list(saved_one.itos) != list(relearned.itos):
            raise DataError(f"evaluate: the data regenerated from {run_dir / 'recipe.yaml'} gives "
                            f"a {what} of {relearned.vocab_size} tokens, not the run's "
                            f"{saved_one.vocab_size}: the data changed since training, so the "
                            "run's measurement cannot be repeated on it")


def evaluate_sequence_run(run_dir: str | Path, data_path: str | None = None,
                          device: str = "auto") -> dict[str, Any]:
    """The run's own measurement again, on the data its resolved recipe regenerates.

    ``seq2seq``: teacher-forced loss and token accuracy, and greedy exact match, on the held-out
    test pairs (and the validation pairs, when the recipe held some out). ``language_model``:
    validation bits per character (and the bigram baseline's). The numbers equal the run's
    ``results.json`` (same data, same model, same decoding); no file is written.

    Returns:
        ``{"task", "headline", "value", "results" ({split: {metric: value}}), "loss",
        "accuracy" (None for a language model), "num_images", "unit"}``.

    Raises:
        ConfigError: no (valid) ``recipe.yaml``, a run of another task, ``data_path`` for
            generated pairs.
        DataError: the regenerated data no longer gives the run's tokenizers.
        CheckpointError / DataFileError: missing or invalid model, tokenizer or data files.
    """
    from bigmodel.recipes.schema import load_recipe
    from bigmodel.recipes.tasks import get_task
    from bigmodel.utils.loading import confined_path

    run_dir, metadata = _run_task(run_dir)
    recipe = load_recipe(confined_path(run_dir, "recipe.yaml", "Run recipe", error=ConfigError,
                                       kind=None))
    if recipe.task not in SEQUENCE_TASKS:
        raise ConfigError(f"{run_dir} is a {recipe.task} run, not a seq2seq or language-model run")
    if data_path is not None:
        if recipe.task == "seq2seq":
            raise ConfigError(f"--data-path: the {recipe.data.name} pairs of {run_dir} are "
                              "generated from the recipe's seed, not read; leave --data-path out")
        recipe = recipe.model_copy(update={"data": recipe.data.model_copy(
            update={"path": data_path})})
    task = get_task(recipe.task)
    data = task.prepare(recipe, recipe.train.seed)
    _check_tokenizers(run_dir, metadata, recipe.task, data)
    model = _load(run_dir, device)
    with tempfile.TemporaryDirectory() as scratch:  # no metrics.csv there: no plot is drawn
        evaluation = task.evaluate(recipe, model, data, Path(scratch))
    main = evaluation.results.get("test") or evaluation.results.get("validation") or {}
    name, value = evaluation.headline
    return {"task": recipe.task, "headline": name, "value": value,
            "results": evaluation.results, "loss": main.get("loss"),
            "accuracy": main.get("accuracy"), "num_images": evaluation.num_test,
            "unit": evaluation.unit}
