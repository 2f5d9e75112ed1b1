"""Keras-style ``compile/fit/evaluate/predict`` for sequence-to-sequence models, on the engine.

Expected data (``fit(train_data, train_labels)``):

- ``train_data``: source token ids ``(N, S)`` integers, right-padded with ``pad_id`` (0); or a list
  of id lists of any lengths; or a tuple ``(source, decoder_input)`` when you do your own shifting.
- ``train_labels``: target token ids ``(N, T)``, right-padded with ``pad_id``, each sequence ideally
  ending with ``eos_id`` (2). A leading ``bos_id`` is optional. One-hot labels ``(N, T, vocab)``
  (what ``categorical_crossentropy`` takes in Keras) are accepted too; an all-zero row is padding.

Teacher forcing is done for you: the decoder reads ``[BOS] + target[:-1]`` and learns to predict
``target``. When no label sequence contains ``eos_id`` at all, one EOS is appended to every
sequence so the model learns where to stop. Loss and accuracy ignore padding positions.

Both Keras cross-entropy names map to the padding-aware token cross-entropy (with optional label
smoothing); ``metrics=["accuracy"]`` is the token accuracy over non-padding positions and
``"sequence_accuracy"`` the share of sequences whose every token is right (teacher-forced).
``compile(lr_schedule="noam")`` uses the paper's schedule ``d_model^-0.5 * min(step^-0.5,
step * warmup^-1.5)`` with Adam(0.9, 0.98, 1e-9) when the optimizer is given by name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bigmodel.data.seq2seq import seq2seq_batches, teacher_forcing
from bigmodel.engine import Trainer
from bigmodel.engine.schedules import build_scheduler
from bigmodel.engine.sequence_metrics import (
    MaskedTokenAccuracy,
    SequenceExactMatch,
    masked_cross_entropy,
)
from bigmodel.errors import ConfigError, DataError, InputTypeError, UnknownNameError
from bigmodel.keras import optimizers
from bigmodel.models.tokens import as_token_ids, check_token_ids

__all__ = ["Seq2SeqTrainingMixin"]

_LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy", "masked_cross_entropy")


class Seq2SeqTrainingMixin:
    """``compile``/``fit``/``evaluate``/``predict`` for a model with ``forward((source, target_in))``.

    The host class provides ``pad_id``, ``bos_id``, ``eos_id``, ``max_length``, ``built``,
    ``build(input_vocab, target_vocab)``, ``input_vocab_size``, ``target_vocab_size``,
    ``d_model`` and ``translate``.
    """

    _trainer: Any = None
    _compiled: dict[str, Any] | None = None

    # ------------------------------------------------------------------------------ compile
    def compile(self, optimizer: Any = "adam", loss: Any = "sparse_categorical_crossentropy",
                metrics: Any = None, label_smoothing: float = 0.0,
                learning_rate: float | None = None, lr_schedule: str | dict | None = None,
                warmup_steps: int = 4000, grad_clip_norm: float | None = None,
                **keras_options: Any) -> None:
        """Configure training (Keras signature plus sequence-model options).

        Args:
            optimizer: a name (``adam``, ``adamw``, ``sgd``, ``rmsprop``, ``adagrad``; Keras
                defaults), a ``bigmodel.keras.optimizers`` object or a callable
                ``params -> torch.optim.Optimizer``.
            loss: ``"sparse_categorical_crossentropy"``, ``"categorical_crossentropy"`` (both the
                padding-aware token cross-entropy) or ``fn(logits (B,T,V), targets (B,T)) -> scalar``.
            metrics: ``"accuracy"`` (token accuracy without padding), ``"sequence_accuracy"``.
            label_smoothing: the paper uses 0.1.
            learning_rate: overrides the optimizer's default rate.
            lr_schedule: ``None``, ``"noam"`` (the paper's warmup then inverse square root), or
                a spec of ``bigmodel.engine.schedules`` such as ``{"name": "cosine",
                "warmup_steps": 100}`` (multiplies the optimizer's rate, per optimizer step).
            warmup_steps: for ``"noam"`` (the paper: 4000).
            grad_clip_norm: clip the global gradient norm.
            keras_options: ``loss_weights``, ``run_eagerly``, ``jit_compile``, ... accepted for
                compatibility, without effect.

        Raises:
            UnknownNameError: unknown loss, metric, optimizer or schedule name.
            ConfigError: label_smoothing outside [0, 1).
        """
        known_options = {"loss_weights", "weighted_metrics", "run_eagerly", "steps_per_execution",
                         "jit_compile", "auto_scale_loss"}
        unknown = set(keras_options) - known_options
        if unknown:
            raise ConfigError(f"compile: unknown arguments {sorted(unknown)}")
        if isinstance(loss, str) and loss not in _LOSSES:
            raise UnknownNameError(f"compile: unknown loss {loss!r} for a sequence model; known: "
                                   f"{', '.join(_LOSSES)} (or a function)")
        if not (isinstance(loss, str) or callable(loss)):
            raise InputTypeError(f"compile: loss must be a name or a function; received {loss!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"compile: label_smoothing must be in [0, 1); received {label_smoothing}")
        metric_names = [metrics] if isinstance(metrics, str) else list(metrics or [])
        for name in metric_names:
            if name not in ("accuracy", "acc", "token_accuracy", "sequence_accuracy"):
                raise UnknownNameError(f"compile: unknown metric {name!r} for a sequence model; "
                                       "known: accuracy, token_accuracy, sequence_accuracy")
        if isinstance(lr_schedule, dict):
            probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
            build_scheduler(probe, lr_schedule, total_steps=100)  # the engine's own checks
        elif lr_schedule not in (None, "noam"):
            raise UnknownNameError(f"compile: unknown lr_schedule {lr_schedule!r}; known: noam, "
                                   "or an engine schedule spec (dict)")
        if isinstance(optimizer, str):
            kwargs: dict[str, Any] = {}
            if lr_schedule == "noam" and optimizer.lower() in ("adam", "adamw"):
                kwargs = {"beta_2": 0.98, "epsilon": 1e-9}
            if lr_schedule == "noam":
                kwargs["learning_rate"] = 1.0 if learning_rate is None else learning_rate
            elif learning_rate is not None:
                kwargs["learning_rate"] = learning_rate
            name = optimizer.lower()
            optimizers.get(name)  # unknown names fail here, with the known list
            optimizer = type(optimizers.get(name))(**kwargs)
        self._compiled = {"optimizer": optimizer, "loss": loss, "metrics": metric_names,
                          "label_smoothing": float(label_smoothing), "lr_schedule": lr_schedule,
                          "warmup_steps": int(warmup_steps), "grad_clip_norm": grad_clip_norm}
        self._trainer = None

    # ------------------------------------------------------------------------------ data
    def _labels(self, y: Any, what: str) -> torch.Tensor:
        if isinstance(y, (np.ndarray, torch.Tensor)) and y.ndim == 3:  # one-hot (N, T, V)
            y = torch.as_tensor(np.asarray(y)) if isinstance(y, np.ndarray) else y
            padding = y.sum(-1) == 0
            y = y.argmax(-1).masked_fill(padding, self.pad_id)
        return as_token_ids(y, type(self).__name__, what)

    def _prepare(self, x: Any, y: Any, what: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(source, decoder_input, targets)`` with teacher forcing, checked."""
        owner = type(self).__name__
        if y is None:
            raise DataError(f"{owner}.{what}: the targets (y / train_labels) are missing")
        if isinstance(x, tuple) and len(x) == 2:
            source = as_token_ids(x[0], owner, f"{what} source")
            decoder_input = as_token_ids(x[1], owner, f"{what} decoder input")
            targets = self._labels(y, f"{what} labels")
        else:
            source = as_token_ids(x, owner, f"{what} source")
            targets = self._labels(y, f"{what} labels")
            if not bool((targets == self.eos_id).any()):
                targets = _append_eos(targets, self.eos_id, self.pad_id)
            if bool((targets[:, 0] == self.bos_id).all()):
                decoder_input, targets = targets[:, :-1], targets[:, 1:]
            else:
                decoder_input, targets = teacher_forcing(targets, self.bos_id)
        if not (len(source) == len(decoder_input) == len(targets)):
            raise DataError(f"{owner}.{what}: x and y must have the same number of samples; "
                            f"received {len(source)} sources and {len(targets)} targets")
        if decoder_input.shape != targets.shape:
            raise DataError(f"{owner}.{what}: decoder inputs {tuple(decoder_input.shape)} and "
                            f"targets {tuple(targets.shape)} must have the same shape")
        if len(source) == 0:
            raise DataError(f"{owner}.{what}: received empty data (0 samples)")
        for name, ids in (("source", source), ("targets", targets)):
            if ids.shape[1] > self.max_length:
                raise DataError(f"{owner}.{what}: {name} have length {ids.shape[1]}, longer than "
                                f"max_length={self.max_length}")
        if not self.built:
            self._build_from(source, torch.cat([decoder_input, targets], dim=1))
        check_token_ids(source, self.input_vocab_size, owner, f"{what} source")
        check_token_ids(targets, self.target_vocab_size, owner, f"{what} labels")
        check_token_ids(decoder_input, self.target_vocab_size, owner, f"{what} decoder input")
        return source, decoder_input, targets

    def _build_from(self, source: torch.Tensor, target: torch.Tensor) -> None:
        """Vocabulary sizes from the largest ids seen (the special ids always fit)."""
        special = max(self.pad_id, self.bos_id, self.eos_id) + 1
        for name, ids in (("source", source), ("target", target)):
            if int(ids.min()) < 0:
                raise DataError(f"{type(self).__name__}: {name} contains negative token ids")
        input_vocab = max(int(source.max()) + 1, special)
        target_vocab = max(int(target.max()) + 1, special)
        if getattr(self, "share_embeddings", False):
            input_vocab = target_vocab = max(input_vocab, target_vocab)
        self.build(input_vocab, target_vocab)

    def _batches(self, source, decoder_input, targets, batch_size, shuffle, bucket, seed):
        return seq2seq_batches(source, decoder_input, targets, batch_size, shuffle=shuffle,
                               seed=seed, pad_id=self.pad_id, bucket=bucket)

    # ------------------------------------------------------------------------------ training
    def _require_compiled(self, what: str) -> dict[str, Any]:
        if self._compiled is None:
            raise ConfigError(f"You must call compile() before {what}() on {type(self).__name__}")
        return self._compiled

    def _get_trainer(self) -> Any:
        if self._trainer is not None:
            return self._trainer
        config = self._compiled
        optimizer = config["optimizer"]
        if isinstance(optimizer, optimizers.Optimizer):
            optimizer = optimizer.build(self.parameters()).torch_optimizer
        loss, pad, smoothing = config["loss"], self.pad_id, config["label_smoothing"]
        if isinstance(loss, str):
            def loss_fn(logits, targets):
                return masked_cross_entropy(logits, targets, pad, smoothing)
        else:
            loss_fn = loss
        metrics = [SequenceExactMatch(pad) if name == "sequence_accuracy"
                   else MaskedTokenAccuracy(pad, name) for name in config["metrics"]]
        scheduler = config["lr_schedule"] if isinstance(config["lr_schedule"], dict) else None
        if config["lr_schedule"] == "noam":
            scheduler = {"name": "noam", "d_model": self.d_model,
                         "warmup_steps": config["warmup_steps"]}
        self._trainer = Trainer(self, loss=loss_fn, optimizer=optimizer, metrics=metrics,
                                scheduler=scheduler, grad_clip_norm=config["grad_clip_norm"],
                                device="auto")
        return self._trainer

    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: Any = "auto", callbacks: Any = None, validation_split: float = 0.0,
            validation_data: Any = None, shuffle: bool = True, initial_epoch: int = 0,
            bucket_by_length: bool = True, seed: int | None = None) -> Any:
        """Train with teacher forcing (see the module docstring for the data forms).

        Args:
            bucket_by_length: batch similar lengths together and trim padding per batch.
            seed: seeds the batch order.
            Others: as in Keras.

        Returns:
            The engine's ``History`` (``history.history["loss"]`` per epoch).

        Raises:
            ConfigError: not compiled; DataError: bad, empty or out-of-vocabulary data.
        """
        self._require_compiled("fit")
        batch_size = 32 if batch_size is None else int(batch_size)
        source, decoder_input, targets = self._prepare(x, y, "fit")
        val = None
        if validation_data is not None:
            val = self._batches(*self._prepare(validation_data[0], validation_data[1],
                                               "validation_data"), batch_size, False, True, seed)
        elif validation_split:
            if not 0.0 < validation_split < 1.0:
                raise ConfigError(f"validation_split must be in [0, 1); received {validation_split}")
            split = int(len(source) * (1.0 - validation_split))
            if split in (0, len(source)):
                raise DataError(f"validation_split={validation_split} leaves an empty training or "
                                f"validation set for {len(source)} samples")
            val = self._batches(source[split:], decoder_input[split:], targets[split:],
                                batch_size, False, True, seed)
            source, decoder_input, targets = source[:split], decoder_input[:split], targets[:split]
        train = self._batches(source, decoder_input, targets, batch_size, shuffle,
                              bucket_by_length, seed)
        trainer = self._get_trainer()
        trainer.verbose = 1 if verbose == "auto" else int(verbose)
        return trainer.fit(train, val=val, epochs=epochs, batch_size=batch_size,
                           callbacks=list(callbacks or []), initial_epoch=initial_epoch)

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None,
                 verbose: Any = "auto", return_dict: bool = False) -> Any:
        """Teacher-forced loss and metrics (padding ignored): a float, a list, or a dict."""
        self._require_compiled("evaluate")
        batch_size = 32 if batch_size is None else int(batch_size)
        data = self._batches(*self._prepare(x, y, "evaluate"), batch_size, False, True, None)
        logs = self._get_trainer().evaluate(data, batch_size=batch_size,
                                            verbose=1 if verbose == "auto" else int(verbose))
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto",
                max_new_tokens: int | None = None, beam_size: int = 1) -> np.ndarray:
        """Decode ``x`` (sources): ``(N, L)`` int64 ids right-padded with ``pad_id``, EOS removed.

        Given a pair ``(source, decoder_input)``, returns the teacher-forced next-token
        probabilities ``(N, T, vocab)`` instead, as a Keras model would.
        """
        batch_size = 32 if batch_size is None else int(batch_size)
        if isinstance(x, tuple) and len(x) == 2:
            owner = type(self).__name__
            source = as_token_ids(x[0], owner, "predict source")
            decoder_input = as_token_ids(x[1], owner, "predict decoder input")
            was_training = self.training
            self.eval()
            try:
                with torch.no_grad():
                    parts = [self((source[i: i + batch_size], decoder_input[i: i + batch_size]))
                             .softmax(-1).cpu() for i in range(0, len(source), batch_size)]
            finally:
                self.train(was_training)
            return torch.cat(parts).numpy()
        source = as_token_ids(x, type(self).__name__, "predict source")
        rows: list[list[int]] = []
        for start in range(0, len(source), batch_size):
            rows.extend(self.translate(source[start: start + batch_size],
                                       max_new_tokens=max_new_tokens, beam_size=beam_size))
        width = max(1, max(len(r) for r in rows))
        out = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        for index, row in enumerate(rows):
            out[index, : len(row)] = row
        return out


def _append_eos(targets: torch.Tensor, eos_id: int, pad_id: int) -> torch.Tensor:
    """One EOS after the last non-padding token of every row (one column wider)."""
    out = torch.cat([targets, torch.full_like(targets[:, :1], pad_id)], dim=1)
    lengths = (targets != pad_id).sum(dim=1)
    out[torch.arange(len(out)), lengths] = eos_id
    return out
