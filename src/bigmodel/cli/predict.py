"""``bigmodel predict RUN_DIR INPUT.npy [--top-k K]``: classify images stored in a ``.npy`` file;
``bigmodel predict RUN_DIR clip.wav`` (or a folder of ``.wav`` files): recognise spoken words with a
speech run (prints the word and its probability per clip; clips are converted as in training, see
:func:`bigmodel.data.audio.load_clip`).

Input: a NumPy array of images shaped like the training data, one image or a batch:
``(H, W)``, ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``. Integer pixels (uint8 0..255, as
``load_data`` returns them) are scaled by 1/255 as in training; floating-point pixels must already be
in [0, 1]. Output: one line per image, the top-k classes with their softmax probability.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bigmodel.data.image_input import load_images, prepare_images


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "predict", parents=parents, help="classify images in a .npy file with a trained run",
        description="Print the predicted class and its probability for each image of a .npy file "
                    "(uint8 0..255 or float 0..1; (N,H,W), (N,H,W,C), (N,C,H,W) or one image).")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by 'bigmodel train'")
    parser.add_argument("input", metavar="INPUT",
                        help="images as a NumPy .npy file; for a speech run a .wav file or a "
                             "folder of .wav files; for a text run a text, or a .txt file with "
                             "one text per line")
    parser.add_argument("--long-clips", choices=("error", "trim"), default=None,
                        help="speech runs: a clip longer than the training clips is an error, or "
                             "trimmed to its loudest window (default: the run's recipe setting)")
    parser.add_argument("--top-k", type=int, default=1, metavar="K",
                        help="show the K most probable classes per image (default 1)")
    parser.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from bigmodel.engine.resolve import resolve_device
    from bigmodel.errors import ConfigError
    from bigmodel.models import load_model, read_model_spec
    from bigmodel.recipes.inference import predict_logits

    if args.top_k < 1:
        raise ConfigError(f"--top-k must be at least 1; received {args.top_k}")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1; received {args.batch_size}")
    spec = read_model_spec(args.run_dir)
    metadata = spec.get("metadata") or {}
    shape = metadata.get("input") or {}
    if shape.get("kind") == "audio" or Path(args.input).suffix.lower() == ".wav":
        return _run_audio(args, spec, metadata, shape)
    if shape.get("kind") == "text":
        return _run_text(args, metadata, shape)
    if "finetuned_from" in metadata and shape.get("tokenizer"):
        return _run_finetuned_text(args, metadata, shape)
    config = spec["config"]
    size = config.get("image_size", 28)
    height, width = (size, size) if isinstance(size, int) else size
    channels = int(shape.get("channels", config.get("in_channels", 1)))
    height, width = int(shape.get("height", height)), int(shape.get("width", width))
    images = prepare_images(load_images(args.input), channels, height, width, source=args.input)
    model = load_model(args.run_dir, device=resolve_device(args.device))
    probabilities = torch.softmax(predict_logits(model, images, args.batch_size), dim=1)
    num_classes = probabilities.shape[1]
    if args.top_k > num_classes:
        raise ConfigError(f"--top-k {args.top_k} exceeds the model's {num_classes} classes")
    names = list(metadata.get("class_names") or [str(i) for i in range(num_classes)])
    top_p, top_i = probabilities.topk(args.top_k, dim=1)
    for row, (ps, ids) in enumerate(zip(top_p.tolist(), top_i.tolist())):
        ranked = " | ".join(f"{names[i]} (class {i}) {p:.4f}" for p, i in zip(ps, ids))
        print(f"{row}: {ranked}")
    return 0


def _run_audio(args: argparse.Namespace, spec: dict, metadata: dict, shape: dict) -> int:
    """Speech runs: one line per clip, ``PATH: WORD PROBABILITY`` (top-k joined by ' | ')."""

    from bigmodel.errors import ConfigError
    from bigmodel.recipes.speech_data import load_wav_inputs

    if shape.get("kind") != "audio":
        raise ConfigError(f"{args.input} is audio, but the model of {args.run_dir} was not trained "
                          "on audio (its model.json has no audio input); pass a .npy array of "
                          "images")
    files, clips = load_wav_inputs(args.input, shape, args.long_clips)
    return _print_ranked(args, metadata, [str(file) for file in files], clips)


def _run_text(args: argparse.Namespace, metadata: dict, shape: dict) -> int:
    """Text runs: INPUT is a text or a ``.txt`` file (one text per line); one line per text,
    ``LABEL: CLASS PROBABILITY`` (top-k joined by ' | ')."""

    from bigmodel.recipes.text_data import load_vocabulary, read_texts

    labels, texts = read_texts(args.input)
    vocabulary = load_vocabulary(args.run_dir, shape)
    ids = vocabulary.encode_batch(texts, max_length=shape.get("max_length"))
    return _print_ranked(args, metadata, labels, ids)


def _run_finetuned_text(args: argparse.Namespace, metadata: dict, shape: dict) -> int:
    """Text runs of ``bigmodel finetune`` (a pretrained encoder): texts are encoded with the
    WordPiece tokenizer saved in the run, cut to the run's ``max_length``.

    Raises:
        DataFileError: the run's tokenizer file is missing.
    """
    from bigmodel.errors import DataFileError
    from bigmodel.recipes.text_data import read_texts
    from bigmodel.transfer.pretrained import WordPieceTokenizer

    path = Path(args.run_dir) / shape["tokenizer"]
    if not path.is_file():
        raise DataFileError(f"{path} is missing: the fine-tuned text model of {args.run_dir} "
                            "needs the tokenizer it was trained with")
    labels, texts = read_texts(args.input)
    ids = WordPieceTokenizer(path).encode_batch(texts, int(shape.get("max_length") or 128))
    return _print_ranked(args, metadata, labels, ids)


def _print_ranked(args: argparse.Namespace, metadata: dict, labels: list[str], inputs) -> int:
    """Run the model on ``inputs`` and print ``LABEL: CLASS PROBABILITY`` per row (top-k joined
    by ' | ').

    Raises:
        ConfigError: ``--top-k`` larger than the number of classes.
    """
    import torch

    from bigmodel.engine.resolve import resolve_device
    from bigmodel.errors import ConfigError
    from bigmodel.models import load_model
    from bigmodel.recipes.inference import predict_logits

    model = load_model(args.run_dir, device=resolve_device(args.device))
    probabilities = torch.softmax(predict_logits(model, inputs, args.batch_size), dim=1)
    num_classes = probabilities.shape[1]
    if args.top_k > num_classes:
        raise ConfigError(f"--top-k {args.top_k} exceeds the model's {num_classes} classes")
    names = list(metadata.get("class_names") or [str(i) for i in range(num_classes)])
    top_p, top_i = probabilities.topk(args.top_k, dim=1)
    for label, ps, ids in zip(labels, top_p.tolist(), top_i.tolist()):
        print(f"{label}: " + " | ".join(f"{names[i]} {p:.4f}" for p, i in zip(ps, ids)))
    return 0
