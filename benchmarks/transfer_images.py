"""Transfer on Fashion-MNIST: pretrain the seed CNN on classes 0-4, transfer to classes 5-9 with only
``--per-class`` labelled images per class.

Three ways to learn the five new classes from the same 500 images (seeded choice, one per seed):

* fine-tuning: the pretrained network with a new 5-way head, every layer trained with
  discriminative learning rates (``bigmodel.transfer.layerwise_lr``: the head at ``--lr``, each
  block below at half the rate of the one above);
* feature extraction: the pretrained convolutional body frozen (``bigmodel.transfer.freeze``), the
  dense layers (``fc`` + new head) trained;
* from scratch: the same network, randomly initialized, all layers at ``--lr``.

All three train for ``--epochs`` epochs with Adam, batch 32, and are measured on every test image of
classes 5-9 (5,000). The pretrained network is trained once (``--pretrain-epochs`` on the 30,000
training images of classes 0-4).

    .venv/bin/python benchmarks/transfer_images.py [--seeds 0 1 2] [--epochs 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


def images(x):
    return torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)  # (N, 1, 28, 28)


def train(model, x, y, epochs: int, params, seed: int, lr: float, batch_size: int = 32) -> float:
    from bigmodel.engine import Trainer

    trainer = Trainer(model, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(params, lr=lr),
                      device="cpu", seed=seed, verbose=0)
    started = time.perf_counter()
    trainer.fit((x, torch.from_numpy(y)), epochs=epochs, batch_size=batch_size)
    return time.perf_counter() - started


def accuracy(model, x, y) -> float:
    model.eval()
    with torch.inference_mode():
        logits = torch.cat([model(batch) for batch in x.split(1000)])
    return float((logits.argmax(1).numpy() == y).mean())


def transfer_experiment(args, pretrained, x_train, y_train, target_pool, xt_test, yt_test,
                        per_class: int) -> dict:
    """Fine-tuning / feature extraction / scratch on ``per_class`` images per class, every seed."""
    from bigmodel import transfer
    from bigmodel.models import create_model

    results: dict[str, list[float]] = {"fine-tuning": [], "feature extraction": [], "scratch": []}
    times: dict[str, list[float]] = {k: [] for k in results}
    trainable: dict[str, int] = {}
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        pick = np.concatenate([rng.permutation(target_pool[y_train[target_pool] == c])[: per_class]
                               for c in range(5, 10)])
        pick = rng.permutation(pick)
        x, y = images(x_train[pick]), y_train[pick].astype(np.int64) - 5
        for method in results:
            torch.manual_seed(seed)
            if method == "scratch":
                model = create_model("seed-cnn", num_classes=5)
                params = list(model.parameters())
            else:
                model = copy.deepcopy(pretrained)
                transfer.replace_head(model, 5)
                if method == "feature extraction":
                    transfer.freeze(model, ["conv1", "conv2", "conv3"])
                    params = [p for p in model.parameters() if p.requires_grad]
                else:
                    params = transfer.layerwise_lr(model, args.lr, args.decay)
            trainable[method] = transfer.summary(model).trainable
            times[method].append(train(model, x, y, args.epochs, params, seed, args.lr))
            results[method].append(accuracy(model, xt_test, yt_test))
            print(f"seed {seed} {method}: test accuracy {results[method][-1]:.4f} "
                  f"({times[method][-1]:.1f} s)", flush=True)

    print(f"\n{len(pick)} labelled images of classes 5-9, {args.epochs} epochs, "
          f"{len(xt_test):,} test images; median over seeds {args.seeds}\n")
    print("| method | trainable parameters | test accuracy (median) | per seed | fit time |")
    print("| --- | ---: | ---: | --- | ---: |")
    for method, values in results.items():
        print(f"| {method} | {trainable[method]:,} | {statistics.median(values):.4f} | "
              f"{', '.join(f'{v:.4f}' for v in values)} | {statistics.median(times[method]):.1f} s |")
    return {"accuracy": results, "seconds": times, "trainable": trainable}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, nargs="+", default=[100],
                        help="labelled images per class; several values: one experiment each")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--pretrain-epochs", type=int, default=2)
    parser.add_argument("--pretrain-samples", type=int, default=None,
                        help="use only N source images (default: all 30,000)")
    parser.add_argument("--test-samples", type=int, default=None)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--decay", type=float, default=0.5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-path", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from bigmodel.keras.datasets import fashion_mnist
    from bigmodel.models import create_model

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(args.data_path)
    source = y_train < 5
    xs, ys = images(x_train[source]), y_train[source].astype(np.int64)
    if args.pretrain_samples:
        xs, ys = xs[: args.pretrain_samples], ys[: args.pretrain_samples]
    target_test = y_test >= 5
    xt_test, yt_test = images(x_test[target_test]), y_test[target_test].astype(np.int64) - 5
    source_test = ~target_test
    if args.test_samples:
        xt_test, yt_test = xt_test[: args.test_samples], yt_test[: args.test_samples]

    torch.manual_seed(0)
    pretrained = create_model("seed-cnn", num_classes=5)
    seconds = train(pretrained, xs, ys, args.pretrain_epochs, pretrained.parameters(), 0, args.lr,
                    batch_size=64)
    source_accuracy = accuracy(pretrained, images(x_test[source_test]),
                               y_test[source_test].astype(np.int64))
    print(f"pretrained on classes 0-4 ({len(xs):,} images, {args.pretrain_epochs} epochs, "
          f"{seconds:.0f} s): test accuracy on classes 0-4 {source_accuracy:.4f}", flush=True)

    target_pool = np.flatnonzero(y_train >= 5)
    report = {}
    for per_class in args.per_class:
        report[per_class] = transfer_experiment(args, pretrained, x_train, y_train, target_pool,
                                                xt_test, yt_test, per_class)
    return {"source_accuracy": source_accuracy, "experiments": report}


if __name__ == "__main__":
    main()
