"""``bigmodel compress RUN_DIR [--prune P] [--quantize int8] [--distill-from TEACHER_RUN]``.

Steps run in this order, each on the previous one's result:

1. pruning (``--prune P``): structured (default) removes channels until ``P`` of the multiply-adds
   are gone; ``--prune-mode unstructured`` zeroes ``P`` of the weights by magnitude. Then
   ``--fine-tune-epochs`` of training (masks kept) recover the accuracy.
2. distillation (``--distill-from``): the fine-tuning (or, without pruning, extra training) learns
   from the teacher's softened outputs as well as the labels.
3. int8 quantization (``--quantize int8``): last, so it quantizes the final weights (static with
   calibration images for CNNs, dynamic otherwise; run by ONNX Runtime). Layers no int8 kernel
   takes (a GRU) are refused before any work, naming them; ``--keep-fp32 LAYER[,LAYER]`` keeps them.

Every stage is saved under ``--out`` (default ``RUN_DIR/compressed``) and compared with the
original in ``report.md`` + ``compression.png`` (accuracy against size and latency) +
``results.json``; all or nothing (a failure leaves no ``--out``). Each stage folder is a model
directory: ``bigmodel evaluate RUN_DIR/compressed/int8`` and ``bigmodel predict
RUN_DIR/compressed/pruned INPUT`` run it.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "compress", parents=parents, help="prune, distill and quantize a trained run",
        description="Prune (with fine-tuning), distill from a teacher run and quantize to int8 the "
                    "model of RUN_DIR; write every stage and a size/speed/accuracy report.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by 'bigmodel train'")
    parser.add_argument("--prune", type=float, default=None, metavar="P",
                        help="fraction in [0, 1): of the multiply-adds (structured) or of the "
                             "weights (unstructured) to remove")
    parser.add_argument("--prune-mode", choices=("structured", "unstructured"), default="structured")
    parser.add_argument("--channel-multiple", type=int, default=1, metavar="K",
                        help="structured pruning keeps a multiple of K channels per layer (8 "
                             "suits ONNX Runtime's and oneDNN's CPU kernels)")
    parser.add_argument("--quantize", choices=("int8",), default=None, help="quantize last")
    parser.add_argument("--keep-fp32", type=_layer_names, default=(), metavar="LAYER[,LAYER]",
                        help="int8: layers to leave in fp32 (their weights stored as int8), for "
                             "layers no int8 kernel takes, such as a GRU (e.g. --keep-fp32 rnn); "
                             "compress names them when it refuses")
    parser.add_argument("--distill-from", metavar="TEACHER_RUN", default=None,
                        help="run directory of a teacher model for the same classes")
    parser.add_argument("--fine-tune-epochs", type=int, default=1, metavar="N",
                        help="training epochs after pruning / for distillation (default 1)")
    parser.add_argument("--lr", type=float, default=None, help="fine-tuning learning rate "
                        "(default: the recipe's; for a LoRA run of 'bigmodel finetune', whose "
                        "rate was for the adapters, at most 1e-4, since every weight trains here)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="fine-tuning batch size (default: the recipe's)")
    parser.add_argument("--temperature", type=float, default=2.0, help="distillation temperature")
    parser.add_argument("--alpha", type=float, default=0.5,
                        help="weight of the distillation term against the label loss")
    parser.add_argument("--calibration-size", type=int, default=512,
                        help="training images used to calibrate static int8 (default 512)")
    parser.add_argument("--data-path", default=None, help="directory of the data set's IDX files")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for the speed measurements, PyTorch and ONNX Runtime "
                             "alike (default 1: stable figures on a shared machine)")
    parser.add_argument("--speed-rounds", type=int, default=5, metavar="N",
                        help="interleaved timing rounds; the report keeps medians (default 5)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="where stages and report go (default RUN_DIR/compressed)")
    parser.set_defaults(func=run)


def _layer_names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected layer names separated by commas, such as "
                                         f"'rnn' or 'rnn,encoder.0'; received {text!r}")
    return names


def run(args: argparse.Namespace) -> int:
    from bigmodel.compress.report import markdown_table
    from bigmodel.recipes.compress import CompressOptions, compress_run

    options = CompressOptions(**{key: value for key, value in vars(args).items()
                                 if key in CompressOptions.__dataclass_fields__})
    result = compress_run(options)
    if result.get("fine_tune_lr"):
        lr, source = result["fine_tune_lr"]
        print(f"fine-tuning lr: {lr:g} ({source})")
    print(markdown_table(result["stages"], result["unit"]), end="")
    print(f"report: {result['out'] / 'report.md'}")
    return 0
