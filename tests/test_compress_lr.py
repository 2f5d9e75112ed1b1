"""The learning rate of compression's fine-tuning (:func:`bigmodel.recipes.compress.fine_tune_lr`):
the recipe's, except for a merged LoRA run whose recipe rate was for the adapters; ``--lr`` wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from bigmodel.errors import ConfigError
from bigmodel.recipes.compress import (
    FULL_MODEL_LR,
    CompressOptions,
    check_options,
    fine_tune_lr,
)
from bigmodel.recipes.finetune_schema import load_finetune_recipe
from bigmodel.recipes.schema import load_recipe

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
LORA = CONFIGS / "finetune_fortunes_minilm_lora.yaml"


def test_a_lora_run_fine_tunes_at_a_full_model_rate_not_its_adapter_rate():
    recipe = load_finetune_recipe(LORA, ["train.lr=0.003"])
    lr, source = fine_tune_lr(recipe)
    assert FULL_MODEL_LR == 1e-4 and lr == FULL_MODEL_LR
    assert "LoRA" in source and "0.003" in source  # says why, naming the rate it did not use


def test_a_lora_recipe_rate_already_below_the_full_model_rate_is_kept():
    recipe = load_finetune_recipe(LORA, ["train.lr=2e-5"])
    assert fine_tune_lr(recipe) == (2e-5, "the recipe's train.lr")


def test_full_fine_tuning_and_training_runs_keep_their_recipe_rate():
    full = load_finetune_recipe(CONFIGS / "finetune_fortunes_minilm_lora.yaml",
                                ["train.lr=0.003", "finetune.lora=null"])
    assert fine_tune_lr(full) == (0.003, "the recipe's train.lr")
    cnn = load_finetune_recipe(CONFIGS / "finetune_fashion_cnn.yaml", ["train.lr=0.02"])
    assert fine_tune_lr(cnn) == (0.02, "the recipe's train.lr")
    trained = load_recipe(CONFIGS / "fashion_cnn.yaml", ["train.lr=0.005"])
    assert fine_tune_lr(trained) == (0.005, "the recipe's train.lr")


def test_an_explicit_lr_wins_over_every_default():
    lora = load_finetune_recipe(LORA, ["train.lr=0.003"])
    assert fine_tune_lr(lora, 0.003) == (0.003, "--lr")
    trained = load_recipe(CONFIGS / "fashion_cnn.yaml")
    assert fine_tune_lr(trained, 0.5) == (0.5, "--lr")


@pytest.mark.parametrize("lr", [0.0, -1e-3, float("nan")])
def test_a_learning_rate_that_is_not_positive_is_refused(lr):
    with pytest.raises(ConfigError, match=r"--lr must be a positive learning rate; received"):
        check_options(CompressOptions(run_dir="run", prune=0.5, lr=lr))
