"""``bigmodel explain RUN_DIR --method M --index 0 3 17``: explain a trained run's predictions.

The model comes from the run's ``model.json`` + ``model.safetensors``; the examples from its recipe's
test set (or ``--input FILE.npy``; for a speech run ``--input`` is a ``.wav`` file or a folder of them,
and the attributions are over the model's log-mel spectrogram; for a text run a ``.txt`` file, one
text per line, or a text itself, encoded with the run's vocabulary or tokenizer; token attributions
are shown on the run's own token strings, WordPiece pieces included). Written into ``RUN_DIR/explain/<method>/`` (or ``--output-dir``)::

    example_<i>.png          input, attribution heatmap, overlay; predicted vs true label
    <method>.json            the numbers: per example prediction, probabilities, attributions,
                             faithfulness (deletion / insertion AUC vs random order, completeness)
    explanation.safetensors  the Explanation (reload with Explanation.load)
    tokens.html              token inputs: each token coloured by its attribution
    attention_<i>.png        method attention: per-head maps of --layers / --heads and the rollout

Everything is computed before the first file is written; each file is written atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(subparsers, parents) -> None:
    from bigmodel.explain.methods import METHODS

    parser = subparsers.add_parser(
        "explain", parents=parents, help="explain a trained run's predictions (attribution maps)",
        description="Attribute a trained model's predictions on test examples to their inputs and "
                    "write one PNG per example, a JSON of the numbers (with faithfulness scores) "
                    "and, for text, an HTML page of coloured tokens.")
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
                        help="attention: 'mean' or the index of the class token (e.g. 0)")
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


def _baseline(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _examples(args: argparse.Namespace, spec: dict, encoder: Any = None) -> tuple[Any, Any, Any]:
    """``(inputs, labels or None, reference data or None)`` for the chosen indices; ``encoder``:
    a text run's vocabulary or tokenizer (:func:`_text_encoder`)."""
    import numpy as np

    from bigmodel.errors import ConfigError

    metadata = spec.get("metadata") or {}
    shape = metadata.get("input") or {}
    labels = None
    if args.input is not None and shape.get("kind") == "audio":  # a speech run: WAV clip(s)
        from bigmodel.recipes.speech_data import load_wav_inputs

        pool, source = load_wav_inputs(args.input, shape)[1], args.input
    elif args.input is not None and shape.get("kind") == "text" \
            and not str(args.input).endswith(".npy"):
        from bigmodel.recipes.text_data import read_texts

        texts = read_texts(args.input)[1]
        pool = encoder.encode_batch(texts, max_length=shape.get("max_length"))
        source = args.input if Path(args.input).is_file() else "the text given"
    elif args.input is not None:
        from bigmodel.cli.predict import load_images, prepare_images

        array = load_images(args.input)
        if shape:  # an image run: same checks and scaling as `bigmodel predict`
            array = prepare_images(array, int(shape["channels"]), int(shape["height"]),
                                   int(shape["width"]), source=args.input)
        pool, source = array, args.input
    else:
        from bigmodel.errors import ConfigError
        from bigmodel.recipes.classification_data import load_classification_data
        from bigmodel.recipes.schema import load_recipe
        from bigmodel.utils.loading import confined_path

        recipe_path = confined_path(
            args.run_dir, "recipe.yaml", "Run recipe", error=ConfigError, kind=None)
        recipe = load_recipe(recipe_path)
        splits = load_classification_data(recipe.data, seed=recipe.train.seed, with_train=False,
                             vocabulary=encoder)
        pool, labels, source = splits.x_test, splits.y_test, "the test set"
    count = len(pool)
    bad = [i for i in args.index if not 0 <= i < count]
    if bad:
        raise ConfigError(f"--index {bad[0]} is out of range: {source} has {count} examples "
                          f"(0..{count - 1})")
    chosen = np.asarray(pool)[args.index]
    chosen_labels = None if labels is None else np.asarray(labels)[args.index]
    reference = None
    if args.baseline in ("mean", "data"):
        reference = _reference_data(args, pool, encoder)
    return chosen, chosen_labels, reference


def _reference_data(args: argparse.Namespace, pool: Any, encoder: Any = None) -> Any:
    """Training examples for the mean / data baselines (the given pool with --input)."""
    if args.input is not None:
        return pool
    from bigmodel.errors import ConfigError
    from bigmodel.recipes.classification_data import load_classification_data
    from bigmodel.recipes.schema import load_recipe
    from bigmodel.utils.loading import confined_path

    recipe = load_recipe(confined_path(
        args.run_dir, "recipe.yaml", "Run recipe", error=ConfigError, kind=None))
    return load_classification_data(recipe.data, seed=recipe.train.seed, with_train=True,
                       vocabulary=encoder).x_train


def _text_encoder(run_dir: str | Path, input_spec: dict) -> Any:
    """A text run's own vocabulary or tokenizer (its texts are encoded as in training); None for
    other runs."""
    if input_spec.get("kind") != "text":
        return None
    from bigmodel.recipes.text_data import load_vocabulary

    return load_vocabulary(run_dir, input_spec)


def _vocabulary(run_dir: Path, entry: Any, encoder: Any = None) -> list[str] | None:
    """Token strings by id: a text run's own vocabulary or tokenizer (``encoder``), else
    ``metadata.vocabulary`` as a list, or the name of a vocabulary file
    (``bigmodel.data.text.WordVocabulary``) in the run directory; None when there is none."""
    if encoder is not None:
        return list(encoder.itos)
    if isinstance(entry, list):
        return [str(word) for word in entry]
    if not isinstance(entry, str):
        return None
    from bigmodel.data.text import WordVocabulary
    from bigmodel.errors import DataFileError
    from bigmodel.utils.loading import confined_path

    return list(WordVocabulary.load(confined_path(run_dir, entry, "Vocabulary", error=DataFileError,
                                                  kind=None)).itos)


def explain_run(args: argparse.Namespace) -> dict[str, Any]:
    """Compute the explanation, its faithfulness and figures, then write them; returns the JSON."""
    from bigmodel.engine.resolve import resolve_device
    from bigmodel.errors import ConfigError
    from bigmodel.explain import explain
    from bigmodel.explain.metrics import completeness, deletion_insertion
    from bigmodel.explain.plots import plot_attention, plot_curves, save_figure, tokens_html
    from bigmodel.models import load_model, read_model_spec
    from bigmodel.utils.io import atomic_write_json, atomic_write_text

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"Run directory not found: {run_dir}")
    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1; received {args.batch_size}")
    if args.curve_steps < 0:
        raise ConfigError(f"--curve-steps must be >= 0; received {args.curve_steps}")
    options = _options(args)
    spec = read_model_spec(run_dir)
    metadata = spec.get("metadata") or {}
    class_names = metadata.get("class_names")
    encoder = _text_encoder(run_dir, metadata.get("input") or {})
    inputs, labels, reference = _examples(args, spec, encoder)
    model = load_model(run_dir, device=resolve_device(args.device))
    if (metadata.get("input") or {}).get("kind") == "audio":
        from bigmodel.recipes.speech_data import spectrogram_images

        inputs, reference = spectrogram_images(model, inputs), spectrogram_images(model, reference)
    tokens = None
    if getattr(inputs, "dtype", None) is not None and inputs.dtype.kind in "iu" \
            and inputs.ndim == 2:
        vocabulary = _vocabulary(run_dir, metadata.get("vocabulary"), encoder)
        if vocabulary:
            tokens = [[vocabulary[t] if 0 <= t < len(vocabulary) else str(t) for t in row]
                      for row in inputs.tolist()]
    result = explain(model, inputs, target=args.target, method=args.method,
                     baseline=_baseline(args.baseline), data=reference, labels=labels,
                     batch_size=args.batch_size, seed=args.seed, class_names=class_names,
                     tokens=tokens, **options)
    numbers = result.to_dict()
    numbers["run_dir"] = str(run_dir)
    numbers["indices"] = list(args.index)
    figures: dict[str, Any] = {}
    curves = None
    if args.curve_steps > 0:
        curves = deletion_insertion(model, result, steps=args.curve_steps, seed=args.seed,
                                    batch_size=result.options["batch_size"])
        numbers["faithfulness"] = curves.summary()
        for i, entry in enumerate(numbers["examples"]):
            entry["deletion_auc"] = float(curves.deletion_auc[i])
            entry["random_deletion_auc"] = float(curves.random_deletion_auc[i])
            entry["insertion_auc"] = float(curves.insertion_auc[i])
            entry["random_insertion_auc"] = float(curves.random_insertion_auc[i])
        figures["faithfulness_curves.png"] = plot_curves(
            curves, title=f"{args.method}: deletion / insertion vs random order")
    if result.baselines is not None:
        check = completeness(model, result, result.options["batch_size"])
        numbers["completeness_error"] = check.mean_relative_error
        for i, entry in enumerate(numbers["examples"]):
            entry["completeness_error"] = float(check.relative_error[i])
            entry["output_difference"] = float(check.output_difference[i])
    for i, index in enumerate(args.index):
        entry = numbers["examples"][i]
        entry["index"] = index
        figures[f"example_{index}.png"] = result.plot(i, title=f"example {index} - "
                                                      f"{args.method}")
        if args.method == "attention":
            figures[f"attention_{index}.png"] = plot_attention(result, i, args.layers, args.heads)
    page = None
    if result.input_type == "tokens":
        page = tokens_html(result, list(range(len(result))), class_names,
                           title=f"{args.method} attributions - {run_dir.name}")

    out_dir = Path(args.output_dir) if args.output_dir else run_dir / "explain" / args.method
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, figure in figures.items():
        save_figure(figure, out_dir / name)
    if page is not None:
        atomic_write_text(out_dir / "tokens.html", page)
    result.save(out_dir / "explanation.safetensors")
    atomic_write_json(out_dir / f"{args.method}.json", numbers)
    numbers["output_dir"] = str(out_dir)
    return numbers


def run(args: argparse.Namespace) -> int:
    numbers = explain_run(args)
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
