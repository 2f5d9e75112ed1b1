"""``bigmodel evaluate RUN_DIR``: rebuild a trained model and measure it on the test set.

The model comes from the run's ``model.json`` + ``model.safetensors`` (never a pickle); the test data
from the run's resolved ``recipe.yaml`` (same data set, path and ``test_subset``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "evaluate", parents=parents, help="test loss/accuracy of a trained run",
        description="Rebuild the model of a run directory from model.json + model.safetensors and "
                    "print its loss and accuracy on the recipe's test set.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by 'bigmodel train'")
    parser.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    parser.add_argument("--data-path", default=None,
                        help="directory of the data set's IDX files (default: the recipe's)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.set_defaults(func=run)


def evaluate_run(run_dir: str | Path, batch_size: int = 256, data_path: str | None = None,
                 device: str = "auto") -> dict[str, float]:
    """``{"loss", "accuracy", "num_images"}`` of a run's saved model on its recipe's test set.

    Raises:
        CheckpointError: the run has no (valid) model files.
        ConfigError: the run's recipe is missing or invalid, or ``batch_size`` < 1.
        DataFileError: the test data cannot be loaded.
    """
    from bigmodel.cli.inference import loss_and_accuracy, predict_logits
    from bigmodel.cli.recipe import load_recipe
    from bigmodel.cli.splits import load_splits
    from bigmodel.cli.text_data import TEXT_DATA, load_vocabulary
    from bigmodel.engine.resolve import resolve_device
    from bigmodel.errors import ConfigError
    from bigmodel.models import load_model

    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1; received {batch_size}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"Run directory not found: {run_dir}")
    model = load_model(run_dir, device=resolve_device(device))
    recipe = load_recipe(run_dir / "recipe.yaml")
    data = recipe.data.model_copy(update={"path": data_path}) if data_path else recipe.data
    vocabulary = None
    if data.name in TEXT_DATA:  # encode the test texts with the run's own vocabulary
        from bigmodel.models import read_model_spec

        spec = (read_model_spec(run_dir).get("metadata") or {}).get("input") or {}
        vocabulary = load_vocabulary(run_dir, spec)
    splits = load_splits(data, seed=recipe.train.seed, with_train=False, vocabulary=vocabulary)
    loss, accuracy = loss_and_accuracy(predict_logits(model, splits.x_test, batch_size),
                                       splits.y_test)
    return {"loss": loss, "accuracy": accuracy, "num_images": len(splits.x_test),
            "unit": splits.unit}


def run(args: argparse.Namespace) -> int:
    result = evaluate_run(args.run_dir, args.batch_size, args.data_path, args.device)
    print(f"test loss: {result['loss']:.4f}")
    print(f"test accuracy: {result['accuracy']:.4f} ({result['num_images']} {result['unit']})")
    return 0
