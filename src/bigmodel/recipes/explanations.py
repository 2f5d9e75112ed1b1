"""Explanations of a trained run (``bigmodel explain``): the run's model and examples (its recipe's
test set or given inputs, encoded as in training), attributions, faithfulness, figures.

Written into ``RUN_DIR/explain/<method>/`` (or ``output_dir``)::

    example_<i>.png          input, attribution heatmap, overlay; predicted vs true label
    <method>.json            the numbers: per example prediction, probabilities, attributions,
                             faithfulness (deletion / insertion AUC vs random order, completeness)
    explanation.safetensors  the Explanation (reload with Explanation.load)
    tokens.html              token inputs: each token coloured by its attribution
    attention_<i>.png        method attention: per-head maps of ``layers`` / ``heads`` and the rollout

Everything is computed before the first file is written; each file is written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ExplainRequest:
    """What to explain (``bigmodel explain``'s options).

    Attributes:
        run_dir: the trained run. method: an attribution method of ``bigmodel.explain.methods``.
        index: indices of the examples (in the test set or ``input``).
        input: a ``.npy`` array, ``.wav`` file(s) (speech runs), a ``.txt`` file or a text (text
            runs); None: the recipe's test set.
        target: the class to explain (None: each example's prediction). baseline: a baseline
            name or number. options: method options (``n_steps``, ``layer``, ...).
        curve_steps: deletion / insertion curve points (0: none). layers / heads: attention plots.
        output_dir: where to write (None: ``RUN_DIR/explain/<method>``).
    """

    run_dir: str
    method: str = "integrated_gradients"
    index: list[int] = field(default_factory=lambda: [0])
    input: str | None = None
    target: int | None = None
    baseline: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    curve_steps: int = 20
    layers: list[int] | None = None
    heads: list[int] | None = None
    output_dir: str | None = None
    batch_size: int | None = None
    seed: int = 0
    device: str = "auto"


def _baseline(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def examples(args: ExplainRequest, spec: dict, encoder: Any = None) -> tuple[Any, Any, Any]:
    """``(inputs, labels or None, reference data or None)`` for the chosen indices; ``encoder``:
    a text run's vocabulary or tokenizer (:func:`text_encoder`)."""
    import numpy as np

    from bigmodel.errors import ConfigError

    metadata = spec.get("metadata") or {}
    shape = metadata.get("input") or {}
    labels = None
    if args.input is not None and shape.get("kind") == "audio":  # a speech run: WAV clip(s)
        from bigmodel.recipes.speech_data import load_wav_inputs

        pool, source = load_wav_inputs(args.input, shape)[1], args.input
    elif args.input is not None and encoder is not None \
            and not str(args.input).endswith(".npy"):  # a text run: a .txt file or a text
        from bigmodel.recipes.text_data import read_texts

        texts = read_texts(args.input)[1]
        pool = encoder.encode_batch(texts, max_length=shape.get("max_length"))
        source = args.input if Path(args.input).is_file() else "the text given"
    elif args.input is not None:
        from bigmodel.data.image_input import load_images, prepare_images

        array = load_images(args.input)
        if {"channels", "height", "width"} <= set(shape):  # an image run: as `bigmodel predict`
            array = prepare_images(array, int(shape["channels"]), int(shape["height"]),
                                   int(shape["width"]), source=args.input)
        pool, source = array, args.input
    else:
        splits = _recipe_data(args.run_dir, spec, encoder, with_train=False)
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
        reference = _reference_data(args, pool, spec, encoder)
    return chosen, chosen_labels, reference


def _reference_data(args: ExplainRequest, pool: Any, spec: dict, encoder: Any = None) -> Any:
    """Training examples for the mean / data baselines (the given pool with --input)."""
    if args.input is not None:
        return pool
    return _recipe_data(args.run_dir, spec, encoder, with_train=True).x_train


def _recipe_data(run_dir: str | Path, spec: dict, encoder: Any, with_train: bool) -> Any:
    """The run's data splits as its recipe defines them (a :class:`ClassificationData`): a
    fine-tuning run's from its fine-tuning recipe (same split, seed and text length as
    ``bigmodel finetune``), any other run's from its recipe.

    Raises:
        ConfigError: no (valid) ``recipe.yaml``. DataFileError: the data cannot be read.
    """
    from bigmodel.errors import ConfigError
    from bigmodel.utils.loading import confined_path

    path = confined_path(run_dir, "recipe.yaml", "Run recipe", error=ConfigError, kind=None)
    metadata = spec.get("metadata") or {}
    if "finetuned_from" in metadata:
        from bigmodel.recipes.finetune_schema import load_finetune_recipe
        from bigmodel.recipes.tasks.finetune import prepare_data

        recipe = load_finetune_recipe(path)
        section = recipe.data
        length = (metadata.get("input") or {}).get("max_length")
        if encoder is not None and section.max_length is None and length:
            section = section.model_copy(update={"max_length": int(length)})
        return prepare_data(section, encoder, 0 if recipe.train.seed is None else recipe.train.seed)
    from bigmodel.recipes.classification_data import load_classification_data
    from bigmodel.recipes.schema import load_recipe

    recipe = load_recipe(path)
    return load_classification_data(recipe.data, seed=recipe.train.seed, with_train=with_train,
                                    vocabulary=encoder)


def text_encoder(run_dir: str | Path, input_spec: dict, metadata: dict | None = None) -> Any:
    """A text run's own vocabulary or tokenizer (its texts are encoded as in training), also a
    fine-tuned text model's (``metadata.finetuned_from`` and ``input.tokenizer``); None for
    other runs."""
    finetuned_text = "finetuned_from" in (metadata or {}) and bool(input_spec.get("tokenizer"))
    if input_spec.get("kind") != "text" and not finetuned_text:
        return None
    from bigmodel.recipes.text_data import load_vocabulary

    return load_vocabulary(run_dir, input_spec)


def _vocabulary(run_dir: Path, entry: Any, encoder: Any = None) -> list[str] | None:
    """Token strings by id: a text run's own vocabulary or tokenizer (``encoder``), else
    ``metadata.vocabulary`` as a list, or the name of a saved tokenizer file of any kind
    (:func:`bigmodel.data.tokenizers.load_tokenizer`, confined to the run directory); None when
    there is none."""
    if encoder is not None:
        return list(encoder.itos)
    if isinstance(entry, list):
        return [str(word) for word in entry]
    if not isinstance(entry, str):
        return None
    from bigmodel.data.tokenizers import load_tokenizer

    return list(load_tokenizer(run_dir, entry).itos)


def _pad_id(metadata: dict, encoder: Any) -> int:
    """A token run's padding id: its tokenizer's, else ``metadata.input.pad_id``, else 0."""
    if encoder is not None and isinstance(getattr(encoder, "pad_id", None), int):
        return encoder.pad_id
    value = (metadata.get("input") or {}).get("pad_id", 0)
    return value if isinstance(value, int) else 0


def _trim_padding(inputs: Any, reference: Any, pad_id: int) -> tuple[Any, Any]:
    """Token ids ``(N, L)`` cut after the last column holding a real token of any chosen text
    (``reference`` rows to the same width): texts padded to a run's ``max_length`` would
    otherwise spend most of the attribution work, and most of each deletion curve, on padding."""
    import numpy as np

    real = np.asarray(inputs) != pad_id
    if not real.any():
        return inputs, reference
    width = int(np.nonzero(real.any(axis=0))[0].max()) + 1
    if reference is not None and getattr(reference, "ndim", 0) == 2:
        reference = reference[:, :width]
    return inputs[:, :width], reference


_NOT_CLASSIFIERS = {"seq2seq": "sequence-to-sequence", "language_model": "language-model"}


def _check_task(run_dir: Path, spec: dict) -> None:
    """Refuse a run whose model is not a classifier: every method attributes class scores."""
    from bigmodel.errors import ConfigError
    from bigmodel.explain.methods import METHODS

    task = (spec.get("metadata") or {}).get("task")
    if task in _NOT_CLASSIFIERS:
        raise ConfigError(
            f"explain: {run_dir} is a {_NOT_CLASSIFIERS[task]} run (task {task!r}, model "
            f"'{spec['name']}'); no explanation method applies to it: the methods "
            f"({', '.join(METHODS)}) attribute a classifier's class scores (image, text and "
            "speech classification and fine-tuning runs)")


def check_method(run_dir: str | Path, model: Any, method: str, options: dict) -> None:
    """Refuse ``method`` before any data is read when it does not apply to the run's model, on
    an example input built from the run (:func:`bigmodel.recipes.exports.example_input_for`;
    a speech run's as its spectrogram).

    Raises:
        ConfigError: the method does not apply; the message says why and names the methods that
            do.
    """
    from bigmodel.errors import BigModelError, ConfigError
    from bigmodel.explain import applicable_methods, explain
    from bigmodel.models import read_model_spec
    from bigmodel.recipes.exports import example_input_for

    try:
        probe = example_input_for(Path(run_dir))
    except BigModelError:  # nothing says what the model reads: explain() checks the real inputs
        return
    if isinstance(probe, tuple):  # not a classifier's input (refused by _check_task already)
        return
    shape = (read_model_spec(run_dir).get("metadata") or {}).get("input") or {}
    if shape.get("kind") == "audio":
        from bigmodel.recipes.speech_data import spectrogram_images

        probe = spectrogram_images(model, probe.numpy())
    try:
        if method in applicable_methods(model, probe):
            return
    except BigModelError:  # the model refuses the probe: explain() checks the real inputs
        return
    if method == "gradcam" and options.get("layer") is not None:
        return  # a layer named by the user: explain() checks it
    try:  # explain() refuses it without running it, saying why and which methods apply
        explain(model, probe, method=method, **options)
    except ConfigError as err:
        raise ConfigError(f"{run_dir}: {err}") from None


def explain_run(args: ExplainRequest) -> dict[str, Any]:
    """Compute the explanation, its faithfulness and figures, then write them; returns the JSON
    (with ``output_dir``).

    Raises:
        ConfigError: no such run, bad options, an index out of range. CheckpointError: bad model
        files. DataFileError: the test data or an input file cannot be read.
    """
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
    options = dict(args.options)
    spec = read_model_spec(run_dir)
    metadata = spec.get("metadata") or {}
    _check_task(run_dir, spec)
    class_names = metadata.get("class_names")
    model = load_model(run_dir, device=resolve_device(args.device))
    check_method(run_dir, model, args.method, options)  # before any data is read
    encoder = text_encoder(run_dir, metadata.get("input") or {}, metadata)
    inputs, labels, reference = examples(args, spec, encoder)
    if (metadata.get("input") or {}).get("kind") == "audio":
        from bigmodel.recipes.speech_data import spectrogram_images

        inputs, reference = spectrogram_images(model, inputs), spectrogram_images(model, reference)
    tokens = None
    pad_id = _pad_id(metadata, encoder)
    if getattr(inputs, "dtype", None) is not None and inputs.dtype.kind in "iu" \
            and inputs.ndim == 2:
        inputs, reference = _trim_padding(inputs, reference, pad_id)
        vocabulary = _vocabulary(run_dir, metadata.get("vocabulary"), encoder)
        if vocabulary:
            tokens = [[vocabulary[t] if 0 <= t < len(vocabulary) else str(t) for t in row]
                      for row in inputs.tolist()]
    result = explain(model, inputs, target=args.target, method=args.method,
                     baseline=_baseline(args.baseline), data=reference, labels=labels,
                     batch_size=args.batch_size, seed=args.seed, class_names=class_names,
                     tokens=tokens, pad_id=pad_id, **options)
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


__all__ = ["ExplainRequest", "check_method", "examples", "explain_run", "text_encoder"]
