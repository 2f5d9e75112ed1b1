"""TransformerModel: the seed program, the paper's parameter count, learning, decoding, files, errors."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bigmodel.data.bucketing import LengthBucketBatches
from bigmodel.data.seq2seq import encode_pairs, exact_match, reversal
from bigmodel.data.tokenizers import CharTokenizer
from bigmodel.engine.sequence_metrics import masked_cross_entropy
from bigmodel.errors import ConfigError, DataError, NotBuiltError, ShapeError, UnknownNameError
from bigmodel.keras.transformer import TransformerModel
from bigmodel.models import create_model
from bigmodel.models.decoding import beam_search, greedy_search, sample_logits

SEED_PROGRAM = Path(__file__).resolve().parent / "seed_examples" / "seed_transformer.py"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The machine is shared: one thread avoids OpenMP oversubscription (and is faster here).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(**overrides) -> TransformerModel:
    config = dict(num_heads=2, num_layers=2, d_model=16, dff=32, rate=0.0, dropout_rate=0.0,
                  input_vocab_size=12, target_vocab_size=10, max_length=12)
    config.update(overrides)
    return TransformerModel(**config)


# ------------------------------------------------------------------------------ the seed program
def test_seed_program_runs_with_its_import_line_pointing_at_bigmodel():
    source = SEED_PROGRAM.read_text()
    assert "from tensorflow.models.transformer import TransformerModel" in source
    program = source.replace("import tensorflow as tf\n", "").replace(
        "from tensorflow.models.transformer import TransformerModel",
        "from bigmodel.keras.transformer import TransformerModel")
    rng = np.random.default_rng(0)
    data = {"train_data": rng.integers(3, 20, size=(8, 5)),           # source ids, 0 = padding
            "train_labels": rng.integers(3, 20, size=(8, 4))}         # target ids
    torch.manual_seed(0)
    exec(compile(program, str(SEED_PROGRAM), "exec"), data)
    model = data["model"]
    assert (model.num_heads, model.num_layers, model.d_model, model.dff) == (8, 6, 512, 2048)
    assert model.rate == 0.1 and model.dropout_rate == 0.1 and model.training
    assert (model.input_vocab_size, model.target_vocab_size) == (20, 20)  # from the data
    history = model.history if hasattr(model, "history") else None
    assert history is None or history  # fit returned without error; losses below
    losses = model._trainer.history.history["loss"]
    assert len(losses) == 5 and all(math.isfinite(v) for v in losses)


def test_paper_base_parameter_count_matches_the_formula():
    vocab, d, dff, layers = 37000, 512, 2048, 6
    with torch.device("meta"):
        model = TransformerModel(num_heads=8, num_layers=layers, d_model=d, dff=dff,
                                 input_vocab_size=vocab, target_vocab_size=vocab,
                                 share_embeddings=True, tie_output=True)
    attention = 4 * (d * d + d)               # W_Q, W_K, W_V, W_O with biases
    feed_forward = d * dff + dff + dff * d + d
    norm = 2 * d
    encoder_layer = attention + feed_forward + 2 * norm
    decoder_layer = 2 * attention + feed_forward + 3 * norm
    embeddings = vocab * d                     # shared by source, target and output projection
    expected = layers * (encoder_layer + decoder_layer) + embeddings + vocab  # + output bias
    assert model.num_parameters() == expected
    assert abs(expected - 65e6) / 65e6 < 0.04  # "65M" in the paper's Table 3


# ------------------------------------------------------------------------------ learning
@pytest.fixture(scope="module")
def reversal_model():
    torch.manual_seed(0)
    task = reversal(num_train=2000, num_test=200, min_length=3, max_length=6, alphabet="abcdefgh")
    tokenizer = CharTokenizer.train(task.train_sources)
    x, y = encode_pairs(task.train_sources, task.train_targets, tokenizer)
    model = TransformerModel(num_heads=4, num_layers=2, d_model=64, dff=128, rate=0.0,
                             dropout_rate=0.0, max_length=16)
    model.compile(optimizer="adam", learning_rate=2e-3, metrics=["accuracy", "sequence_accuracy"])
    history = model.fit(x, y, epochs=7, batch_size=64, verbose=0, seed=0)
    return model, tokenizer, task, history


def test_tiny_model_learns_reversal(reversal_model):
    model, tokenizer, task, history = reversal_model
    losses = history.history["loss"]
    assert losses[-1] < 0.3 * losses[0]
    predictions = model.translate(task.test_sources, tokenizer=tokenizer, max_new_tokens=8)
    assert exact_match(predictions, task.test_targets) >= 0.95
    beams = model.translate(task.test_sources[:50], tokenizer=tokenizer, beam_size=3,
                            max_new_tokens=8)
    assert exact_match(beams, task.test_targets[:50]) >= 0.95
    x, y = encode_pairs(task.test_sources, task.test_targets, tokenizer)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["accuracy"] > 0.95 and set(logs) == {"loss", "accuracy", "sequence_accuracy"}
    predicted = model.predict(x[:20], verbose=0, max_new_tokens=8)
    assert predicted.dtype == np.int64 and predicted.shape[0] == 20
    assert tokenizer.decode_batch(predicted) == model.translate(
        task.test_sources[:20], tokenizer=tokenizer, max_new_tokens=8)


def test_save_load_gives_identical_generations(reversal_model, tmp_path):
    model, tokenizer, task, _ = reversal_model
    model.save(tmp_path / "reverser")
    loaded = TransformerModel.load(tmp_path / "reverser")
    assert isinstance(loaded, TransformerModel) and not loaded.training
    sources = task.test_sources[:30]
    for beam in (1, 3):
        a, score_a = model.translate(sources, tokenizer=tokenizer, beam_size=beam,
                                     max_new_tokens=8, return_scores=True)
        b, score_b = loaded.translate(sources, tokenizer=tokenizer, beam_size=beam,
                                      max_new_tokens=8, return_scores=True)
        assert a == b
        torch.testing.assert_close(score_a, score_b)
    assert loaded.output_projection.weight is loaded.target_embedding.weight  # still tied


# ------------------------------------------------------------------------------ decoding
def test_incremental_decoding_equals_the_full_forward():
    torch.manual_seed(1)
    model = tiny().eval()
    source = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 0]])
    target_in = torch.tensor([[1, 3, 4, 5, 6], [1, 7, 8, 9, 3]])
    full = model((source, target_in))
    memory, mask = model.encode(source)
    caches = model.decoder.new_caches()
    steps = [model.decode(target_in[:, t: t + 1], memory if t == 0 else None, mask, caches,
                          offset=t) for t in range(5)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_padded_and_unpadded_batches_agree():
    torch.manual_seed(2)
    model = tiny().eval()
    short_src, short_tgt = torch.tensor([[5, 6]]), torch.tensor([[1, 4, 5]])
    long_src, long_tgt = torch.tensor([[7, 8, 9, 10, 11]]), torch.tensor([[1, 3, 3, 6, 7, 8]])
    batch_src = torch.tensor([[5, 6, 0, 0, 0], [7, 8, 9, 10, 11]])
    batch_tgt = torch.tensor([[1, 4, 5, 0, 0, 0], [1, 3, 3, 6, 7, 8]])
    together = model((batch_src, batch_tgt))
    torch.testing.assert_close(together[0, :3], model((short_src, short_tgt))[0], atol=1e-5,
                               rtol=1e-5)
    torch.testing.assert_close(together[1], model((long_src, long_tgt))[0], atol=1e-5, rtol=1e-5)
    assert model.translate(short_src, max_new_tokens=5) == model.translate(
        batch_src, max_new_tokens=5)[:1]


def test_beam_search_finds_the_best_sequence_by_brute_force():
    torch.manual_seed(3)
    vocab, steps, eos = 4, 3, 2
    table = torch.randn(vocab, vocab) * 2  # next-token logits depend on the previous token

    def make_step():
        return lambda tokens: table[tokens[:, -1]]

    def sequence_score(seq):
        score, prev = 0.0, 1
        for token in seq:
            score += float(torch.log_softmax(table[prev], -1)[token])
            if token == eos:
                break
            prev = token
        return score

    candidates = [s for s in itertools.product(range(1, vocab), repeat=steps)]
    best = max(candidates, key=sequence_score)
    tokens, score = beam_search(make_step(), lambda index: None, torch.ones(16, 1, dtype=torch.long),
                                beam_size=16, max_new_tokens=steps, eos_id=eos, pad_id=0,
                                length_penalty=0.0)
    found = [t for t in tokens[0].tolist() if t != 0]
    assert sequence_score(found) == pytest.approx(sequence_score(best), abs=1e-5)
    assert float(score[0]) == pytest.approx(sequence_score(best), abs=1e-5)
    greedy, greedy_score = greedy_search(make_step(), torch.ones(1, 1, dtype=torch.long), steps, eos)
    one_beam, one_score = beam_search(make_step(), lambda index: None,
                                      torch.ones(1, 1, dtype=torch.long), 1, steps, eos,
                                      length_penalty=0.0)
    assert greedy.tolist() == one_beam.tolist()
    torch.testing.assert_close(greedy_score, one_score)


def test_sampling_respects_top_k_top_p_and_temperature():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(4000, 1)
    generator = torch.Generator().manual_seed(0)
    assert set(sample_logits(logits, top_k=2, generator=generator).tolist()) == {0, 1}
    assert set(sample_logits(logits, top_p=0.7, generator=generator).tolist()) == {0, 1}
    assert set(sample_logits(logits, temperature=0).tolist()) == {0}
    counts = np.bincount(sample_logits(logits, generator=generator).numpy(), minlength=4) / 4000
    np.testing.assert_allclose(counts, [0.5, 0.3, 0.15, 0.05], atol=0.03)
    with pytest.raises(ConfigError, match="top_p"):
        sample_logits(logits, top_p=1.5)


# ------------------------------------------------------------------------------ training pieces
def test_masked_cross_entropy_with_label_smoothing_matches_numpy():
    torch.manual_seed(4)
    logits = torch.randn(2, 3, 5, dtype=torch.float64)
    targets = torch.tensor([[3, 1, 0], [4, 0, 0]])
    value = masked_cross_entropy(logits, targets, pad_id=0, label_smoothing=0.1)
    logp = torch.log_softmax(logits, -1).numpy()
    losses = []
    for b, t in zip(*np.nonzero(targets.numpy())):
        smooth = np.full(5, 0.1 / 5)
        smooth[targets[b, t]] += 0.9
        losses.append(-(smooth * logp[b, t]).sum())
    assert float(value) == pytest.approx(np.mean(losses), rel=1e-6)


def test_noam_schedule_is_the_papers_formula():
    model = tiny()
    model.compile(optimizer="adam", lr_schedule="noam", warmup_steps=4)
    x = np.array([[5, 6, 7]] * 4)
    y = np.array([[3, 4, 2]] * 4)
    rates = []
    for _ in range(6):
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)
        rates.append(model._trainer.optimizer.param_groups[0]["lr"])
    for step, rate in enumerate(rates, start=2):  # the rate set for the next step
        assert rate == pytest.approx(16 ** -0.5 * min(step ** -0.5, step * 4 ** -1.5))
    assert model._trainer.optimizer.defaults["betas"] == (0.9, 0.98)


def test_label_forms_and_teacher_forcing():
    model = tiny()
    model.compile()
    x = np.array([[5, 6, 7], [8, 0, 0]])
    y = np.array([[3, 4, 5], [6, 7, 0]])  # no EOS anywhere: one is appended
    source, decoder_input, targets = model._prepare(x, y, "fit")
    assert targets.tolist() == [[3, 4, 5, 2], [6, 7, 2, 0]]
    assert decoder_input.tolist() == [[1, 3, 4, 5], [1, 6, 7, 2]]
    with_bos = np.array([[1, 3, 4, 2], [1, 6, 2, 0]])
    _, decoder_input, targets = model._prepare(x, with_bos, "fit")
    assert decoder_input.tolist() == [[1, 3, 4], [1, 6, 2]] and targets.tolist() == [[3, 4, 2],
                                                                                     [6, 2, 0]]
    one_hot = np.eye(10)[[[3, 4, 2], [6, 2, 0]]]
    one_hot[1, 2] = 0  # an all-zero row is padding
    _, _, targets = model._prepare(x, one_hot, "fit")
    assert targets.tolist() == [[3, 4, 2], [6, 2, 0]]
    _, decoder_input, targets = model._prepare((x, np.array([[1, 3], [1, 6]])),
                                               np.array([[3, 2], [6, 2]]), "fit")
    assert decoder_input.tolist() == [[1, 3], [1, 6]]
    ragged = model._prepare([[5, 6, 7], [8]], [[3, 2], [4, 5, 2]], "fit")
    assert ragged[0].tolist() == [[5, 6, 7], [8, 0, 0]]


def test_length_bucketing_visits_everything_once_with_less_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 30, size=400)
    ids = torch.zeros(400, 30, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.arange(1, length + 1) + row * 100
    batches = LengthBucketBatches([ids, ids.clone()], (0, 1), 16,
                                  generator=torch.Generator().manual_seed(0))
    seen, padded_cells = [], 0
    for inputs, targets in batches:
        assert inputs.shape == targets.shape and inputs.shape[1] < 30 or inputs.shape[1] == 30
        seen += (inputs[:, 0] // 100).tolist()
        padded_cells += inputs.numel()
    assert sorted(seen) == list(range(400)) and len(batches) == 25
    assert padded_cells < 0.7 * 400 * 30


# ------------------------------------------------------------------------------ bad input
def test_bad_input_is_named():
    with pytest.raises(ConfigError, match="d_model must be divisible by num_heads.*d_model=10, "
                                          "num_heads=3"):
        TransformerModel(num_heads=3, d_model=10)
    with pytest.raises(UnknownNameError, match="unknown initializer 'glorious'.*kernel_initializer"):
        TransformerModel(kernel_initializer="glorious")
    with pytest.raises(ConfigError, match="'rate' must be in \\[0, 1\\)"):
        TransformerModel(rate=1.0)
    model = tiny().eval()
    with pytest.raises(ShapeError, match="source has length 13, longer than max_length=12"):
        model((torch.ones(1, 13, dtype=torch.long), torch.ones(1, 2, dtype=torch.long)))
    with pytest.raises(DataError, match=r"token id 12, outside the vocabulary \[0, 12\)"):
        model((torch.tensor([[5, 12]]), torch.tensor([[1, 3]])))
    with pytest.raises(DataError, match=r"token id 10, outside the vocabulary \[0, 10\)"):
        model((torch.tensor([[5, 6]]), torch.tensor([[1, 10]])))
    with pytest.raises(ShapeError, match="empty sequence"):
        model.translate(torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(DataError, match="source row 1 is empty"):
        model.translate(torch.tensor([[4, 5], [0, 0]]))
    with pytest.raises(ConfigError, match="max_new_tokens must be in \\[1, 11\\]"):
        model.translate(torch.tensor([[4, 5]]), max_new_tokens=40)
    with pytest.raises(NotBuiltError, match="vocabularies are not known yet"):
        TransformerModel(num_layers=1, d_model=8, num_heads=2, dff=8).translate([[4, 5]])
    with pytest.raises(UnknownNameError, match="unknown loss 'mse'"):
        model.compile(loss="mse")
    with pytest.raises(ConfigError, match="compile\\(\\) before fit"):
        tiny().fit(np.ones((2, 3)), np.ones((2, 3)))
    model.compile()
    with pytest.raises(DataError, match="labels contains token id 10"):
        model.fit(np.array([[4, 5]]), np.array([[10, 2]]), verbose=0)
    with pytest.raises(DataError, match="same number of samples"):
        model.fit(np.array([[4, 5], [4, 5]]), np.array([[3, 2]]), verbose=0)


def test_registry_builds_the_small_default():
    model = create_model("transformer", num_layers=1)
    out = model((torch.randint(3, 64, (2, 7)), torch.randint(3, 64, (2, 5))))
    assert out.shape == (2, 5, 64)
    out.pow(2).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_initializer_names_follow_their_definitions():
    from scipy import stats

    from bigmodel.nn.init import INITIALIZERS, initialize

    torch.manual_seed(5)
    sample = initialize(torch.empty(20_000), "random_truncated_normal_with_mean").double().numpy()
    assert stats.kstest(sample, stats.truncnorm(-2, 2, scale=0.02).cdf).pvalue > 1e-3
    glorot = initialize(torch.empty(300, 100), "glorot_uniform", fan_in=100, fan_out=300)
    limit = math.sqrt(6 / 400)
    assert glorot.abs().max() <= limit and glorot.abs().max() > 0.99 * limit
    he = initialize(torch.empty(400, 100), "he_normal", fan_in=100, fan_out=400)
    assert float(he.std()) == pytest.approx(math.sqrt(2 / 100), rel=0.05)
    assert set(INITIALIZERS) >= {"zeros", "ones", "glorot_normal", "lecun_uniform", "orthogonal"}
    model = tiny(embed_bias_initializer="ones", bias_initializer="zeros")
    assert torch.equal(model.output_projection.bias, torch.ones(10))
    assert float(model.encoder.layers[0].ffn.linear1.weight.detach().abs().max()) <= 0.04


def test_seq2seq_benchmark_script_runs_on_a_tiny_setting(tmp_path):
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("_bench_seq2seq", root / "benchmarks" /
                                                  "seq2seq_tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sets = ["train.epochs=1", "data.train_subset=64", "data.test_subset=8",
            "model.overrides.num_layers=1", "model.overrides.d_model=16",
            "model.overrides.dff=32", "model.overrides.num_heads=2"]
    argv = ["--recipe", str(root / "configs" / "seq2seq_dates.yaml"), "--threads", "1",
            "--out", str(tmp_path / "result.json"), "--run-dir", str(tmp_path / "run")]
    for item in sets:
        argv += ["--set", item]
    result = module.main(argv)
    assert result["task"] == "dates_to_iso" and 0.0 <= result["exact_match"] <= 1.0
    assert (tmp_path / "result.json").is_file()
    from bigmodel.data.tokenizers import load_tokenizer

    loaded = TransformerModel.load(tmp_path / "run")
    tokenizer = load_tokenizer(tmp_path / "run" / "source_tokenizer.json")
    assert loaded.input_vocab_size == tokenizer.vocab_size


def test_plain_model_refuses_keras_training_with_a_pointer():
    """The plain module has no Keras surface: a Keras-style call names the class that has it."""
    from bigmodel.errors import ConfigError
    from bigmodel.keras.transformer import TransformerModel as KerasTransformer
    from bigmodel.models.transformer import TransformerModel

    plain = TransformerModel(num_heads=2, num_layers=1, d_model=8, dff=16)
    with pytest.raises(ConfigError, match="bigmodel.keras.transformer"):
        plain.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ConfigError, match="bigmodel.keras.transformer"):
        plain.compile("adam")
    with pytest.raises(ConfigError, match=r"fit\(\)"):
        plain.fit([[3, 4]], [[3, 4]])
    keras_model = KerasTransformer(num_heads=2, num_layers=1, d_model=8, dff=16)
    keras_model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")  # still Keras's
