"""Pretrained MiniLM on the fortunes categories: full fine-tuning vs LoRA vs from scratch vs TF-IDF.

Same texts for all four: the six default categories of ``bigmodel.data.fortunes`` (seeded split
inside each category), ``--per-class`` training texts and ``--test-per-class`` test texts per
category. Every text is cut to ``--max-length`` WordPiece tokens (all-MiniLM-L6-v2's tokenizer).

* full fine-tuning: all 22.5M parameters; the new head at ``--head-lr``, the encoder at ``--lr``
  (discriminative learning rates, ``bigmodel.transfer.param_groups``);
* LoRA: rank-8 adapters on the attention projections + the head (``bigmodel.transfer.add_lora``),
  everything at ``--lora-lr``;
* from scratch: the same encoder with random weights, at ``--scratch-lr``;
* TF-IDF + logistic regression (n-grams and C chosen by 3-fold CV on the training texts).

Each network trains in its own process so its peak resident memory (``ru_maxrss``) is its own.
Time is the wall-clock of ``fit`` on this (shared) machine.

    .venv/bin/python benchmarks/transfer_text.py [--per-class 200] [--epochs 3] [--threads 1]
    .venv/bin/python benchmarks/transfer_text.py --speed   # step time, full vs LoRA, interleaved
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def make_split(per_class: int, test_per_class: int, seed: int = 0):
    """A FortunesSplit cut to ``per_class`` train / ``test_per_class`` test texts per category."""
    import numpy as np

    from bigmodel.data.fortunes import DEFAULT_CATEGORIES, FortunesSplit, load_fortunes

    full = load_fortunes(DEFAULT_CATEGORIES, seed=seed)

    def cut(texts, labels, k):
        keep = np.concatenate([np.flatnonzero(labels == c)[:k] for c in range(full.num_classes)])
        return [texts[i] for i in keep], labels[keep]

    train_texts, train_labels = cut(full.train_texts, full.train_labels, per_class)
    test_texts, test_labels = cut(full.test_texts, full.test_labels, test_per_class)
    return FortunesSplit(train_texts, train_labels, test_texts, test_labels, full.class_names)


def _run_network(kind: str, args: dict, queue) -> None:
    """Train one network (in a child process) and put its numbers on ``queue``."""
    import resource

    import numpy as np
    import torch
    from torch import nn

    from bigmodel import transfer
    from bigmodel.engine import Trainer
    from bigmodel.models import create_model
    from bigmodel.models.pretrained_files import load_pretrained_tokenizer
    from bigmodel.recipes.classification_data import ClassificationData
    from bigmodel.recipes.tasks.finetune import predict, trim_padding
    from bigmodel.transfer.pretrained import load

    torch.set_num_threads(args["threads"])
    torch.manual_seed(args["seed"])
    split = make_split(args["per_class"], args["test_per_class"])
    tokenizer = load_pretrained_tokenizer("all-MiniLM-L6-v2")
    x_train = tokenizer.encode_batch(split.train_texts, args["max_length"])
    x_test = tokenizer.encode_batch(split.test_texts, args["max_length"])
    classes = split.num_classes
    model = load("all-MiniLM-L6-v2", num_classes=classes, max_length=args["max_length"])
    if kind == "scratch":
        config = dict(model._registry_config, num_classes=classes)
        model = create_model("bert-classifier", **config)  # same sizes, random weights
        params, lr = model.parameters(), args["scratch_lr"]
    elif kind == "lora":
        transfer.add_lora(model, ["*.self_attn.in_proj", "*.self_attn.out_proj"], rank=8,
                          alpha=16, dropout=0.1, trainable="classifier")
        params, lr = [p for p in model.parameters() if p.requires_grad], args["lora_lr"]
    else:
        params = transfer.param_groups(model, {"classifier": args["head_lr"]}, default_lr=args["lr"])
        lr = args["lr"]
    counts = transfer.summary(model)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    steps = args["epochs"] * -(-len(x_train) // args["batch_size"])
    trainer = Trainer(model, loss=nn.CrossEntropyLoss(), optimizer=optimizer, device="cpu",
                      seed=args["seed"], verbose=0,
                      scheduler={"name": "cosine", "warmup_steps": max(1, steps // 10)})
    data = torch.utils.data.TensorDataset(torch.from_numpy(x_train),
                                          torch.from_numpy(split.train_labels))
    loader = torch.utils.data.DataLoader(data, batch_size=args["batch_size"], shuffle=True,
                                         collate_fn=trim_padding,
                                         generator=torch.Generator().manual_seed(args["seed"]))
    started, cpu_started = time.perf_counter(), time.process_time()
    history = trainer.fit(loader, epochs=args["epochs"])
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    if kind == "lora":
        transfer.merge_lora(model)
    view = ClassificationData(None, None, None, None, x_test, split.test_labels, split.class_names,
                              (1, 1, x_test.shape[1]), unit="texts")
    logits = predict(model, view, x_test, batch_size=64)
    accuracy = float((logits.argmax(1).numpy() == split.test_labels).mean())
    queue.put({"kind": kind, "accuracy": accuracy, "trainable": counts.trainable,
               "total": counts.total, "seconds": seconds, "cpu_seconds": cpu_seconds,
               "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "final_loss": history.history["loss"][-1], "train_texts": len(x_train),
               "test_texts": len(x_test), "chance": float(np.bincount(split.test_labels).max()
                                                          / len(split.test_labels))})


def run_network(kind: str, args: dict) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_run_network, args=(kind, args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def step_speed(args) -> dict:
    """Training-step time of full fine-tuning and LoRA, interleaved in one process (medians)."""
    import statistics

    import torch
    from torch import nn

    from bigmodel import transfer
    from bigmodel.models.pretrained_files import load_pretrained_tokenizer
    from bigmodel.recipes.tasks.finetune import trim_padding
    from bigmodel.transfer.pretrained import load

    torch.set_num_threads(args.threads)
    split = make_split(args.per_class, args.test_per_class)
    ids = torch.from_numpy(load_pretrained_tokenizer("all-MiniLM-L6-v2").encode_batch(
        split.train_texts[: args.batch_size], args.max_length))
    ids, labels = trim_padding([(row, torch.tensor(0)) for row in ids])
    labels = torch.from_numpy(split.train_labels[: args.batch_size])
    full = load("all-MiniLM-L6-v2", num_classes=6, max_length=args.max_length).train()
    lora = load("all-MiniLM-L6-v2", num_classes=6, max_length=args.max_length).train()
    transfer.add_lora(lora, ["*.self_attn.in_proj", "*.self_attn.out_proj"], rank=8, alpha=16,
                      dropout=0.1, trainable="classifier")
    runs = {}
    for name, model in (("full", full), ("lora", lora)):
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        runs[name] = (model, optimizer)

    def step(name: str) -> tuple[float, float]:
        model, optimizer = runs[name]
        wall, cpu = time.perf_counter(), time.process_time()
        loss = nn.functional.cross_entropy(model(ids), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - wall, time.process_time() - cpu

    for name in runs:  # warm-up
        step(name)
    times = {name: {"wall": [], "cpu": []} for name in runs}
    ratios = []
    for _ in range(args.speed_rounds):
        per_round = {}
        for name in runs:
            samples = [step(name) for _ in range(3)]
            times[name]["wall"].append(statistics.median(s[0] for s in samples))
            times[name]["cpu"].append(statistics.median(s[1] for s in samples))
            per_round[name] = times[name]["cpu"][-1]
        ratios.append(per_round["lora"] / per_round["full"])
    out = {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}
    out["lora_over_full_cpu"] = statistics.median(ratios)
    print(f"step ({args.batch_size} texts, {ids.shape[1]} tokens), medians of "
          f"{args.speed_rounds} interleaved rounds: full {out['full']['cpu']:.2f} s CPU "
          f"({out['full']['wall']:.2f} s wall), LoRA {out['lora']['cpu']:.2f} s CPU "
          f"({out['lora']['wall']:.2f} s wall); LoRA / full = {out['lora_over_full_cpu']:.2f}",
          flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--test-per-class", type=int, default=60)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--lora-lr", type=float, default=1e-3)
    parser.add_argument("--scratch-lr", type=float, default=3e-4)
    parser.add_argument("--threads", type=int, default=1)  # 2 threads on 2 busy cores: ~10x slower
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-rounds", type=int, default=5)
    parser.add_argument("--speed", action="store_true",
                        help="only measure the step time of full fine-tuning vs LoRA, interleaved")
    parser.add_argument("--only", nargs="+", default=["tfidf", "full", "lora", "scratch"],
                        choices=["tfidf", "full", "lora", "scratch"])
    args = parser.parse_args(argv)
    if args.speed:
        return step_speed(args)
    settings = vars(args)
    split = make_split(args.per_class, args.test_per_class)
    print(f"fortunes: {split.num_classes} categories, {len(split.train_texts)} train / "
          f"{len(split.test_texts)} test texts, {args.max_length} tokens, {args.epochs} epochs",
          flush=True)
    results = {}
    if "tfidf" in args.only:
        from text_rcnn_fortunes import tfidf_baseline

        accuracy, seconds, best = tfidf_baseline(split, seed=args.seed)
        results["tfidf"] = {"kind": "tfidf", "accuracy": accuracy, "seconds": seconds,
                            "chosen": str(best)}
        print(f"TF-IDF + logistic regression: {accuracy:.4f} ({seconds:.0f} s, {best})", flush=True)
    for kind in [k for k in ("full", "lora", "scratch") if k in args.only]:
        results[kind] = run_network(kind, settings)
        r = results[kind]
        print(f"{kind}: accuracy {r['accuracy']:.4f}, trainable {r['trainable']:,} of "
              f"{r['total']:,}, fit {r['seconds']:.0f} s ({r['cpu_seconds']:.0f} s CPU), peak RSS {r['peak_rss_mib']:.0f} MiB, "
              f"last loss {r['final_loss']:.3f}", flush=True)
    names = {"full": "MiniLM, full fine-tuning", "lora": "MiniLM + LoRA rank 8",
             "scratch": "same encoder from scratch", "tfidf": "TF-IDF + logistic regression"}
    print("\n| model | test accuracy | trainable parameters | fit time | peak RSS |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for kind, r in results.items():
        if kind == "tfidf":
            print(f"| {names[kind]} | {r['accuracy']:.4f} | - | {r['seconds']:.0f} s (CV) | - |")
        else:
            print(f"| {names[kind]} | {r['accuracy']:.4f} | {r['trainable']:,} "
                  f"({100 * r['trainable'] / r['total']:.2f}%) | {r['seconds']:.0f} s | "
                  f"{r['peak_rss_mib']:.0f} MiB |")
    return results


if __name__ == "__main__":
    main()
