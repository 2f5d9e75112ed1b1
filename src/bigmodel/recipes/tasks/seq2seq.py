"""The ``seq2seq`` task: an encoder-decoder Transformer on a generated sequence task.

Data (``data.name``, :mod:`bigmodel.data.seq2seq`, generated from ``train.seed``):
``numbers_to_words`` (``"4071" -> "four thousand seventy one"``), ``dates_to_iso`` (many formats
-> ``YYYY-MM-DD``), ``reversal``. ``data.train_subset`` / ``data.test_subset`` are the numbers of
training / held-out test pairs (defaults in :data:`DEFAULT_COUNTS`); held-out means that no test
number, calendar day or string occurs in training. ``data.validation_split`` holds out the last
share of the training pairs for per-epoch ``val_loss`` / ``val_accuracy``.

Tokenizers are learned on the training pairs: characters on both sides, except word targets for
``numbers_to_words``; they are saved into the run dir (``source_tokenizer.json``,
``target_tokenizer.json``, :func:`bigmodel.data.tokenizers.load_tokenizer`), and the model's
vocabulary sizes come from them. The model (``model.name``, ``transformer``) is trained with teacher
forcing on length-bucketed batches (``[BOS] + target[:-1]`` in, ``target`` out) with the
padding-aware cross-entropy; the logged ``accuracy`` is the token accuracy without padding.

Evaluation: teacher-forced loss and token accuracy on the validation and test pairs, and the
headline **exact match**: every held-out test source decoded (greedy, or beam search with
``Seq2SeqTask(beam_size=4)``) and compared with its reference.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bigmodel.data import seq2seq as generated
from bigmodel.data.tokenizers import CharTokenizer, Tokenizer, WordTokenizer
from bigmodel.engine.report import plot_training_curves
from bigmodel.engine.sequence_metrics import MaskedTokenAccuracy, masked_cross_entropy
from bigmodel.errors import ConfigError
from bigmodel.models import create_model, model_defaults
from bigmodel.recipes.tasks import Evaluation, FitInputs

__all__ = ["DEFAULT_COUNTS", "Seq2SeqData", "Seq2SeqTask", "teacher_forced_scores"]

# data.name -> (training pairs, held-out test pairs) when data.train_subset / test_subset are null
DEFAULT_COUNTS = {"numbers_to_words": (20000, 2000), "dates_to_iso": (20000, 2000),
                  "reversal": (5000, 500)}
SOURCE_TOKENIZER, TARGET_TOKENIZER = "source_tokenizer.json", "target_tokenizer.json"


@dataclass
class Seq2SeqData:
    """A generated task, its tokenizers and the encoded training / validation pairs.

    Attributes:
        pairs: the generated task (train / test sources and targets as strings).
        source_tokenizer / target_tokenizer: learned on the training pairs.
        train / validation: ``(source ids (N, S), target ids (N, T))`` int64, right-padded with 0,
            targets ending in EOS; ``validation`` is None without ``data.validation_split``.
    """

    pairs: generated.Seq2SeqTask
    source_tokenizer: Tokenizer
    target_tokenizer: Tokenizer
    train: tuple[torch.Tensor, torch.Tensor]
    validation: tuple[torch.Tensor, torch.Tensor] | None


def _encode(sources, targets, source_tokenizer: Tokenizer,
            target_tokenizer: Tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """``(source ids (N, S), target ids (N, T))`` int64 tensors, targets ending in EOS."""
    x, y = generated.encode_pairs(sources, targets, source_tokenizer, target_tokenizer)
    return (torch.as_tensor(np.asarray(x), dtype=torch.long),
            torch.as_tensor(np.asarray(y), dtype=torch.long))


def _batches(source: torch.Tensor, targets: torch.Tensor, batch_size: int, shuffle: bool,
             seed: int | None, bos_id: int, pad_id: int) -> Any:
    """Length-bucketed teacher-forcing batches ``((source, decoder_input), targets)``."""
    decoder_input, targets = generated.teacher_forcing(targets, bos_id)
    return generated.seq2seq_batches(source, decoder_input, targets, batch_size, shuffle=shuffle,
                                     seed=seed, pad_id=pad_id)


@torch.no_grad()
def teacher_forced_scores(model: torch.nn.Module, source: torch.Tensor, targets: torch.Tensor,
                          batch_size: int = 64) -> tuple[float, float]:
    """Teacher-forced ``(loss, token accuracy)`` of ``model`` on pairs, padding ignored.

    Args:
        model: an encoder-decoder with ``forward((source, decoder_input)) -> (B, T, V)`` and
            ``pad_id`` / ``bos_id``.
        source: ``(N, S)`` ids; targets: ``(N, T)`` ids ending in EOS, right-padded.
        batch_size: pairs per forward pass.

    Returns:
        The mean cross-entropy per target token (nats) and the share of target tokens predicted
        right, both over non-padding positions.
    """
    device = next(model.parameters()).device
    accuracy = MaskedTokenAccuracy(model.pad_id)
    nll, tokens = 0.0, 0
    for (src, dec), tgt in _batches(source, targets, batch_size, False, None, model.bos_id,
                                    model.pad_id):
        src, dec, tgt = src.to(device), dec.to(device), tgt.to(device)
        logits = model((src, dec))
        count = int((tgt != model.pad_id).sum())
        nll += float(masked_cross_entropy(logits, tgt, model.pad_id)) * count
        tokens += count
        accuracy.update(logits, tgt)
    return nll / max(tokens, 1), accuracy.result()


class Seq2SeqTask:
    """The ``seq2seq`` task of the run path (see the module doc).

    Args:
        beam_size: 1 = greedy decoding for the exact match; > 1 = beam search of that width.
        callbacks: more engine callbacks for the training (e.g. a time budget).
    """

    name = "seq2seq"

    def __init__(self, beam_size: int = 1, callbacks: list | tuple = ()) -> None:
        if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
            raise ConfigError(f"Seq2SeqTask: beam_size must be an int >= 1; received {beam_size!r}")
        self.beam_size, self.callbacks = beam_size, list(callbacks)

    # ------------------------------------------------------------------------------ data
    def prepare(self, recipe, seed: int | None) -> Seq2SeqData:
        """Generate the pairs, learn the tokenizers, encode (see the module doc).

        Raises:
            ConfigError: a data name that is not a sequence task, ``data.path`` (the data are
                generated), a model that is not an encoder-decoder, or too few pairs.
        """
        data = recipe.data
        if data.name not in DEFAULT_COUNTS:
            raise ConfigError(f"data.name: the seq2seq task reads {' | '.join(DEFAULT_COUNTS)}; "
                              f"received '{data.name}'")
        if data.path is not None:
            raise ConfigError(f"data.path: the {data.name} pairs are generated (from train.seed), "
                              f"not read; remove data.path (received {data.path!r})")
        accepted = model_defaults(recipe.model.name)
        if not {"input_vocab_size", "target_vocab_size"} <= set(accepted):
            raise ConfigError(f"model.name: the seq2seq task trains an encoder-decoder "
                              f"(transformer); model '{recipe.model.name}' has no "
                              f"input_vocab_size / target_vocab_size")
        num_train, num_test = DEFAULT_COUNTS[data.name]
        num_train, num_test = data.train_subset or num_train, data.test_subset or num_test
        make = getattr(generated, data.name)
        pairs = make(num_train, num_test, seed=seed or 0)
        source_tokenizer = CharTokenizer.train(pairs.train_sources)
        target_tokenizer = (WordTokenizer.train(pairs.train_targets)
                            if data.name == "numbers_to_words"
                            else CharTokenizer.train(pairs.train_targets))
        x, y = _encode(pairs.train_sources, pairs.train_targets, source_tokenizer,
                       target_tokenizer)
        validation = None
        if data.validation_split:
            split = int(len(x) * (1.0 - data.validation_split))  # the last share, as Keras does
            if split in (0, len(x)):
                raise ConfigError(f"data.validation_split={data.validation_split} leaves an empty "
                                  f"training or validation set of {len(x)} pairs")
            x, y, validation = x[:split], y[:split], (x[split:], y[split:])
        return Seq2SeqData(pairs, source_tokenizer, target_tokenizer, (x, y), validation)

    def build_model(self, recipe, data: Seq2SeqData) -> torch.nn.Module:
        """``recipe.model`` with the tokenizers' vocabulary sizes (the recipe's overrides win)."""
        return create_model(recipe.model.name, **{
            "input_vocab_size": data.source_tokenizer.vocab_size,
            "target_vocab_size": data.target_tokenizer.vocab_size, **recipe.model.overrides})

    def fit_inputs(self, recipe, data: Seq2SeqData, model) -> FitInputs:
        """Teacher-forcing batches, the padding-aware loss and token accuracy.

        Raises:
            ConfigError: a sequence longer than the model's ``max_length``.
        """
        longest = {"source": data.train[0].shape[1], "target": data.train[1].shape[1]}
        for side, length in longest.items():
            if length > model.max_length:
                raise ConfigError(f"model.overrides.max_length: the longest {side} sequence of "
                                  f"{recipe.data.name} has {length} tokens (EOS included), more "
                                  f"than max_length={model.max_length}")
        train, pad, bos = recipe.train, model.pad_id, model.bos_id

        def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return masked_cross_entropy(logits, targets, pad)

        validation = None if data.validation is None else _batches(
            *data.validation, train.batch_size, False, train.seed, bos, pad)
        return FitInputs(loss=loss, train=_batches(*data.train, train.batch_size, True,
                                                   train.seed, bos, pad),
                         validation=validation, metrics=[MaskedTokenAccuracy(pad, "accuracy")],
                         callbacks=list(self.callbacks), shuffle=False)

    def finish(self, recipe, model, data: Seq2SeqData, run_dir: Path):
        """Save both tokenizers next to the model, for later commands (``load_tokenizer``);
        returns ``model`` unchanged."""
        data.source_tokenizer.save(Path(run_dir) / SOURCE_TOKENIZER)
        data.target_tokenizer.save(Path(run_dir) / TARGET_TOKENIZER)
        return model

    def model_metadata(self, recipe, data: Seq2SeqData) -> dict[str, Any]:
        return {"task": self.name, "data": recipe.data.name,
                "tokenizers": {"source": SOURCE_TOKENIZER, "target": TARGET_TOKENIZER}}

    # ------------------------------------------------------------------------------ evaluation
    def evaluate(self, recipe, model, data: Seq2SeqData, run_dir: Path) -> Evaluation:
        """Teacher-forced loss / token accuracy, decoded exact match on the test pairs, curves."""
        pairs, batch = data.pairs, recipe.train.batch_size
        results: dict[str, dict[str, float | None]] = {}
        if data.validation is not None:
            loss, accuracy = teacher_forced_scores(model, *data.validation, batch)
            results["validation"] = {"loss": loss, "accuracy": accuracy}
        test = _encode(pairs.test_sources, pairs.test_targets, data.source_tokenizer,
                       data.target_tokenizer)
        test_loss, test_accuracy = teacher_forced_scores(model, *test, batch)
        # room for the longest training target and a few more tokens, within the positions
        longest = max(len(data.target_tokenizer.encode(t)) for t in pairs.train_targets) + 4
        started = time.perf_counter()
        predictions = model.translate(pairs.test_sources, tokenizer=data.source_tokenizer,
                                      target_tokenizer=data.target_tokenizer,
                                      max_new_tokens=min(longest, model.max_length - 1),
                                      beam_size=self.beam_size)
        decode_seconds = time.perf_counter() - started
        exact = generated.exact_match(predictions, pairs.test_targets)
        results["test"] = {"loss": test_loss, "accuracy": test_accuracy, "exact_match": exact}
        wrong = [[s, p, t] for s, p, t in zip(pairs.test_sources, predictions, pairs.test_targets)
                 if p.strip() != t.strip()][:5]
        num_val = 0 if data.validation is None else len(data.validation[0])
        decoding = "greedy" if self.beam_size == 1 else f"beam search (width {self.beam_size})"
        images = {}
        if (Path(run_dir) / "metrics.csv").is_file():
            plot_training_curves(Path(run_dir) / "metrics.csv", Path(run_dir) / "training_curves.png",
                                 title=f"{recipe.model.name} on {recipe.data.name}")
            images["Training curves"] = "training_curves.png"
        notes = [f"Exact match {exact:.2%}: every held-out test source decoded ({decoding}) and "
                 "compared with its reference; loss and accuracy are teacher-forced, per target "
                 "token, padding ignored."]
        notes += [f"wrong: {s!r} -> {p!r} (expected {t!r})" for s, p, t in wrong]
        kinds = (type(data.source_tokenizer).__name__, type(data.target_tokenizer).__name__)
        return Evaluation(
            results=results, headline=("test exact match", exact), num_test=len(pairs.test_sources),
            unit="pairs", notes=notes, images=images,
            summary={"data": f"{recipe.data.name}: {len(data.train[0]):,} train / {num_val:,} "
                             f"validation / {len(pairs.test_sources):,} held-out test pairs",
                     "tokenizers": f"{kinds[0]} ({data.source_tokenizer.vocab_size} ids) -> "
                                   f"{kinds[1]} ({data.target_tokenizer.vocab_size} ids)",
                     "decoding": decoding},
            extra={"exact_match": exact, "token_accuracy": test_accuracy, "beam_size": self.beam_size,
                   "decode_seconds": round(decode_seconds, 3), "num_train": len(data.train[0]),
                   "num_validation": num_val, "num_test": len(pairs.test_sources),
                   "examples_wrong": wrong})
