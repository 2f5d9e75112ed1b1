"""Recipe schema: a YAML file that names every component of a training run.

A recipe has a ``description``, a ``task`` and four sections; every key is checked (an unknown key or a value of the wrong type is a
:class:`~bigmodel.errors.ConfigError` naming the key path, e.g. ``train.epochs``)::

    task: image_classification   # image_classification | text_classification |
                                 # speech_classification | seq2seq | language_model | finetune;
                                 # absent: inferred from data.name (and model.name: a fortunes
                                 # recipe with the gpt model is a language model), see infer_task
    model:            # a registered model and overrides of its factory's defaults
      name: seed-cnn
      overrides: {dropout_rate: 0.25}
    data:
      name: fashion_mnist          # fashion_mnist | mnist | fortunes (text) | numbers_to_words |
                                   # dates_to_iso | reversal (sequence tasks; see the DataSection)
                                   # | speech_digits | speech_folder (spoken words, SpeechSpec)
      path: null                   # directory of IDX files; null = the loader's default search
      train_subset: null           # use only N training images (seeded random choice)
      test_subset: null            # use only the first N test images
      validation_split: 0.0        # last fraction of the training set held out (Keras semantics)
      speech: null                 # speech_digits / speech_folder options (SpeechSpec)
      augment:                     # batch augmentation from bigmodel.nn.augment, training only
        - {name: RandomTranslation, args: {height_factor: 0.1, width_factor: 0.1}}
    train:
      epochs: 5
      batch_size: 32
      optimizer: adam              # adam | adamw | sgd | rmsprop (Keras epsilon 1e-7, rho 0.9)
      lr: 0.001
      momentum: 0.0                # sgd and rmsprop (Keras default 0)
      weight_decay: 0.0            # the torch optimizer's (decoupled for adamw only)
      l2: 0.0                      # Keras-style kernel penalty l2 * sum(w**2) on conv/linear weights
      grad_clip_norm: null
      scheduler: null              # {name: constant | cosine | step | noam, args: {...}}, per step
      seed: 0
      precision: fp32              # fp32 | bf16 | fp16 (fp16: CUDA only, with a gradient scaler)
      device: auto
      channels_last: false
      strategy: single             # single | ddp | fsdp | hybrid (under torchrun / --nproc N)
      activation_checkpointing: false  # recompute each block's activations in backward
      compile: false               # torch.compile each block (inductor)
      grad_accum_steps: 1          # micro-batches per optimizer step; batch_size is global
      checkpoint_every: null       # also checkpoint within epochs: N optimizer steps (500) or a
                                   # duration ('30s', '10min'); resume with --resume RUN_DIR
      keep_checkpoints: 2          # newest checkpoints kept in <run>/checkpoints
      early_stopping: null         # {monitor: val_loss, patience: 3, min_delta: 0,
                                   #  restore_best_weights: true}  (these are its defaults)
    output:
      root: runs                   # run directories are created under this folder
      name: null                   # run name; null = <recipe file stem>-<timestamp>

``load_recipe(path, overrides=["train.epochs=3"])`` applies ``--set`` style overrides (values are
parsed as YAML, so ``3`` is an int, ``3e-4`` a float, ``null`` None) before validation. The option
sections nested in ``data`` and ``train`` live in :mod:`bigmodel.recipes.sections`; every key with
its type, default and meaning: ``docs/recipes.md`` (generated from the fields' descriptions by
:mod:`bigmodel.recipes.reference`).
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from bigmodel.engine.optimizers import OPTIMIZERS as ENGINE_OPTIMIZERS
from bigmodel.errors import ConfigError
from bigmodel.recipes.keys import (  # noqa: F401 - parse_yaml/parse_override: public here too
    apply_schema_override,
    parse_override,
    parse_yaml,
    read_yaml_file,
    suggest,
    validate_schema,
)
from bigmodel.recipes.sections import (
    AugmentSpec,
    EarlyStoppingSpec,
    RecipeSection,
    SchedulerSpec,
    SkipgramSpec,
    SpeechSpec,
)
from bigmodel.recipes.task_types import TASK_DATA, TASKS, infer_task
from bigmodel.utils.io import atomic_write_text

# The names engine.optimizers.create_optimizer builds (one optimizer-by-name for the house).
OPTIMIZERS = tuple(sorted(ENGINE_OPTIMIZERS))


class ModelSection(RecipeSection):
    """A model from the registry (``bigmodel.models.list_models()``) and overrides of its defaults."""

    name: str = Field(
        default="seed-cnn", description="Registered model name (bigmodel.models.list_models()).")
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Arguments of the model's factory that replace its defaults, e.g. "
                    "{dropout_rate: 0.25}; unknown names are refused.")

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str) -> str:
        from bigmodel.models import is_model, list_models

        if not is_model(name):
            raise ValueError(f"unknown model '{name}'{suggest(name, list_models())}; "
                             f"known models: {', '.join(list_models())}")
        return name

    @model_validator(mode="after")
    def _known_overrides(self) -> ModelSection:
        from bigmodel.models import check_overrides, model_defaults

        accepted = model_defaults(self.name)
        for key in self.overrides:
            if key not in accepted:
                raise ValueError(f"model.overrides.{key}: unknown key"
                                 f"{suggest(key, accepted, 'model.overrides.')}; model "
                                 f"'{self.name}' accepts {', '.join(accepted)}")
            try:
                check_overrides(self.name, {key: self.overrides[key]})
            except ConfigError as exc:
                raise ValueError(f"model.overrides.{key}: {exc}") from None
        return self


class DataSection(RecipeSection):
    # numbers_to_words / dates_to_iso / reversal: generated sequence tasks (bigmodel.data.seq2seq);
    # train_subset / test_subset are then their numbers of training / held-out test examples.
    # speech_digits / speech_folder: spoken words (bigmodel.data.speech); options in `speech`.
    name: Literal["fashion_mnist", "mnist", "fortunes", "numbers_to_words", "dates_to_iso",
                  "reversal", "speech_digits", "speech_folder"] = Field(
        default="fashion_mnist",
        description="Data set: fashion_mnist | mnist (images); fortunes (text); numbers_to_words "
                    "| dates_to_iso | reversal (generated sequence tasks); speech_digits | "
                    "speech_folder (spoken words).")
    path: str | None = Field(
        default=None,
        description="Where the data lives (IDX folder, speech cache or clip folder); null: the "
                    "loader's default search.")
    train_subset: int | None = Field(
        default=None, ge=1,
        description="Use only N training examples (seeded random choice); sequence tasks: the "
                    "number of generated training examples.")
    test_subset: int | None = Field(
        default=None, ge=1,
        description="Use only the first N test examples; sequence tasks: the number of held-out "
                    "test examples.")
    validation_split: float = Field(
        default=0.0, ge=0.0, lt=1.0,
        description="Last fraction of the training set held out for validation (Keras semantics).")
    augment: list[AugmentSpec] = Field(
        default_factory=list,
        description="Batch augmentations applied in order, training only (image data).")
    # fortunes (bigmodel.data.fortunes) only: category files (null: its DEFAULT_CATEGORIES), tokens
    # kept per text, and how often a word must occur in the training texts to get its own id.
    categories: list[str] | None = Field(
        default=None,
        description="fortunes: the category files, one class each; null: the default categories.")
    max_length: int | None = Field(
        default=None, ge=1,
        description="fortunes: tokens kept per text (longer texts are cut); null: no cut.")
    min_count: int = Field(
        default=1, ge=1,
        description="fortunes with tokenizer word: occurrences in the training texts a word needs "
                    "to get its own id.")
    # fortunes: "word" (a word vocabulary built on the training texts, min_count applies) or the
    # name of pretrained embeddings (bigmodel.models.word_vectors) whose tokenizer indexes them.
    tokenizer: str = Field(
        default="word",
        description="fortunes: word (a vocabulary built on the training texts) or the name of "
                    "pretrained embeddings whose tokenizer indexes them.")
    # fortunes with tokenizer "word": start the model's embedding table from skip-gram vectors
    skipgram: SkipgramSpec | None = Field(
        default=None,
        description="fortunes with tokenizer word: start the embedding table from skip-gram "
                    "vectors trained on the unlabelled corpus; null: no vectors.")
    speech: SpeechSpec | None = Field(
        default=None,
        description="Options of the speech data sources (defaults filled in for speech_digits / "
                    "speech_folder).")

    @model_validator(mode="after")
    def _text_options(self) -> DataSection:
        speech = self.name in ("speech_digits", "speech_folder")
        if self.speech is not None and not speech:
            raise ValueError(f"data.speech applies to the speech data sources (speech_digits, "
                             f"speech_folder) only; data.name is '{self.name}'")
        if speech and self.speech is None:
            self.speech = SpeechSpec()
        if speech:
            only = (("voices", "renditions", "test_voices", "seed") if self.name == "speech_folder"
                    else ("manifest", "long_clips", "bad_clips"))
            defaults = SpeechSpec()
            given = [k for k in only if getattr(self.speech, k) != getattr(defaults, k)]
            if given:
                raise ValueError(f"data.speech.{given[0]} does not apply to data.name "
                                 f"'{self.name}' (it ignores {', '.join(only)})")
        if self.name != "fortunes" and (self.categories is not None or self.max_length is not None
                                        or self.min_count != 1 or self.tokenizer != "word"):
            raise ValueError(f"data.categories / data.max_length / data.min_count / data.tokenizer "
                             f"apply to the 'fortunes' text data set only; data.name is "
                             f"'{self.name}'")
        if self.skipgram is not None and (self.name != "fortunes" or self.tokenizer != "word"):
            raise ValueError(f"data.skipgram needs data.name 'fortunes' with data.tokenizer "
                             f"'word' (vectors for a word vocabulary); data.name is "
                             f"'{self.name}', data.tokenizer '{self.tokenizer}'")
        if self.tokenizer != "word":
            from bigmodel.recipes.text_data import text_tokenizers

            known = text_tokenizers()
            if self.tokenizer not in known:
                raise ValueError(f"data.tokenizer: unknown tokenizer '{self.tokenizer}'"
                                 f"{suggest(self.tokenizer, known)}; known: {', '.join(known)}")
            if self.min_count != 1:
                raise ValueError(f"data.min_count applies to data.tokenizer 'word' only (a "
                                 f"vocabulary built on the training texts); data.tokenizer "
                                 f"'{self.tokenizer}' has a fixed vocabulary")
        if self.name not in ("fashion_mnist", "mnist") and self.augment:
            raise ValueError(f"data.augment holds image augmentations; data.name '{self.name}' "
                             "is not an image data set")
        return self


class TrainSection(RecipeSection):
    epochs: int = Field(default=5, ge=1, description="Passes over the training set.")
    batch_size: int = Field(
        default=32, ge=1,
        description="Examples per optimizer step (the global batch: across processes and "
                    "accumulation steps).")
    optimizer: str = Field(
        default="adam",
        description="adam | adamw | sgd | rmsprop, with Keras's defaults (epsilon 1e-7, rho 0.9).")
    lr: float = Field(
        default=1e-3, gt=0.0, description="Learning rate (the peak rate under a scheduler).")
    momentum: float = Field(default=0.0, ge=0.0, lt=1.0, description="Momentum of sgd and rmsprop.")
    weight_decay: float = Field(
        default=0.0, ge=0.0,
        description="The torch optimizer's weight decay (decoupled for adamw only).")
    l2: float = Field(
        default=0.0, ge=0.0,
        description="Keras-style kernel penalty l2 * sum(w**2) on conv / linear weights, added to "
                    "the loss.")
    grad_clip_norm: float | None = Field(
        default=None, gt=0.0,
        description="Clip the gradients' global L2 norm to this value; null: no clipping.")
    scheduler: SchedulerSpec | None = Field(
        default=None,
        description="Learning-rate schedule, stepped once per optimizer step; null: constant lr.")
    seed: int | None = Field(
        default=0, description="Seed of initialization, shuffling and dropout; null: not seeded.")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        default="fp32",
        description="fp32 | bf16 | fp16 autocast (fp16: CUDA only, with a gradient scaler).")
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N.")
    channels_last: bool = Field(
        default=False, description="Image models: train in the channels-last memory format.")
    early_stopping: EarlyStoppingSpec | None = Field(
        default=None,
        description="Stop when the monitored metric stops improving; null: run every epoch.")
    strategy: Literal["single", "ddp", "fsdp", "hybrid"] = Field(
        default="single",
        description="single | ddp | fsdp | hybrid (several processes under torchrun / --nproc N).")
    activation_checkpointing: bool = Field(
        default=False,
        description="Recompute each block's activations in backward (less memory, more time).")
    compile: bool = Field(default=False, description="torch.compile each block (inductor).")
    grad_accum_steps: int = Field(
        default=1, ge=1,
        description="Micro-batches per optimizer step (batch_size stays the global batch).")
    checkpoint_every: int | str | None = Field(
        default=None,
        description="Also checkpoint within epochs: every N optimizer steps (e.g. 500) or a "
                    "duration ('30s', '10min'); null: at epoch ends only.")
    keep_checkpoints: int = Field(
        default=2, ge=1, description="Newest checkpoints kept in RUN_DIR/checkpoints.")

    @field_validator("checkpoint_every")
    @classmethod
    def _checkpoint_interval(cls, every: int | str | None) -> int | str | None:
        from bigmodel.engine.step_checkpoints import parse_every

        try:
            parse_every(every)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return every

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, name: str) -> str:
        if name.lower() not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer '{name}'{suggest(name, OPTIMIZERS)}; "
                             f"known: {', '.join(OPTIMIZERS)}")
        return name.lower()


class OutputSection(RecipeSection):
    root: str = Field(default="runs", description="Folder under which run directories are created.")
    name: str | None = Field(
        default=None,
        description="Run directory name (a plain folder name); null: <recipe file "
                    "stem>-<timestamp>.")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str | None) -> str | None:
        if name is not None and (not name or "/" in name or "\\" in name or name in (".", "..")):
            raise ValueError(f"run name must be a plain folder name; received {name!r}")
        return name


class Recipe(RecipeSection):
    """A complete training run. ``Recipe()`` is the seed program's defaults."""

    description: str = Field(
        default="", description="Free text describing the recipe (shown in the run's report).")
    task: Literal[TASKS] = Field(
        default="image_classification",
        description="Task type: image_classification | text_classification | "
                    "speech_classification | seq2seq | language_model | finetune; absent: "
                    "inferred from data.name (and model.name).")
    FIXED_TASK: ClassVar[str | None] = None  # the one task a recipe class allows (finetune)
    model: ModelSection = Field(default_factory=ModelSection, description="Which model to build.")
    data: DataSection = Field(
        default_factory=DataSection, description="Which data, and how it is prepared.")
    train: TrainSection = Field(default_factory=TrainSection, description="How to train.")
    output: OutputSection = Field(
        default_factory=OutputSection, description="Where the run directory goes.")

    @model_validator(mode="before")
    @classmethod
    def _infer_task(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "task" not in raw:
            data, model = raw.get("data"), raw.get("model")
            data_name = data.get("name", "fashion_mnist") if isinstance(data, dict) else "fashion_mnist"
            model_name = model.get("name", "seed-cnn") if isinstance(model, dict) else "seed-cnn"
            raw = {**raw, "task": cls.FIXED_TASK or infer_task(str(data_name), str(model_name))}
        return raw

    @model_validator(mode="after")
    def _task_fits_the_data(self) -> Recipe:
        if self.task == "finetune" != self.FIXED_TASK:
            raise ValueError("task 'finetune' is run by 'bigmodel finetune SOURCE RECIPE' (a "
                             "recipe with a 'finetune' section)")
        if self.data.name not in TASK_DATA[self.task]:
            raise ValueError(f"task '{self.task}' reads data.name {' | '.join(TASK_DATA[self.task])}"
                             f"; received data.name '{self.data.name}'")
        return self

    @model_validator(mode="after")
    def _skipgram_fills_the_table(self) -> Recipe:
        spec, overrides = self.data.skipgram, self.model.overrides
        if spec is None:
            return self
        from bigmodel.models.registry import model_defaults

        accepted = model_defaults(self.model.name)
        if "embeddings" not in accepted or "embedding_dim" not in accepted:
            raise ValueError(f"data.skipgram: model '{self.model.name}' takes no word vectors "
                             "(no 'embeddings' / 'embedding_dim' argument); use text-rcnn")
        source = overrides.get("embeddings", accepted["embeddings"])
        if source is not None:
            raise ValueError(f"data.skipgram trains the embedding table; model "
                             f"'{self.model.name}' would start it from embeddings {source!r}: "
                             "keep one (model.overrides.embeddings: null)")
        dim = overrides.get("embedding_dim")
        if dim is not None and dim != spec.dim:
            raise ValueError(f"data.skipgram.dim ({spec.dim}) differs from model.overrides."
                             f"embedding_dim ({dim}): the vectors are the embedding table")
        return self

    @model_validator(mode="after")
    def _monitor_needs_validation(self) -> Recipe:
        stopping = self.train.early_stopping
        if stopping and stopping.monitor.startswith("val_") and self.data.validation_split == 0.0:
            raise ValueError(f"train.early_stopping.monitor is '{stopping.monitor}', which needs "
                             "validation data: set data.validation_split > 0")
        return self


# -- loading, overrides, dumping ---------------------------------------------------------------------


def validate_recipe(raw: Any, source: str = "<recipe>") -> Recipe:
    """Validate a parsed recipe mapping.

    Raises:
        ConfigError: naming each key that is unknown, missing or of the wrong type/value.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a recipe must be a mapping of sections (model, data, train, "
                          f"output); received {type(raw).__name__}")
    return validate_schema(Recipe, raw, source)


def apply_override(raw: dict, text: str) -> None:
    """Apply one ``--set`` override to a raw recipe mapping, checking the key path against the schema.

    Raises:
        ConfigError: the key path names no recipe key (names it, suggests the closest), indexes a
            list out of range, or descends into a value that is not a section.
    """
    apply_schema_override(raw, Recipe, text)


def recipe_from_dict(raw: Any, overrides: typing.Sequence[str] = (),
                     source: str = "<recipe>") -> Recipe:
    """Apply ``overrides`` (``"key.path=value"``) to a raw mapping and validate it."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a recipe must be a mapping of sections (model, data, train, "
                          f"output); received {type(raw).__name__}")
    for text in overrides:
        apply_override(raw, text)
    return validate_recipe(raw, source)


def load_recipe(path: str | os.PathLike, overrides: typing.Sequence[str] = ()) -> Recipe:
    """Read, override and validate a recipe file.

    Args:
        path: a YAML recipe.
        overrides: ``--set`` strings such as ``"train.epochs=3"``, applied in order.

    Raises:
        ConfigError: the file is missing or not YAML, an override names an unknown key, or the
            recipe does not validate (each message names the key path).
    """
    return recipe_from_dict(read_recipe_yaml(path), overrides, source=str(path))


def read_recipe_yaml(path: str | os.PathLike) -> Any:
    """The parsed YAML of a recipe file (not yet validated).

    Raises:
        ConfigError: the file is missing, unreadable or not YAML (names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Recipe file not found: {path}")
    return read_yaml_file(path)  # bounded: size, alias expansion, depth


def dump_recipe(recipe: Recipe) -> str:
    """The recipe as YAML (every key, defaults included); ``load`` of it gives an equal recipe."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False, default_flow_style=False)


def save_recipe(recipe: Recipe, path: str | os.PathLike) -> None:
    """Write the resolved recipe atomically."""
    atomic_write_text(path, dump_recipe(recipe))
