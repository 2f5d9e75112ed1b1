"""Spoken digits: four recognizers trained on espeak-ng voices, tested on held-out voices.

    .venv/bin/python benchmarks/speech_digits.py [--epochs 15] [--models speech-cnn,...]

Steps: render (or reuse from the cache) the corpus with ``synthesize_digits`` -- 46 voice variants,
8 held out for the test set, 5 renditions of each digit per voice (accent, rate, pitch, gain, noise
and shift drawn per clip); train each model on the training voices with the engine's ``Trainer``
(AdamW, cosine schedule, SpecAugment inside the models); measure accuracy on the held-out voices,
training time, and inference latency per clip (batch of one, median of interleaved repeats, and as
a ratio to the first model's latency measured in the same rounds, so machine noise cancels); save
a saliency map over the spectrogram of the best model (``docs/img/speech_saliency.png``).

Writes ``benchmarks/out/speech_digits.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    DEFAULT_OUT,
    log,
    machine_info,
    markdown_table,
    median,
    set_threads,
    today,
    write_json,
)

MODELS = ("speech-cnn", "speech-crnn", "speech-lstm", "speech-transformer")
ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--renditions", type=int, default=5)
    parser.add_argument("--test-voices", type=int, default=8)
    parser.add_argument("--voices", default=None, help="comma-separated voice variants")
    parser.add_argument("--cache", default=None, help="corpus cache folder")
    parser.add_argument("--latency-clips", type=int, default=30)
    parser.add_argument("--latency-rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--waveform-steps", action="store_true",
                        help="compute the log-mels in every training step instead of once")
    parser.add_argument("--phase", choices=("all", "train", "report"), default="all",
                        help="train: train --models and save them under OUT/speech_digits_models "
                             "(several such processes may run at once); report: measure the saved "
                             "models (latency, saliency) and write the JSON; all: both")
    parser.add_argument("--saliency-image", default=str(ROOT / "docs" / "img" /
                                                        "speech_saliency.png"))
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    return parser.parse_args(argv)


def per_voice_accuracy(model: nn.Module, data) -> dict[str, float]:
    from bigmodel.recipes.inference import predict_logits

    predictions = predict_logits(model, data.waveforms, 128).argmax(dim=1).numpy()
    return {voice: float((predictions[data.speakers == voice]
                          == data.labels[data.speakers == voice]).mean())
            for voice in sorted(set(data.speakers.tolist()))}


def train_one(name: str, train, test, args) -> tuple[nn.Module, dict]:
    from bigmodel.engine.trainer import Trainer
    from bigmodel.models import create_model

    torch.manual_seed(args.seed)
    model = create_model(name, num_classes=train.num_classes)
    steps = args.epochs * -(-len(train) // args.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    trainer = Trainer(model, loss=nn.CrossEntropyLoss(), optimizer=optimizer, metrics=["accuracy"],
                      device="cpu", seed=args.seed, verbose=0, grad_clip_norm=1.0,
                      scheduler={"name": "cosine", "warmup_steps": min(100, steps // 10)})
    started, cpu_started = time.perf_counter(), time.process_time()
    inputs = train.waveforms
    if not args.waveform_steps:
        # The frontend has no weights: compute the standardised log-mels once; every step then
        # starts from them (SpecAugment still draws new masks per step inside the model).
        with torch.no_grad():
            inputs = torch.cat([model.spectrogram(torch.from_numpy(train.waveforms[i: i + 256]))
                                for i in range(0, len(train), 256)])
    history = trainer.fit((inputs, train.labels), epochs=args.epochs,
                          batch_size=args.batch_size, shuffle=True)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    scores = trainer.evaluate((test.waveforms, test.labels), batch_size=128)
    model.eval()
    return model, {"model": name, "parameters": sum(p.numel() for p in model.parameters()),
                   "train_seconds": seconds, "train_cpu_seconds": cpu_seconds,
                   "epochs": args.epochs, "load_average_after": list(os.getloadavg()),
                   "train_accuracy_last_epoch": history.history["accuracy"][-1],
                   "test_accuracy": scores["accuracy"], "test_loss": scores["loss"],
                   "test_accuracy_per_voice": per_voice_accuracy(model, test)}


def latencies(models: dict[str, nn.Module], clips: np.ndarray, rounds: int) -> dict[str, dict]:
    """Per-clip latency (batch of one, from the waveform), interleaving models within each round:
    wall-clock and process CPU time, and both as ratios to the first model in the same round."""
    reference = next(iter(models))
    walls: dict[str, list[float]] = {name: [] for name in models}
    cpus: dict[str, list[float]] = {name: [] for name in models}
    ratios: dict[str, list[float]] = {name: [] for name in models}
    inputs = [torch.from_numpy(clip[None]) for clip in clips]
    with torch.inference_mode():
        for model in models.values():  # warm-up
            model(inputs[0])
        for _ in range(rounds):
            this_round = {}
            for name, model in models.items():
                started, cpu_started = time.perf_counter(), time.process_time()
                for x in inputs:
                    model(x)
                this_round[name] = (time.perf_counter() - started) / len(inputs)
                walls[name].append(this_round[name])
                cpus[name].append((time.process_time() - cpu_started) / len(inputs))
            for name in models:
                ratios[name].append(this_round[name] / this_round[reference])
    return {name: {"latency_ms": 1000 * median(walls[name]),
                   "latency_cpu_ms": 1000 * median(cpus[name]),
                   "latency_ratio_to_" + reference: median(ratios[name])} for name in models}


def _plot_saliency(spectrograms, saliency, picks, test, predictions, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(picks)
    figure, axes = plt.subplots(2, count, figsize=(3.2 * count, 5.2), squeeze=False)
    for column in range(count):
        word = test.class_names[test.labels[picks[column]]]
        guess = test.class_names[int(predictions[column])]
        axes[0, column].imshow(spectrograms[column].numpy(), origin="lower", aspect="auto",
                               cmap="magma")
        axes[0, column].set_title(f"'{word}' ({test.speakers[picks[column]]}) -> {guess}",
                                  fontsize=9)
        axes[1, column].imshow(saliency[column].numpy(), origin="lower", aspect="auto",
                               cmap="viridis")
        axes[1, column].set_xlabel("frame (10 ms)")
    axes[0, 0].set_ylabel("log-mel band")
    axes[1, 0].set_ylabel("|saliency|")
    figure.suptitle("Held-out voices: standardised log-mel (top), saliency of the predicted "
                    "class (bottom)", fontsize=10)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=75)
    plt.close(figure)


def saliency_example(model: nn.Module, test, path: str) -> dict:
    """Saliency over the spectrogram for one test clip of four words; saved as a picture."""
    from bigmodel.explain import explain

    voices = sorted(set(test.speakers.tolist()))
    picks = [int(np.flatnonzero((test.labels == label)
                                & (test.speakers == voices[label % len(voices)]))[0])
             for label in range(min(4, test.num_classes))]  # four words, four voices
    waves = torch.from_numpy(test.waveforms[picks])
    with torch.no_grad():
        spectrograms = model.spectrogram(waves).unsqueeze(1)  # (B, 1, F, T)
    result = explain(model, spectrograms, method="saliency", input_type="image",
                     channels_last=False, labels=test.labels[picks],
                     class_names=list(test.class_names))
    _plot_saliency(spectrograms[:, 0], result.attributions[:, 0].abs(), picks, test,
                   result.predictions, path)
    attributions = result.attributions.abs().sum(dim=(1, 2))  # (B, T): over channel and mel
    # Where the evidence lies in time vs where the word is: fraction of saliency in speech frames.
    energy = spectrograms[:, 0].mean(dim=1)  # (B, T) standardised log-mel energy
    speech = energy > energy.mean(dim=1, keepdim=True)
    inside = (attributions * speech).sum(dim=1) / attributions.sum(dim=1)
    return {"image": str(path), "words": [test.class_names[test.labels[i]] for i in picks],
            "predicted": [test.class_names[int(p)] for p in result.predictions],
            "saliency_in_speech_frames": [round(float(v), 3) for v in inside],
            "speech_frame_fraction": [round(float(v), 3) for v in speech.float().mean(dim=1)]}


def main(argv: list[str] | None = None) -> dict:
    from bigmodel.data.speech import load_speech_folder, synthesize_digits
    from bigmodel.data.speech_synth import DEFAULT_VOICES, DIGITS
    from bigmodel.models import load_model, save_model

    args = parse_args(argv)
    set_threads(args.threads)
    voices = tuple(args.voices.split(",")) if args.voices else DEFAULT_VOICES
    started = time.perf_counter()
    folder = synthesize_digits(args.cache, voices=voices, test_voices=args.test_voices,
                               renditions=args.renditions, seed=args.seed, verbose=True)
    data_seconds = time.perf_counter() - started
    corpus = load_speech_folder(folder, class_names=list(DIGITS))
    train, test = corpus.split("train"), corpus.split("test")
    log(f"corpus {folder}: {len(train)} train clips ({len(set(train.speakers))} voices), "
        f"{len(test)} test clips (held-out voices {sorted(set(test.speakers.tolist()))}); "
        f"{data_seconds:.1f} s to render (or find) the corpus")
    names = args.models.split(",")
    saved = Path(args.out) / "speech_digits_models"
    if args.phase in ("all", "train"):
        for name in names:
            model, row = train_one(name, train, test, args)
            log(f"{name}: held-out accuracy {row['test_accuracy']:.4f}; trained in "
                f"{row['train_seconds']:.0f} s wall, {row['train_cpu_seconds']:.0f} s CPU")
            save_model(model, saved / name, metadata={  # usable by `bigmodel predict DIR x.wav`
                "benchmark_row": row, "class_names": list(corpus.class_names),
                "input": {"kind": "audio", "sample_rate": corpus.sample_rate,
                          "num_samples": corpus.num_samples, "long_clips": "error"}})
    if args.phase == "train":
        return {}
    rows, models = [], {}
    for name in names:
        spec = json.loads((saved / name / "model.json").read_text())
        rows.append(spec["metadata"]["benchmark_row"])
        models[name] = load_model(saved / name).eval()
    rng = np.random.default_rng(args.seed)
    clips = test.waveforms[rng.choice(len(test), size=min(args.latency_clips, len(test)),
                                      replace=False)]
    timing = latencies(models, clips, args.latency_rounds)
    for row in rows:
        row.update(timing[row["model"]])
    best = max(rows, key=lambda r: r["test_accuracy"])
    saliency = saliency_example(models[best["model"]], test, args.saliency_image) \
        if args.saliency_image else None
    result = {"benchmark": "speech_digits", "date": today(), "machine": machine_info(),
              "threads": torch.get_num_threads(), "corpus": str(folder),
              "train_clips": len(train), "test_clips": len(test),
              "train_voices": sorted(set(train.speakers.tolist())),
              "test_voices": sorted(set(test.speakers.tolist())),
              "corpus_seconds": data_seconds, "settings": vars(args), "models": rows,
              "best": best["model"], "best_accuracy": best["test_accuracy"],
              "target_met": best["test_accuracy"] >= 0.95, "saliency": saliency}
    write_json(result, args.out, "speech_digits.json")
    reference = rows[0]["model"]
    print(markdown_table(
        ["model", "parameters", "held-out accuracy", "train wall (s)", "train CPU (s)",
         "latency/clip wall (ms)", "latency/clip CPU (ms)", f"latency / {reference}"],
        [[r["model"], f"{r['parameters']:,}", f"{r['test_accuracy']:.4f}",
          f"{r['train_seconds']:.0f}", f"{r['train_cpu_seconds']:.0f}",
          f"{r['latency_ms']:.2f}", f"{r['latency_cpu_ms']:.2f}",
          f"{r['latency_ratio_to_' + reference]:.2f}"] for r in rows]))
    return result


if __name__ == "__main__":
    main()
