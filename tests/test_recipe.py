"""Recipe schema: every configs/ recipe validates; errors name the key; overrides; YAML round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from bigmodel.errors import ConfigError
from bigmodel.recipes.schema import (
    Recipe,
    dump_recipe,
    load_recipe,
    parse_yaml,
    recipe_from_dict,
    save_recipe,
)

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_configs_exist():
    names = {path.name for path in CONFIGS}
    assert {"fashion_cnn.yaml", "fashion_cnn_regularized.yaml"} <= names


def _load_any(path):
    """``finetune_*.yaml`` are ``bigmodel finetune`` recipes (a training recipe + a finetune section)."""
    if path.name.startswith("finetune_"):
        from bigmodel.recipes.finetune_schema import load_finetune_recipe

        return load_finetune_recipe(path)
    return load_recipe(path)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_validates_and_round_trips(path, tmp_path):
    recipe = _load_any(path)
    save_recipe(recipe, tmp_path / path.name)
    assert _load_any(tmp_path / path.name) == recipe


def test_seed_recipe_is_the_seed_program():
    recipe = load_recipe(CONFIGS[0].parent / "fashion_cnn.yaml")
    assert (recipe.model.name, recipe.data.name) == ("seed-cnn", "fashion_mnist")
    assert (recipe.train.optimizer, recipe.train.lr, recipe.train.batch_size,
            recipe.train.epochs) == ("adam", 1e-3, 32, 5)


def test_regularized_recipe_uses_every_regularizer():
    recipe = load_recipe(CONFIGS[0].parent / "fashion_cnn_regularized.yaml")
    assert recipe.train.l2 > 0 and recipe.model.overrides["dropout_rate"] > 0
    assert [a.name for a in recipe.data.augment] == ["RandomTranslation", "RandomErasing"]
    assert recipe.train.early_stopping.monitor == "val_loss"
    assert recipe.data.validation_split > 0


def test_defaults_round_trip_through_yaml():
    recipe = Recipe()
    assert recipe_from_dict(parse_yaml(dump_recipe(recipe))) == recipe
    full = recipe_from_dict({
        "model": {"overrides": {"dropout_rate": 0.1}},
        "data": {"augment": [{"name": "RandomErasing", "args": {"probability": 0.3}}],
                 "validation_split": 0.2},
        "train": {"scheduler": {"name": "cosine", "args": {"min_lr_ratio": 0.1, "warmup_steps": 10}},
                  "early_stopping": {"patience": 2}, "grad_clip_norm": 1.0},
    })
    assert recipe_from_dict(parse_yaml(dump_recipe(full))) == full


def test_scientific_notation_without_dot_is_a_float():
    assert recipe_from_dict(parse_yaml("train: {lr: 3e-4}")).train.lr == pytest.approx(3e-4)


@pytest.mark.parametrize("raw, message", [
    ({"train": {"epoch": 3}}, r"unknown key 'train\.epoch' \(did you mean 'train\.epochs'\?\)"),
    ({"trian": {}}, r"unknown key 'trian'"),
    ({"train": {"early_stopping": {"patients": 2}}, "data": {"validation_split": 0.1}},
     r"unknown key 'train\.early_stopping\.patients'"),
    ({"data": {"augment": [{"name": "RandomErasing", "arg": {}}]}},
     r"unknown key 'data\.augment\.0\.arg'"),
    ({"train": {"epochs": "five"}}, r"train\.epochs: .*integer.*received 'five'"),
    ({"train": {"batch_size": 0}}, r"train\.batch_size: .*greater than or equal to 1"),
    ({"train": {"channels_last": "yes"}}, r"train\.channels_last: .*boolean"),
    ({"data": {"validation_split": 1.5}}, r"data\.validation_split"),
    ({"data": {"name": "cifar10"}}, r"data\.name: .*'fashion_mnist', 'mnist', 'fortunes'"),
    ({"model": {"name": "seed-cnm"}}, r"model\.name: unknown model 'seed-cnm'.*seed-cnn"),
    ({"model": {"overrides": {"dropout": 0.1}}}, r"model\.overrides\.dropout: unknown key"),
    ({"model": {"overrides": {"num_classes": "ten"}}}, r"model\.overrides\.num_classes: .*int"),
    ({"train": {"optimizer": "adamm"}}, r"train\.optimizer: unknown optimizer 'adamm'.*adam"),
    ({"train": {"scheduler": {"name": "cosine", "args": {"gamma": 0.1}}}},
     r"train\.scheduler\.args: .*unknown \['gamma'\]"),
    ({"train": {"scheduler": {"name": "step"}}}, r"train\.scheduler\.args: .*missing \['step_size'\]"),
    ({"train": {"scheduler": {"name": "linear"}}}, r"train\.scheduler\.name: unknown scheduler"),
    ({"data": {"augment": [{"name": "RandomShear"}]}}, r"data\.augment\.0: unknown augmentation"),
    ({"data": {"augment": [{"name": "RandomErasing", "args": {"probability": 2}}]}},
     r"data\.augment\.0: RandomErasing.*probability"),
    ({"train": {"early_stopping": {}}}, r"early_stopping\.monitor.*validation_split"),
    ({"output": {"name": "a/b"}}, r"output\.name: run name must be a plain folder name"),
])
def test_invalid_recipes_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        recipe_from_dict(raw)


def test_every_error_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        recipe_from_dict({"train": {"epochs": "x", "lr": -1.0}})
    assert "train.epochs" in str(info.value) and "train.lr" in str(info.value)


def test_not_a_mapping():
    with pytest.raises(ConfigError, match="must be a mapping"):
        recipe_from_dict([1, 2])


def test_overrides_apply_with_yaml_types():
    recipe = recipe_from_dict({}, ["train.epochs=3", "train.lr=5e-4", "train.seed=null",
                                   "model.overrides.dropout_rate=0.3", "data.path=/tmp/x",
                                   "train.early_stopping.patience=4", "data.validation_split=0.1"])
    assert recipe.train.epochs == 3 and recipe.train.lr == pytest.approx(5e-4)
    assert recipe.train.seed is None and recipe.model.overrides == {"dropout_rate": 0.3}
    assert recipe.data.path == "/tmp/x" and recipe.train.early_stopping.patience == 4


def test_override_into_a_list_item():
    raw = {"data": {"augment": [{"name": "RandomErasing"}]}}
    recipe = recipe_from_dict(raw, ["data.augment.0.args.probability=0.25"])
    assert recipe.data.augment[0].args == {"probability": 0.25}


@pytest.mark.parametrize("override, message", [
    ("train.epoch=3", r"--set train\.epoch=3: unknown key 'train\.epoch'.*train\.epochs"),
    ("bogus.key=1", r"unknown key 'bogus'"),
    ("train.epochs.value=3", r"'train\.epochs' is a value, not a section"),
    ("data.augment.3.name=RandomFlip", r"'data\.augment' has 0 item\(s\)"),
    ("train.epochs", r"expected KEY\.PATH=VALUE"),
    ("train.epochs=[1", r"invalid YAML"),
    ("train.epochs=abc", r"train\.epochs: .*integer"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        recipe_from_dict({}, [override])


def test_load_recipe_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML"):
        load_recipe(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("train:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml: unknown key 'train\.epochz'"):
        load_recipe(typo)
