"""The run path's pieces: the task registry, the recipe's task key, the one optimizer of train /
finetune / compress (Keras's epsilon), compression's fine-tuning through the run path's trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bigmodel.errors import ConfigError
from bigmodel.recipes.finetune_schema import finetune_recipe_from_dict
from bigmodel.recipes.schema import recipe_from_dict
from bigmodel.recipes.tasks import TASK_NAMES, Task, get_task


def test_task_registry_names_every_task_and_refuses_unknown_ones():
    assert set(TASK_NAMES) == {"image_classification", "text_classification",
                               "speech_classification", "seq2seq", "language_model", "finetune"}
    for name in ("image_classification", "text_classification", "speech_classification"):
        task = get_task(name)
        assert isinstance(task, Task) and task.name == name
    finetune = get_task("finetune", source="some/run")
    assert isinstance(finetune, Task) and finetune.source == "some/run"
    with pytest.raises(ConfigError, match="unknown task 'regression'.*image_classification"):
        get_task("regression")


@pytest.mark.parametrize("raw, task", [
    ({}, "image_classification"),
    ({"data": {"name": "mnist"}}, "image_classification"),
    ({"data": {"name": "fortunes"}, "model": {"name": "text-rcnn"}}, "text_classification"),
    ({"data": {"name": "fortunes"}, "model": {"name": "gpt"}}, "language_model"),
    ({"data": {"name": "dates_to_iso"}, "model": {"name": "transformer"}}, "seq2seq"),
    ({"data": {"name": "speech_digits"}, "model": {"name": "speech-cnn"}}, "speech_classification"),
])
def test_a_recipe_without_task_gets_it_from_its_data(raw, task):
    # recipe.yaml files of runs written before the task key existed still load
    recipe = recipe_from_dict(raw)
    assert recipe.task == task
    assert recipe_from_dict(recipe.model_dump(mode="json")).task == task  # and round-trip


def test_a_task_that_does_not_fit_the_data_is_refused():
    with pytest.raises(ConfigError, match="task 'seq2seq' reads data.name.*received data.name "
                                          "'fashion_mnist'"):
        recipe_from_dict({"task": "seq2seq"})
    with pytest.raises(ConfigError, match="task"):
        recipe_from_dict({"task": "translation"})
    with pytest.raises(ConfigError, match="bigmodel finetune"):
        recipe_from_dict({"task": "finetune"})
    assert finetune_recipe_from_dict({}).task == "finetune"
    with pytest.raises(ConfigError, match="task"):
        finetune_recipe_from_dict({"task": "image_classification"})


def _tiny_data(n: int = 32):
    from bigmodel.recipes.classification_data import ClassificationData

    rng = np.random.default_rng(0)
    x = rng.random((n, 1, 8, 8), dtype=np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.int64)
    return ClassificationData(x, y, None, None, x, y, ("a", "b"), (1, 8, 8))


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_compress_fine_tunes_with_the_runs_optimizer_and_keras_epsilon(optimizer):
    # The bug of #16: compress fine-tuned with torch's eps 1e-8 a model trained with Keras's 1e-7.
    from bigmodel.recipes.compress import fine_tune, fine_tune_settings

    recipe = recipe_from_dict({"train": {"optimizer": optimizer, "lr": 0.01}})
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    before = model[1].weight.detach().clone()
    train = fine_tune_settings(recipe.train, epochs=1, lr=0.005, batch_size=8)
    trainer = fine_tune(model, None, _tiny_data(), train)
    group = trainer.optimizer.param_groups[0]
    assert group["eps"] == 1e-7 and group["lr"] == 0.005
    expected = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}[optimizer]
    assert type(trainer.optimizer) is expected
    if optimizer == "rmsprop":
        assert group["alpha"] == 0.9  # Keras's rho
    assert not torch.equal(model[1].weight, before) and not model.training
    assert fine_tune(model, None, _tiny_data(), fine_tune_settings(recipe.train, 0, 0.1, 8)) is None


def test_train_and_finetune_build_the_same_optimizer():
    from bigmodel.recipes.tasks import FitInputs
    from bigmodel.recipes.training import build_trainer

    for raw in ({"train": {"optimizer": "adamw", "weight_decay": 0.01}},):
        recipe, tuning = recipe_from_dict(raw), finetune_recipe_from_dict(raw)
        model = torch.nn.Linear(3, 2)
        inputs = FitInputs(loss=torch.nn.CrossEntropyLoss(), train=None)
        trainer = build_trainer(model, recipe.train, inputs)
        assert not trainer.distributed and trainer.is_main_process  # one process
        a = trainer.optimizer.param_groups[0]
        b = build_trainer(model, tuning.train, inputs).optimizer.param_groups[0]
        assert {k: a[k] for k in ("lr", "eps", "weight_decay", "betas")} == \
               {k: b[k] for k in ("lr", "eps", "weight_decay", "betas")} and a["eps"] == 1e-7


def test_evaluate_and_predict_refuse_a_run_that_is_not_a_classifier(tmp_path):
    from bigmodel.models import create_model, save_model
    from bigmodel.recipes.runs import evaluate_run, predict_run
    from bigmodel.recipes.schema import save_recipe

    recipe = recipe_from_dict({"model": {"name": "transformer"},
                               "data": {"name": "dates_to_iso", "train_subset": 8,
                                        "test_subset": 4}})
    save_recipe(recipe, tmp_path / "recipe.yaml")
    save_model(create_model("transformer", num_layers=1, d_model=8, num_heads=2, dff=8), tmp_path,
               metadata={"task": "seq2seq", "data": "dates_to_iso"})
    # #17: evaluate repeats a seq2seq run's own measurement (tests/test_generate_translate.py),
    # which needs the run's tokenizers; predict still refuses, naming translate.
    from bigmodel.errors import DataFileError

    with pytest.raises(DataFileError, match="source_tokenizer.json"):
        evaluate_run(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(ConfigError, match="is a seq2seq run; predict classifies"):
        predict_run(tmp_path, str(tmp_path / "x.npy"))


@pytest.mark.parametrize("name", sorted(__import__("bigmodel.engine.optimizers",
                                                   fromlist=["OPTIMIZERS"]).OPTIMIZERS))
def test_every_engine_optimizer_is_a_recipe_optimizer_the_planner_knows(name):
    """One optimizer-by-name: a recipe accepts exactly the engine's names, builds them with
    Keras's epsilon where the optimizer has one, and the memory planner counts their state."""
    import torch

    from bigmodel.engine.optimizers import OPTIMIZERS
    from bigmodel.engine.planner import optimizer_states
    from bigmodel.recipes.schema import OPTIMIZERS as RECIPE_OPTIMIZERS
    from bigmodel.recipes.schema import recipe_from_dict
    from bigmodel.recipes.training import recipe_optimizer

    assert set(RECIPE_OPTIMIZERS) == set(OPTIMIZERS)
    recipe = recipe_from_dict({"model": {"name": "seed-cnn"}, "data": {"name": "fashion_mnist"},
                               "train": {"optimizer": name.upper()}})
    optimizer = recipe_optimizer(recipe.train, [torch.nn.Parameter(torch.zeros(2))])
    assert type(optimizer) is OPTIMIZERS[name]
    if "eps" in optimizer.defaults:
        assert optimizer.defaults["eps"] == 1e-7
    assert optimizer_states(name) >= 0
