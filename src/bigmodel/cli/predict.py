"""``bigmodel predict RUN_DIR INPUT.npy [--top-k K] [--output FILE.csv|FILE.json]``: classify images stored in a ``.npy`` file;
``bigmodel predict RUN_DIR clip.wav`` (or a folder of ``.wav`` files): recognise spoken words with a
speech run (prints the word and its probability per clip; clips are converted as in training, see
:func:`bigmodel.data.audio.load_clip`).

Input: a NumPy array of images shaped like the training data, one image or a batch:
``(H, W)``, ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``. Integer pixels (uint8 0..255, as
``load_data`` returns them) are scaled by 1/255 as in training; floating-point pixels must already be
in [0, 1]. Output: one line per image, the top-k classes with their softmax probability; with
``--output`` a CSV or JSON file instead (:mod:`bigmodel.recipes.prediction_files`).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "predict", parents=parents, help="classify images in a .npy file with a trained run",
        description="Print the predicted class and its probability for each image of a .npy file "
                    "(uint8 0..255 or float 0..1; (N,H,W), (N,H,W,C), (N,C,H,W) or one image). "
                    "Classification runs only: use 'bigmodel translate' for a seq2seq run and "
                    "'bigmodel generate' for a language-model run.")
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a directory written by 'bigmodel train' or 'bigmodel finetune', or "
                             "a stage of 'bigmodel compress' (RUN_DIR/compressed/int8, .../pruned)")
    parser.add_argument("input", metavar="INPUT",
                        help="images as a NumPy .npy file; for a speech run a .wav file or a "
                             "folder of .wav files; for a text run a text, or a .txt file with "
                             "one text per line")
    parser.add_argument("--long-clips", choices=("error", "trim"), default=None,
                        help="speech runs: a clip longer than the training clips is an error, or "
                             "trimmed to its loudest window (default: the run's recipe setting)")
    parser.add_argument("--output", metavar="FILE", default=None,
                        help="write the predictions to FILE instead of printing them, one row per "
                             "input (input, class, class_index, probability, then the other top-k "
                             "classes); the format follows the suffix: .csv or .json")
    parser.add_argument("--top-k", type=int, default=1, metavar="K",
                        help="show the K most probable classes per image (default 1)")
    parser.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bigmodel.recipes.prediction_files import check_output, write_predictions
    from bigmodel.recipes.runs import predict_run

    output = getattr(args, "output", None)
    if output is not None:
        check_output(output)  # a wrong suffix is refused before the model is loaded
    kind, predictions = predict_run(args.run_dir, args.input, args.top_k, args.batch_size,
                                    args.device, args.long_clips)
    if output is not None:
        texts = None
        if kind == "text":  # the file shows each text beside its label (file:line or "text")
            from bigmodel.recipes.text_data import read_texts

            texts = read_texts(args.input)[1]
        path = write_predictions(output, predictions, kind, args.run_dir, texts)
        print(f"wrote {len(predictions)} prediction{'s' if len(predictions) != 1 else ''} to "
              f"{path}")
        return 0
    for prediction in predictions:
        if kind == "image":
            ranked = " | ".join(f"{name} (class {index}) {p:.4f}"
                                for name, index, p in prediction.classes)
        else:
            ranked = " | ".join(f"{name} {p:.4f}" for name, _, p in prediction.classes)
        print(f"{prediction.label}: {ranked}")
    return 0
