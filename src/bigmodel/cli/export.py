"""``bigmodel export RUN_DIR --format onnx|safetensors [--out PATH]``.

``onnx``: the model of a run (or of a compressed stage directory) as an ONNX file with a dynamic
batch axis, checked under ONNX Runtime against PyTorch (max abs difference printed; above ``--atol``
is an error); seq2seq runs export their teacher-forced forward (``source``, ``target_input`` ->
``logits``), language models their next-token logits. An int8 stage is written as the int8 ONNX
graph it already is. ``safetensors``: the model as ``model.json`` + ``model.safetensors`` (and the
run's tokenizer files) in ``--out`` (checked by reloading it first).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "export", parents=parents, help="export a trained model to ONNX or safetensors",
        description="Export the model of a run directory (or a 'bigmodel compress' stage) to ONNX "
                    "(dynamic batch, checked under ONNX Runtime) or to safetensors + JSON.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run or compressed-stage directory")
    parser.add_argument("--format", choices=("onnx", "safetensors"), default="onnx")
    parser.add_argument("--out", default=None, metavar="PATH",
                        help="output file (onnx, default RUN_DIR/model.onnx) or directory "
                             "(safetensors, default RUN_DIR/export)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    parser.add_argument("--atol", type=float, default=1e-4,
                        help="largest accepted max abs difference from PyTorch (default 1e-4)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bigmodel.recipes.exports import export_run

    result = export_run(args.run_dir, args.format, args.out, args.opset, args.atol)
    print(f"wrote {result['path']}")
    if result["max_abs_diff"] is not None:
        print(f"ONNX Runtime vs PyTorch max abs difference: {result['max_abs_diff']:.3g}")
    return 0
