"""Recipe schema of ``bigmodel finetune``: a training recipe plus a ``finetune`` section.

Everything of :mod:`bigmodel.recipes.schema` applies (``train``, ``output``, ``--set`` overrides, errors
naming the key path); ``task`` is ``finetune``; ``model`` is not used (the model comes from the run directory or pretrained
name given on the command line). Added keys::

    data:
      classes: [5, 6, 7, 8, 9]    # image data: keep these classes, relabelled 0..k-1 in this order
      per_class: 100              # labelled training examples per class (seeded choice); null = all
    finetune:
      head: auto                  # auto: a new head when the data's classes differ from the
                                  #   model's (or data.classes is set); new: always; keep: never
      freeze: [conv1, conv2]      # globs of modules/parameters frozen for the whole run
      norm_eval: true             # frozen BatchNorm layers stay in inference mode
      layer_decay: null           # discriminative LRs: train.lr for the head, x decay per block down
      lr_groups: []               # or explicit [{pattern: "encoder.*", lr: 1e-5}, ...]
      gradual_unfreezing: null    # {every: 1, initial: 1, blocks: null}: head first, one block more
                                  #   per stage (blocks default to the model's layer blocks)
      lora: null                  # {target: ["*.self_attn.in_proj"], rank: 8, alpha: 16,
                                  #  dropout: 0.0}: train adapters only (+ the head); the run
                                  #  saves adapter/ alone and the merged model
"""

from __future__ import annotations

import os
import typing

from pydantic import Field, model_validator

from bigmodel.errors import ConfigError
from bigmodel.recipes.keys import apply_schema_override, validate_schema
from bigmodel.recipes.schema import DataSection, Recipe, RecipeSection, read_recipe_yaml

__all__ = ["FinetuneRecipe", "FinetuneSection", "load_finetune_recipe"]


class FinetuneData(DataSection):
    classes: list[int] | None = Field(
        default=None,
        description="Image data: keep these classes (ids 0..9), relabelled 0..k-1 in this order; "
                    "null: all classes.")
    per_class: int | None = Field(
        default=None, ge=1,
        description="Labelled training examples per class (seeded choice); null: all.")

    @model_validator(mode="after")
    def _class_options(self) -> FinetuneData:
        if self.classes is not None:
            if self.name not in ("fashion_mnist", "mnist"):
                raise ValueError(f"data.classes selects classes of an image data set; data.name is "
                                 f"'{self.name}' (use data.categories for fortunes)")
            if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes) or any(
                    not 0 <= c <= 9 for c in self.classes):
                raise ValueError(f"data.classes must list at least 2 distinct class ids in [0, 9]; "
                                 f"received {self.classes}")
        return self


class LRGroup(RecipeSection):
    pattern: str = Field(description="Glob of the parameter names in this group.")
    lr: float = Field(gt=0.0, description="Their learning rate.")


class GradualUnfreezingSpec(RecipeSection):
    every: int = Field(
        default=1, ge=1,
        description="Epochs per stage: at the start of each later stage the next block down is "
                    "unfrozen.")
    initial: int = Field(
        default=1, ge=1,
        description="Blocks trainable from the first epoch, counted from the top (the head).")
    blocks: list[str] | None = Field(
        default=None,
        description="Module names of the blocks, top first; null: the model's own layer blocks.")


class LoraSpec(RecipeSection):
    target: list[str] = Field(
        min_length=1,
        description="Globs of the linear modules that get adapters, e.g. ['*.self_attn.in_proj'].")
    rank: int = Field(default=8, ge=1, description="Adapter rank r.")
    alpha: float = Field(
        default=16.0, gt=0.0,
        description="Scaling alpha: the adapter's update is scaled by alpha / rank.")
    dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Dropout on the adapter's input.")


class FinetuneSection(RecipeSection):
    head: typing.Literal["auto", "new", "keep"] = Field(
        default="auto",
        description="auto: a new head when the data's classes differ from the model's (or "
                    "data.classes is set); new: always; keep: never.")
    freeze: list[str] = Field(
        default_factory=list, description="Globs of modules / parameters frozen for the whole "
                                          "run.")
    norm_eval: bool = Field(
        default=True, description="Frozen BatchNorm layers stay in inference mode.")
    layer_decay: float | None = Field(
        default=None, gt=0.0, le=1.0,
        description="Discriminative learning rates: train.lr for the head, times this factor per "
                    "block further down; null: one rate.")
    lr_groups: list[LRGroup] = Field(
        default_factory=list,
        description="Explicit learning rates per parameter glob: [{pattern: 'encoder.*', lr: "
                    "1e-5}, ...]; not with layer_decay.")
    gradual_unfreezing: GradualUnfreezingSpec | None = Field(
        default=None,
        description="Unfreeze gradually: the head first, one block more per stage; null: off.")
    lora: LoraSpec | None = Field(
        default=None,
        description="Train LoRA adapters only (and the head); the run saves adapter/ alone and "
                    "the merged model; null: off.")

    @model_validator(mode="after")
    def _compatible(self) -> FinetuneSection:
        if self.layer_decay is not None and self.lr_groups:
            raise ValueError("finetune.layer_decay and finetune.lr_groups both set learning rates; "
                             "keep one")
        if self.lora is not None and (self.gradual_unfreezing is not None or self.freeze):
            raise ValueError("finetune.lora freezes everything but the adapters and the head; "
                             "finetune.freeze / finetune.gradual_unfreezing do not apply with it")
        return self


class FinetuneRecipe(Recipe):
    task: typing.Literal["finetune"] = Field(default="finetune", description="Always finetune.")
    FIXED_TASK: typing.ClassVar[str | None] = "finetune"
    data: FinetuneData = Field(
        default_factory=FinetuneData,
        description="Which data, and how it is prepared (plus classes / per_class).")
    finetune: FinetuneSection = Field(
        default_factory=FinetuneSection, description="How the source model is adapted.")


def finetune_recipe_from_dict(raw: typing.Any, overrides: typing.Sequence[str] = (),
                              source: str = "<recipe>") -> FinetuneRecipe:
    """Apply ``--set`` overrides and validate.

    Raises:
        ConfigError: unknown keys, wrong types or values (each naming its key path).
    """
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a recipe must be a mapping of sections; received "
                          f"{type(raw).__name__}")
    for text in overrides:
        apply_schema_override(raw, FinetuneRecipe, text)
    return validate_schema(FinetuneRecipe, raw, source)


def load_finetune_recipe(path: str | os.PathLike,
                         overrides: typing.Sequence[str] = ()) -> FinetuneRecipe:
    """Read, override and validate a fine-tuning recipe file (see the module docstring)."""
    return finetune_recipe_from_dict(read_recipe_yaml(path), overrides, str(path))
