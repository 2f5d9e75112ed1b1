"""Overfitting of the seed CNN on a small training set, with and without the usual remedies.

    .venv/bin/python benchmarks/overfitting.py   # 6,000 training images, up to 30 epochs, two models

Both models are the seed CNN trained through the Keras surface on the same 6,000-image subset of
the Fashion-MNIST training set (drawn with a fixed seed; raw uint8 images, adam, batch 32), with a
disjoint 2,000-image validation subset from the rest of the training set for the curves and for
early stopping. The test set (10,000 images) is used only for the final evaluation.

- plain: the seed CNN as it is;
- remedied: ``l2`` kernel regularization on every Conv2D/Dense kernel, ``Dropout`` before the two
  Dense layers, ``RandomTranslation`` + ``RandomErasing`` augmentation layers in front, and
  ``EarlyStopping(monitor="val_loss", restore_best_weights=True)``.

Train accuracy is re-measured with ``evaluate`` on the training subset (inference mode: no dropout,
no augmentation), so the generalization gap is ``train accuracy - test accuracy`` on equal terms.
Writes ``benchmarks/out/overfitting.json`` and ``benchmarks/out/overfitting.png`` (copied to
``docs/img/overfitting.png`` unless ``--docs-img none``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def build(remedied: bool, args: argparse.Namespace) -> Any:
    from bigmodel import keras
    from bigmodel.keras import layers

    seed = args.seed
    torch.manual_seed(seed)
    if not remedied:
        model = common.seed_cnn_keras()
    else:
        shift = args.translation
        augment = [
            layers.RandomTranslation(shift, shift, fill_mode="constant", interpolation="nearest",
                                     seed=seed),
            layers.RandomErasing(probability=args.erasing_probability,
                                 scale=(0.02, args.erasing_max_scale), value=0.0, seed=seed + 1),
        ]
        model = common.seed_cnn_keras(kernel_regularizer=keras.regularizers.l2(args.l2),
                                      dropout=args.dropout, augment=augment)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def train_and_measure(name: str, model: Any, data: dict[str, tuple[np.ndarray, np.ndarray]],
                      epochs: int, batch_size: int, callbacks: list[Any]) -> dict[str, Any]:
    x, y = data["train"]
    common.log(f"{name}: {model.count_params():,} parameters, up to {epochs} epochs")
    t0 = time.perf_counter()
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, validation_data=data["val"],
                        callbacks=callbacks, verbose=0)
    seconds = time.perf_counter() - t0
    h = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    train_loss, train_acc = model.evaluate(x, y, batch_size=256, verbose=0)
    val_loss, val_acc = model.evaluate(*data["val"], batch_size=256, verbose=0)
    test_loss, test_acc = model.evaluate(*data["test"], batch_size=256, verbose=0)
    out = {
        "train_accuracy": float(train_acc), "train_loss": float(train_loss),
        "val_accuracy": float(val_acc), "val_loss": float(val_loss),
        "test_accuracy": float(test_acc), "test_loss": float(test_loss),
        "gap": float(train_acc - test_acc),
        "epochs_run": len(h["loss"]), "fit_seconds": seconds,
        "seconds_per_epoch": seconds / max(len(h["loss"]), 1), "history": h,
    }
    common.log(f"  {name}: train {train_acc:.4f} test {test_acc:.4f} gap {train_acc - test_acc:+.4f} "
               f"({len(h['loss'])} epochs, {seconds:.0f}s)")
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"plain": "tab:red", "remedied": "tab:blue"}
    for key, color in styles.items():
        r = result[key]
        h = r["history"]
        epochs = np.arange(1, len(h["loss"]) + 1)
        label = "plain" if key == "plain" else "L2 + dropout + augmentation + early stopping"
        for ax, metric in zip(axes, ("loss", "accuracy")):
            ax.plot(epochs, h[metric], color=color, lw=1.8, label=f"{label}: train")
            ax.plot(epochs, h[f"val_{metric}"], color=color, lw=1.8, ls="--", label=f"{label}: val")
        best = r.get("best_epoch")
        if best:
            for ax in axes:
                ax.axvline(best, color=color, lw=0.8, ls=":")
    axes[0].set_ylabel("sparse categorical cross-entropy")
    axes[1].set_ylabel("accuracy")
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(0, max(1.2, min(3.0, max(result["plain"]["history"]["val_loss"]) * 1.05)))
    axes[1].legend(fontsize=7.5, loc="lower right")
    cfg = result["config"]
    fig.suptitle(
        f"Seed CNN, {cfg['train_samples']:,} Fashion-MNIST training images: test accuracy "
        f"{100 * result['plain']['test_accuracy']:.1f}% plain (gap {100 * result['plain']['gap']:.1f} pts) vs "
        f"{100 * result['remedied']['test_accuracy']:.1f}% remedied (gap "
        f"{100 * result['remedied']['gap']:.1f} pts)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=6000, help="training images")
    p.add_argument("--val-samples", type=int, default=2000, help="validation images (disjoint)")
    p.add_argument("--test-samples", type=int, default=None, help="test images (default: all)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--l2", type=float, default=1e-4, help="l2 factor on every kernel")
    p.add_argument("--dropout", type=float, default=0.25, help="rate of the two Dropout layers")
    p.add_argument("--translation", type=float, default=0.05,
                   help="RandomTranslation height/width factor")
    p.add_argument("--erasing-probability", type=float, default=0.25)
    p.add_argument("--erasing-max-scale", type=float, default=0.1,
                   help="RandomErasing scale=(0.02, this)")
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data", default=None)
    p.add_argument("--out", default=str(common.DEFAULT_OUT))
    p.add_argument("--docs-img", default=str(REPO / "docs" / "img" / "overfitting.png"),
                   help="where to copy the PNG ('none' to skip)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    common.set_threads(args.threads)
    from bigmodel import keras

    (x_train, y_train), (x_test, y_test) = common.load_fashion(args.data)
    order = np.random.default_rng(args.seed).permutation(len(x_train))
    train_idx = np.sort(order[:args.samples])
    val_idx = np.sort(order[args.samples:args.samples + args.val_samples])
    if args.test_samples:
        x_test, y_test = x_test[:args.test_samples], y_test[:args.test_samples]
    data = {"train": (x_train[train_idx], y_train[train_idx]),
            "val": (x_train[val_idx], y_train[val_idx]), "test": (x_test, y_test)}

    plain = train_and_measure("plain", build(False, args), data,
                              args.epochs, args.batch_size, [])
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.patience,
                                            restore_best_weights=True)
    remedied = train_and_measure("remedied", build(True, args), data,
                                 args.epochs, args.batch_size, [stopper])
    val_losses = remedied["history"]["val_loss"]
    remedied["best_epoch"] = int(np.argmin(val_losses)) + 1
    remedied["stopped_early"] = remedied["epochs_run"] < args.epochs
    plain["best_val_loss_epoch"] = int(np.argmin(plain["history"]["val_loss"])) + 1

    result: dict[str, Any] = {
        "benchmark": "overfitting",
        "date": common.today(),
        "machine": common.machine_info(),
        "command": "benchmarks/overfitting.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": {"train_samples": len(train_idx), "val_samples": len(val_idx),
                   "test_samples": len(x_test), "epochs": args.epochs,
                   "batch_size": args.batch_size, "seed": args.seed,
                   "inputs": "raw uint8 images, as the seed program",
                   "remedies": {"kernel_regularizer": f"l2({args.l2:g}) on every Conv2D/Dense kernel",
                                "dropout": f"Dropout({args.dropout:g}) before each Dense layer",
                                "augmentation": f"RandomTranslation({args.translation:g}, "
                                                f"{args.translation:g}, fill_mode='constant', "
                                                "interpolation='nearest'), RandomErasing(probability="
                                                f"{args.erasing_probability:g}, scale=(0.02, "
                                                f"{args.erasing_max_scale:g}), value=0)",
                                "early_stopping": f"EarlyStopping(monitor='val_loss', patience="
                                                  f"{args.patience}, restore_best_weights=True)"}},
        "plain": plain,
        "remedied": remedied,
        "gap_reduction": plain["gap"] - remedied["gap"],
        "test_accuracy_change": remedied["test_accuracy"] - plain["test_accuracy"],
        "peak_rss_mib": common.peak_rss_mib(),
    }
    png = Path(args.out) / "overfitting.png"
    plot(result, png)
    result["png"] = str(png)
    if args.docs_img and args.docs_img.lower() != "none":
        Path(args.docs_img).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, args.docs_img)
        result["docs_png"] = str(args.docs_img)
    path = common.write_json(result, args.out, "overfitting.json")

    rows = []
    for key in ("plain", "remedied"):
        r = result[key]
        rows.append([key, r["epochs_run"], f"{100 * r['train_accuracy']:.2f}%",
                     f"{100 * r['val_accuracy']:.2f}%", f"{100 * r['test_accuracy']:.2f}%",
                     f"{100 * r['gap']:.2f} pts", f"{r['test_loss']:.4f}", f"{r['seconds_per_epoch']:.1f}"])
    print(common.markdown_table(["model", "epochs run", "train acc", "val acc", "test acc",
                                 "gap (train - test)", "test loss", "s/epoch"], rows))
    print(f"\nPNG: {png}" + (f" (copied to {result['docs_png']})" if "docs_png" in result else ""))
    print(f"JSON: {path}")
    return result


if __name__ == "__main__":
    main()
