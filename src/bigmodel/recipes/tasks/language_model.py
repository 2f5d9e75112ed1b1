"""The ``language_model`` task: a character-level language model (``gpt``) on the fortunes texts.

Data (``data.name: fortunes``, :mod:`bigmodel.data.char_lm`): the fortunes of ``data.categories``
(null: :data:`bigmodel.data.fortunes.DEFAULT_CATEGORIES`) under ``data.path`` are split *by
entry* (seeded by ``train.seed``; ``data.validation_split`` of the entries held out, 0.1 when the
recipe says 0: the measurement needs held-out text), so no fortune is in both parts. A character
tokenizer is learned on the training text and saved into the run dir (``tokenizer.json``); the
model's ``vocab_size`` comes from it.

Training: random windows of ``max_length + 1`` characters (``LMWindows``), next-character
cross-entropy. One epoch is ``data.train_subset`` windows when given (a seeded random choice of
window starts, as ``train_subset`` is a seeded random choice of images elsewhere), else one pass
worth of the training text. ``val_loss`` is logged per epoch on consecutive windows of the
validation text.

Evaluation: **validation bits per character**, every validation character after the first
predicted once with up to ``max_length - 1`` characters of context (``data.test_subset``: the
first N validation characters only); the baseline is an add-alpha bigram model fitted on the same
training text (alpha chosen on its last tenth), on the same characters. A short sample (prompt
``"The "``) goes into ``results.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bigmodel.data.char_lm import (
    FortunesCorpus,
    LMWindows,
    bigram_bits_per_char,
    load_fortunes_corpus,
)
from bigmodel.data.fortunes import DEFAULT_CATEGORIES
from bigmodel.data.tokenizers import CharTokenizer
from bigmodel.engine.report import plot_training_curves
from bigmodel.errors import ConfigError
from bigmodel.models import create_model, model_defaults
from bigmodel.models.gpt import language_model_loss
from bigmodel.recipes.tasks import Evaluation, FitInputs

__all__ = ["LanguageModelData", "LanguageModelTask", "best_bigram", "validation_bits_per_char"]

TOKENIZER = "tokenizer.json"
SAMPLE_PROMPT = "The "
BIGRAM_ALPHAS = (0.001, 0.01, 0.1, 0.5, 1.0)


@dataclass
class LanguageModelData:
    """The split corpus, its character tokenizer and both texts as id streams ``(N,)``."""

    corpus: FortunesCorpus
    tokenizer: CharTokenizer
    train_ids: np.ndarray
    validation_ids: np.ndarray


@torch.no_grad()
def validation_bits_per_char(model: torch.nn.Module, ids: np.ndarray, block: int,
                             batch: int = 32) -> float:
    """Mean ``-log2 p(next char)`` over every character of ``ids`` after the first.

    Consecutive windows of ``block + 1`` characters; each character is predicted once, with the
    characters before it in its window as context. The model is left in eval mode.

    Args:
        model: ``model(ids (B, T)) -> logits (B, T, V)`` with ``T <= block``.
        ids: the token stream ``(N,)``, ``N >= 2``.
        block: the model's context length.
        batch: windows per forward pass.
    """
    model.eval()
    device = next(model.parameters()).device
    stream = torch.as_tensor(np.asarray(ids), dtype=torch.long)
    total, count = 0.0, 0
    starts = list(range(0, len(stream) - 1, block))
    for i in range(0, len(starts), batch):
        chunk = [stream[s: s + block + 1] for s in starts[i: i + batch]]
        full = [w for w in chunk if len(w) == block + 1]
        rest = [w for w in chunk if 2 <= len(w) < block + 1]  # the short last window runs alone
        for group in ([torch.stack(full)] if full else []) + [w[None] for w in rest]:
            group = group.to(device)
            logits = model(group[:, :-1])
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                  group[:, 1:].reshape(-1), reduction="sum")
            total += float(nll)
            count += group[:, 1:].numel()
    return total / count / math.log(2)


def best_bigram(train_ids: np.ndarray, vocab: int,
                alphas: tuple[float, ...] = BIGRAM_ALPHAS) -> tuple[float, float]:
    """The add-alpha bigram's ``alpha`` chosen on the last tenth of the training text (fitted on
    the first nine tenths); returns ``(alpha, bits per character there)``."""
    cut = int(len(train_ids) * 0.9)
    scores = {a: bigram_bits_per_char(train_ids[:cut], train_ids[cut:], vocab, alpha=a)
              for a in alphas}
    alpha = min(scores, key=scores.get)
    return alpha, scores[alpha]


def _windows(ids: np.ndarray, block: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Consecutive full windows ``(x (M, block), y (M, block))`` of a stream, or None if none fit."""
    stream = torch.as_tensor(np.asarray(ids), dtype=torch.long)
    count = (len(stream) - 1) // block
    if count < 1:
        return None
    x = stream[: count * block].reshape(count, block)
    y = stream[1: count * block + 1].reshape(count, block)
    return x, y


class LanguageModelTask:
    """The ``language_model`` task of the run path (see the module doc).

    Args:
        callbacks: more engine callbacks for the training (e.g. a time budget).
    """

    name = "language_model"

    def __init__(self, callbacks: list | tuple = ()) -> None:
        self.callbacks = list(callbacks)

    def prepare(self, recipe, seed: int | None) -> LanguageModelData:
        """Read and split the fortunes, learn the character tokenizer, encode both texts.

        Raises:
            ConfigError: data other than fortunes, text-classification options (tokenizer,
                min_count, max_length, skipgram), or a model that is not a language model.
            DataFileError: the fortunes files cannot be found.
        """
        data = recipe.data
        if data.name != "fortunes":
            raise ConfigError(f"data.name: the language_model task reads 'fortunes'; received "
                              f"'{data.name}'")
        given = [key for key, default in (("tokenizer", "word"), ("min_count", 1),
                                          ("max_length", None), ("skipgram", None))
                 if getattr(data, key) != default]
        if given:
            raise ConfigError(f"data.{given[0]} applies to text classification; the "
                              "language_model task reads characters (a character tokenizer "
                              f"learned on the training text): remove data.{given[0]}")
        accepted = model_defaults(recipe.model.name)
        if not {"vocab_size", "max_length"} <= set(accepted) or "num_classes" in accepted:
            raise ConfigError(f"model.name: the language_model task trains a language model "
                              f"(gpt); model '{recipe.model.name}' is not one")
        corpus = load_fortunes_corpus(data.categories or DEFAULT_CATEGORIES, path=data.path,
                                      validation_fraction=data.validation_split or 0.1,
                                      seed=seed or 0)
        tokenizer = CharTokenizer.train([corpus.train_text])
        train_ids = np.asarray(tokenizer.encode(corpus.train_text), dtype=np.int64)
        validation_ids = np.asarray(tokenizer.encode(corpus.validation_text),
                                    dtype=np.int64)[: data.test_subset]
        if len(validation_ids) < 2:
            raise ConfigError(f"data.test_subset={data.test_subset}: at least 2 validation "
                              "characters are needed to measure bits per character")
        return LanguageModelData(corpus, tokenizer, train_ids, validation_ids)

    def build_model(self, recipe, data: LanguageModelData) -> torch.nn.Module:
        """``recipe.model`` with the tokenizer's vocabulary size (the recipe's overrides win)."""
        return create_model(recipe.model.name, **{"vocab_size": data.tokenizer.vocab_size,
                                                  **recipe.model.overrides})

    def fit_inputs(self, recipe, data: LanguageModelData, model) -> FitInputs:
        """Random training windows (see the module doc), consecutive validation windows."""
        train, block = recipe.train, model.max_length
        if recipe.data.train_subset is not None:
            steps = math.ceil(recipe.data.train_subset / train.batch_size)
        else:  # one pass worth of training characters
            steps = math.ceil(len(data.train_ids) / (train.batch_size * block))
        windows = LMWindows(data.train_ids, block, train.batch_size, steps, seed=train.seed or 0)
        return FitInputs(loss=language_model_loss, train=windows,
                         validation=_windows(data.validation_ids, block),
                         callbacks=list(self.callbacks), shuffle=False)

    def finish(self, recipe, model, data: LanguageModelData, run_dir: Path):
        """Save the character tokenizer next to the model, for later commands
        (``load_tokenizer``); returns ``model`` unchanged."""
        data.tokenizer.save(Path(run_dir) / TOKENIZER)
        return model

    def model_metadata(self, recipe, data: LanguageModelData) -> dict[str, Any]:
        return {"task": self.name, "data": recipe.data.name, "tokenizer": TOKENIZER,
                "categories": list(data.corpus.categories)}

    def evaluate(self, recipe, model, data: LanguageModelData, run_dir: Path) -> Evaluation:
        """Validation bits per character vs the bigram baseline, a sample, the curves."""
        corpus, tokenizer, block = data.corpus, data.tokenizer, model.max_length
        bits = validation_bits_per_char(model, data.validation_ids, block)
        alpha, _ = best_bigram(data.train_ids, tokenizer.vocab_size)
        bigram = bigram_bits_per_char(data.train_ids, data.validation_ids, tokenizer.vocab_size,
                                      alpha=alpha)
        prompt = tokenizer.encode(SAMPLE_PROMPT)
        sample = model.generate(torch.tensor([prompt]), block - len(prompt), temperature=0.8,
                                top_k=20, seed=0)
        sample_text = tokenizer.decode(sample[0].tolist())
        images = {}
        if (Path(run_dir) / "metrics.csv").is_file():
            plot_training_curves(Path(run_dir) / "metrics.csv", Path(run_dir) / "training_curves.png",
                                 title=f"{recipe.model.name} on {recipe.data.name} characters")
            images["Training curves"] = "training_curves.png"
        num_chars = len(data.validation_ids)
        results = {"validation": {"loss": bits * math.log(2), "bits_per_char": bits,
                                  "bigram_bits_per_char": bigram}}
        return Evaluation(
            results=results, headline=("validation bits per character", bits),
            num_test=num_chars, unit="characters", images=images,
            summary={"data": f"fortunes ({', '.join(corpus.categories)}): "
                             f"{corpus.num_train_entries:,} train / "
                             f"{corpus.num_validation_entries:,} validation fortunes, "
                             f"{len(data.train_ids):,} / {num_chars:,} characters",
                     "tokenizer": f"characters ({tokenizer.vocab_size} ids)"},
            notes=[f"Validation: {bits:.3f} bits per character vs {bigram:.3f} for an add-{alpha} "
                   f"bigram fitted on the training text, on the same {num_chars:,} characters "
                   "(loss: nats per character).",
                   f"Sample (temperature 0.8, top-k 20): {sample_text!r}"],
            extra={"bits_per_char": bits, "bigram_bits_per_char": bigram, "bigram_alpha": alpha,
                   "categories": list(corpus.categories),
                   "train_entries": corpus.num_train_entries,
                   "validation_entries": corpus.num_validation_entries,
                   "train_chars": len(data.train_ids), "validation_chars": num_chars,
                   "vocab_size": tokenizer.vocab_size, "sample": sample_text})
