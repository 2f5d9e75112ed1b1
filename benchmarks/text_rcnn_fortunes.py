"""TextRCNN (Lai et al., 2015) vs TF-IDF + logistic regression on the fortunes categories.

Both models see the same seeded per-category split of ``bigmodel.data.fortunes``. The baseline's
settings (word or word+bigram features, regularization C) are chosen by 3-fold cross-validation on
the training texts only, so neither side looks at the test set before the final measurement.

    .venv/bin/python benchmarks/text_rcnn_fortunes.py [--recipe configs/fortunes_text_rcnn.yaml]
        [--set train.epochs=3 ...] [--seeds 0 1 2] [--run-dir runs/fortunes-text-rcnn]
        [--verbose] [--threads 1]

Pretrained word vectors: ``--recipe configs/fortunes_text_rcnn_minilm.yaml`` (all-MiniLM-L6-v2's
WordPiece table, frozen), or ``--recipe configs/fortunes_text_rcnn_skipgram.yaml`` (a recipe with
``data.skipgram``: skip-gram vectors trained first on the other fortunes files + the training
texts, never the test texts, as ``bigmodel train`` does).

Prints a Markdown table (test accuracy of each, training seconds) and, with ``--run-dir``, saves
the first seed's TextRCNN (``model.json`` + ``model.safetensors``), its ``vocabulary.json`` (or
``tokenizer.json``) and ``recipe.yaml``: a run directory ``bigmodel evaluate`` / ``predict`` read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]


def trim_collate(batch):
    """Stack ``(ids, label)`` pairs and cut the columns that are padding in every row."""
    ids = torch.stack([item[0] for item in batch])
    labels = torch.stack([item[1] for item in batch])
    width = int((ids != 0).sum(dim=1).max())
    return ids[:, :width], labels


def encode_split(recipe):
    """The split, its encoder and encoded texts, and skip-gram vectors for the encoder's rows when
    the recipe has ``data.skipgram`` (else None): the same code path as ``bigmodel train``."""
    from bigmodel.data.fortunes import DEFAULT_CATEGORIES, load_fortunes
    from bigmodel.recipes.text_data import build_text_encoder, skipgram_vocabulary

    data = recipe.data
    split = load_fortunes(data.categories or DEFAULT_CATEGORIES, path=data.path,
                          seed=0 if recipe.train.seed is None else recipe.train.seed)
    vectors = None
    if data.skipgram is not None:
        started = time.process_time()
        vocab, vectors = skipgram_vocabulary(data, split)
        print(f"skip-gram vectors: {len(vocab):,} words, {data.skipgram.epochs} epochs, "
              f"{time.process_time() - started:.0f} s CPU", flush=True)
    else:
        # data.tokenizer: a word vocabulary of the training texts, or a pretrained source's tokenizer
        vocab = build_text_encoder(data, split.train_texts)
    x_train = vocab.encode_batch(split.train_texts, max_length=data.max_length)
    x_test = vocab.encode_batch(split.test_texts, max_length=data.max_length)
    return split, vocab, x_train, x_test, vectors


def train_text_rcnn(recipe, split, vocab, x_train, x_test, seed: int, verbose: int = 0,
                    vectors=None):
    from bigmodel.engine import Trainer
    from bigmodel.models import create_model
    from bigmodel.recipes.training import recipe_optimizer

    train = recipe.train
    torch.manual_seed(seed)
    model = create_model(recipe.model.name, **{"vocab_size": len(vocab),
                                               "num_classes": split.num_classes,
                                               **recipe.model.overrides})
    if vectors is not None:
        from bigmodel.models.word_vectors import copy_embeddings

        model.embeddings_source = copy_embeddings(model.embedding, vectors, "TextRCNN")
    trainer = Trainer(model, loss=nn.CrossEntropyLoss(), lr=train.lr, metrics=["accuracy"],
                      optimizer=recipe_optimizer(train, model.parameters()),
                      grad_clip_norm=train.grad_clip_norm, seed=seed, verbose=verbose,
                      scheduler=train.scheduler.engine_spec() if train.scheduler else None)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x_train),
                                             torch.from_numpy(split.train_labels))
    loader = torch.utils.data.DataLoader(dataset, batch_size=train.batch_size, shuffle=True,
                                         collate_fn=trim_collate,
                                         generator=torch.Generator().manual_seed(seed))
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer.fit(loader, epochs=train.epochs)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(trim_collate(list(zip(ids, ids[:, 0])))[0])
                            for ids in torch.from_numpy(x_test).split(256)])
    accuracy = float((logits.argmax(1).numpy() == split.test_labels).mean())
    return model, accuracy, seconds, cpu_seconds


def tfidf_baseline(split, seed: int):
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GridSearchCV, StratifiedKFold
        from sklearn.pipeline import Pipeline
    except ImportError:
        sys.exit("benchmarks/text_rcnn_fortunes.py needs scikit-learn for the baseline: "
                 ".venv/bin/pip install -c constraints.txt scikit-learn")
    from bigmodel.data.text import tokenize

    pipeline = Pipeline([
        ("tfidf", TfidfVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None,
                                  sublinear_tf=True)),
        # saga: the multinomial logistic loss, fast on sparse TF-IDF (lbfgs is ~100x slower here)
        ("logreg", LogisticRegression(solver="saga", tol=1e-3, max_iter=3000)),
    ])
    grid = {"tfidf__ngram_range": [(1, 1), (1, 2)], "tfidf__min_df": [1, 2],
            "logreg__C": [1.0, 3.0, 10.0, 30.0, 100.0]}
    search = GridSearchCV(pipeline, grid, cv=StratifiedKFold(3, shuffle=True, random_state=seed),
                          n_jobs=1)
    started = time.perf_counter()
    search.fit(split.train_texts, split.train_labels)
    seconds = time.perf_counter() - started
    accuracy = float((search.predict(split.test_texts) == split.test_labels).mean())
    return accuracy, seconds, search.best_params_


def main(argv=None) -> int:
    from bigmodel.recipes.schema import load_recipe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "configs" / "fortunes_text_rcnn.yaml"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="training seeds of the TextRCNN (default: the recipe's seed)")
    parser.add_argument("--run-dir", default=None, help="save the first seed's model + vocabulary")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--verbose", action="store_true",
                        help="one line per epoch (training loss and accuracy only)")
    parser.add_argument("--skip-baseline", action="store_true",
                        help="TextRCNN only (e.g. to try recipe settings)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = load_recipe(args.recipe, args.set)
    if recipe.data.name != "fortunes":
        sys.exit(f"{args.recipe}: data.name must be 'fortunes'; received '{recipe.data.name}'")
    split, vocab, x_train, x_test, vectors = encode_split(recipe)
    print(f"fortunes: {split.num_classes} categories {', '.join(split.class_names)}; "
          f"{len(x_train)} train / {len(x_test)} test texts; tokenizer "
          f"{recipe.data.tokenizer}, vocabulary {len(vocab)} ids", flush=True)
    baseline = None
    if not args.skip_baseline:
        baseline, baseline_seconds, best = tfidf_baseline(split, seed=0)
        print(f"TF-IDF + logistic regression: test accuracy {baseline:.4f} ({baseline_seconds:.0f} "
              f"s incl. 3-fold CV; chosen {best})", flush=True)
    seeds = args.seeds or [0 if recipe.train.seed is None else recipe.train.seed]
    accuracies = []
    for index, seed in enumerate(seeds):
        model, accuracy, seconds, cpu_seconds = train_text_rcnn(recipe, split, vocab, x_train,
                                                                x_test, seed,
                                                                verbose=2 if args.verbose else 0,
                                                                vectors=vectors)
        accuracies.append(accuracy)
        print(f"TextRCNN seed {seed}: test accuracy {accuracy:.4f} ({recipe.train.epochs} epochs, "
              f"{seconds:.0f} s wall, {cpu_seconds:.0f} s CPU, "
              f"{len(x_train) * recipe.train.epochs / seconds:.0f} train samples/s)", flush=True)
        if index == 0 and args.run_dir:  # usable by `bigmodel evaluate` / `predict`
            from bigmodel.models import save_model
            from bigmodel.recipes.schema import save_recipe
            from bigmodel.recipes.text_data import _encoder_file, _tokenizer_name

            path = Path(args.run_dir)
            file = _encoder_file(vocab)
            metadata = {"class_names": list(split.class_names), "data": "fortunes",
                        "input": {"kind": "text", "tokenizer": _tokenizer_name(vocab),
                                  "vocabulary": file, "max_length": recipe.data.max_length,
                                  "pad_id": vocab.pad_id}}
            if file == "vocabulary.json":  # `bigmodel explain` shows the words of a word vocabulary
                metadata["vocabulary"] = file
            save_model(model, path, metadata=metadata)
            vocab.save(path / file)
            save_recipe(recipe, path / "recipe.yaml")
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    median = statistics.median(accuracies)
    config = model.get_config()
    source = getattr(model, "embeddings_source", None) or "from scratch"
    source = "skip-gram" if vectors is not None else source
    frozen = ", frozen" if config.get("freeze_embeddings") else ""
    print("\n| model | parameters (trainable) | test accuracy |\n| --- | --- | --- |")
    if baseline is not None:
        print(f"| TF-IDF (CV-chosen n-grams) + logistic regression | - | {baseline:.4f} |")
    print(f"| TextRCNN ({config.get('rnn_type', 'gru')}, embeddings {source}{frozen}, median of "
          f"{len(seeds)} seed(s): {', '.join(f'{a:.4f}' for a in accuracies)}) | {params:,} "
          f"({trainable:,}) | {median:.4f} |")
    if baseline is not None:
        print(f"\nTextRCNN - baseline: {100 * (median - baseline):+.2f} points "
              f"({'beats' if median > baseline else 'does not beat'} the baseline)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
