"""``bigmodel explain RUN_DIR --method M --index 0 3 17``: explain a trained run's predictions.

The model comes from the run's ``model.json`` + ``model.safetensors``; the examples from its recipe's
test set (or ``--input FILE.npy``; for a speech run ``--input`` is a ``.wav`` file or a folder of them,
and the attributions are over the model's log-mel spectrogram; for a text run a ``.txt`` file, one
text per line, or a text itself, encoded with the run's vocabulary or tokenizer; token attributions
are shown on the run's own token strings, WordPiece pieces included). Parses and prints; the work
and the files it writes are :func:`bigmodel.recipes.explanations.explain_run`'s.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers, parents) -> None:
    from bigmodel.explain.methods import METHODS

    parser = subparsers.add_parser(
        "explain", parents=parents, help="explain a trained run's predictions (attribution maps)",
        description="Attribute a trained classifier's predictions on test examples to their "
                    "inputs and write one PNG per example, a JSON of the numbers (with "
                    "faithfulness scores) and, for text, an HTML page of coloured tokens. "
                    "Image, text and speech classification and fine-tuning runs take every "
                    "gradient and perturbation method (integrated_gradients, saliency, "
                    "gradient_shap, deep_shap, kernel_shap, lime); gradcam needs a convolutional "
                    "layer (CNN, RCNN, ViT, speech CNN / CRNN), attention needs attention layers "
                    "(ViT, the Transformer and fine-tuned MiniLM text classifiers, speech "
                    "Transformer). "
                    "Sequence-to-sequence and language-model runs have no method. A method that "
                    "does not apply is refused before any work, naming those that do.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by 'bigmodel train'")
    parser.add_argument("--method", default="integrated_gradients", choices=list(METHODS),
                        help="attribution method (default integrated_gradients)")
    parser.add_argument("--index", type=int, nargs="+", default=[0], metavar="I",
                        help="test-set (or --input) indices of the examples to explain (default 0)")
    parser.add_argument("--input", default=None, metavar="FILE",
                        help="explain these examples instead of the test set: a .npy array; for a "
                             "speech run .wav file(s); for a text run a .txt file (one text per "
                             "line) or a text")
    parser.add_argument("--target", type=int, default=None,
                        help="class to explain (default: each example's predicted class)")
    parser.add_argument("--baseline", default=None,
                        help="black, white, blurred, mean, zeros, pad, uniform, data or a number")
    parser.add_argument("--steps", type=int, default=None, help="integrated_gradients: n_steps (50)")
    parser.add_argument("--samples", type=int, default=None,
                        help="kernel_shap / lime / gradient_shap: n_samples")
    parser.add_argument("--segmentation", default=None, choices=["auto", "slic", "patches", "pixels"],
                        help="kernel_shap / lime: image features")
    parser.add_argument("--segments", type=int, default=None, help="slic: number of superpixels")
    parser.add_argument("--patch-size", type=int, default=None, help="patches: side in pixels")
    parser.add_argument("--layer", default=None, help="gradcam: layer name (default: found)")
    parser.add_argument("--query", default=None,
                        help="attention: 'mean' or the index of the query token (default: "
                             "the class token the model prepends and reads, else mean)")
    parser.add_argument("--layers", type=int, nargs="+", default=None,
                        help="attention: layers to plot (and roll out); default all")
    parser.add_argument("--heads", type=int, nargs="+", default=None,
                        help="attention: heads to plot; default the first 8")
    parser.add_argument("--curve-steps", type=int, default=20,
                        help="deletion / insertion curve points after 0 (0 skips the curves)")
    parser.add_argument("--output-dir", default=None, metavar="DIR",
                        help="where to write (default RUN_DIR/explain/<method>)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="rows per forward pass (default: automatic, 32..2048)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling methods")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.set_defaults(func=run)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """Method options from the flags that were given and apply to ``args.method``."""
    from bigmodel.errors import ConfigError
    from bigmodel.explain.methods import METHODS

    accepted = METHODS[args.method].defaults
    given = {"n_steps": args.steps, "n_samples": args.samples, "segmentation": args.segmentation,
             "n_segments": args.segments, "patch_size": args.patch_size, "layer": args.layer,
             "layers": args.layers}
    flags = {"n_steps": "--steps", "n_samples": "--samples", "segmentation": "--segmentation",
             "n_segments": "--segments", "patch_size": "--patch-size", "layer": "--layer",
             "layers": "--layers"}
    options = {}
    for key, value in given.items():
        if value is None:
            continue
        if key not in accepted:
            raise ConfigError(f"{flags[key]} does not apply to --method {args.method}")
        options[key] = value
    if args.query is not None:
        if args.method != "attention":
            raise ConfigError(f"--query does not apply to --method {args.method}")
        options["query"] = "mean" if args.query == "mean" else _int(args.query, "--query")
    return options


def _int(text: str, flag: str) -> int:
    from bigmodel.errors import ConfigError

    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{flag} must be 'mean' or an integer; received {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from bigmodel.recipes.explanations import ExplainRequest, explain_run

    request = ExplainRequest(
        run_dir=args.run_dir, method=args.method, index=list(args.index), input=args.input,
        target=args.target, baseline=args.baseline, options=_options(args),
        curve_steps=args.curve_steps, layers=args.layers, heads=args.heads,
        output_dir=args.output_dir, batch_size=args.batch_size, seed=args.seed, device=args.device)
    numbers = explain_run(request)
    for entry in numbers["examples"]:
        line = (f"example {entry['index']}: predicted {entry.get('predicted_name', entry['predicted'])}"
                f" ({entry['probability_predicted']:.3f})")
        if "label" in entry:
            line += f", true {entry.get('label_name', entry['label'])}"
        if "deletion_auc" in entry:
            line += (f"; deletion AUC {entry['deletion_auc']:.3f} vs random "
                     f"{entry['random_deletion_auc']:.3f}")
        if "completeness_error" in entry:
            line += f"; completeness error {100 * entry['completeness_error']:.2f}%"
        print(line)
    print(f"{numbers['method']}: {numbers['timings']['per_example_s']:.3f} s per example")
    print(f"written to {numbers['output_dir']}")
    return 0
