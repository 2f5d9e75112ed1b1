"""Tokenizers (char, word, BPE), generated sequence tasks, the fortunes char-LM corpus."""

from __future__ import annotations

import datetime
import json
import re

import numpy as np
import pytest
import torch

from bigmodel.data.char_lm import LMWindows, bigram_bits_per_char, load_fortunes_corpus
from bigmodel.data.seq2seq import (
    DATE_FORMATS,
    dates_to_iso,
    encode_pairs,
    exact_match,
    number_to_words,
    numbers_to_words,
    reversal,
)
from bigmodel.data.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    WordTokenizer,
    load_tokenizer,
)
from bigmodel.errors import ConfigError, DataError, DataFileError, InputTypeError

TEXTS = ["the cat sat on the mat", "the dog ate the cat's hat", "héllo wörld", "tab\tand\nnewline"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The machine is shared: one thread avoids OpenMP oversubscription (and is faster here).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------ tokenizers
def test_char_tokenizer_round_trip_specials_and_unknowns(tmp_path):
    tok = CharTokenizer.train(TEXTS)
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    assert tok.vocab_size == 4 + len(set("".join(TEXTS)))
    for text in TEXTS:
        assert tok.decode(tok.encode(text, add_bos=True, add_eos=True)) == text
    ids = tok.encode("cat€")
    assert ids[-1] == tok.unk_id and tok.decode(ids, skip_special_tokens=False) == "cat<unk>"
    assert tok.decode(tok.encode("cat", add_eos=True) + tok.encode("dog")) == "cat"  # stops at EOS
    batch = tok.encode_batch(["ab", "a"], add_bos=True, add_eos=True)
    assert batch.dtype == np.int64 and batch.tolist() == [
        [1, *tok.encode("ab"), 2], [1, *tok.encode("a"), 2, 0]]
    tok.save(tmp_path / "char.json")
    again = load_tokenizer(tmp_path / "char.json")
    assert isinstance(again, CharTokenizer) and again.encode(TEXTS[1]) == tok.encode(TEXTS[1])


def test_word_tokenizer():
    tok = WordTokenizer.train(["four thousand seventy one", "one hundred"])
    ids = tok.encode("four hundred seventy one", add_eos=True)
    assert ids[-1] == 2 and tok.decode(ids) == "four hundred seventy one"
    assert tok.encode("million") == [tok.unk_id]


def test_bpe_tokenizer_learns_merges_and_round_trips(tmp_path):
    corpus = TEXTS * 20
    tok = BPETokenizer.train(corpus, vocab_size=300)
    assert tok.vocab_size <= 300 and tok.encode("x") != []
    assert tok.tokenizer.token_to_id("<eos>") == 2
    for text in TEXTS + ["unseen ünïcödé ☃ text"]:
        assert tok.decode(tok.encode(text)) == text  # byte-level: nothing is unknown
    assert len(tok.encode("the cat sat on the mat")) < len("the cat sat on the mat") / 2
    tok.save(tmp_path / "bpe.json")
    assert json.loads((tmp_path / "bpe.json").read_text())["type"] == "bpe"
    again = load_tokenizer(tmp_path / "bpe.json")
    assert again.encode(TEXTS[1], add_bos=True) == tok.encode(TEXTS[1], add_bos=True)


def test_tokenizer_bad_input(tmp_path):
    tok = CharTokenizer.train(["abc"])
    with pytest.raises(InputTypeError, match="expected a str"):
        tok.encode(5)
    with pytest.raises(InputTypeError, match="single str"):
        CharTokenizer.train("abc")
    with pytest.raises(DataError, match="no texts"):
        CharTokenizer.train([])
    with pytest.raises(DataError, match="id 99 is outside the vocabulary"):
        tok.decode([4, 99])
    with pytest.raises(DataError, match="text 1 has 5 tokens, more than max_length=4"):
        tok.encode_batch(["ab", "abcab"], max_length=4)
    with pytest.raises(ConfigError, match="vocab_size must be an int >= 260"):
        BPETokenizer.train(["abc"], vocab_size=100)
    (tmp_path / "bad.json").write_text('{"format": "something-else"}')
    with pytest.raises(DataFileError, match="not a bigmodel tokenizer file"):
        load_tokenizer(tmp_path / "bad.json")
    with pytest.raises(DataFileError, match="Cannot read tokenizer file"):
        load_tokenizer(tmp_path / "missing.json")


# ------------------------------------------------------------------------------ tasks
@pytest.mark.parametrize("number, words", [
    (0, "zero"), (7, "seven"), (15, "fifteen"), (40, "forty"), (99, "ninety nine"),
    (100, "one hundred"), (115, "one hundred fifteen"), (4071, "four thousand seventy one"),
    (10_000, "ten thousand"), (700_005, "seven hundred thousand five"),
    (1_000_000, "one million"), (123_456_789, "one hundred twenty three million four hundred "
                                              "fifty six thousand seven hundred eighty nine"),
])
def test_number_to_words(number, words):
    assert number_to_words(number) == words


def _words_to_number(text: str) -> int:
    """An independent inverse: parse the words back to the number."""
    small = {w: i for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen".split())}
    small.update({w: 10 * i for i, w in enumerate(
        "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i >= 2})
    total, current = 0, 0
    for word in text.split():
        if word in small:
            current += small[word]
        elif word == "hundred":
            current *= 100
        else:
            total += current * {"thousand": 10**3, "million": 10**6, "billion": 10**9}[word]
            current = 0
    return total + current


def test_numbers_task_is_seeded_held_out_and_correct():
    task = numbers_to_words(num_train=3000, num_test=300, seed=1)
    assert len(task.train_sources) == 3000 and len(task.test_sources) == 300
    assert not set(task.train_sources) & set(task.test_sources)
    for source, target in zip(task.train_sources[:500] + task.test_sources, task.train_targets[:500]
                              + task.test_targets):
        assert _words_to_number(target) == int(source)
    again = numbers_to_words(num_train=3000, num_test=300, seed=1)
    assert again.test_sources == task.test_sources
    assert numbers_to_words(num_train=3000, num_test=300, seed=2).test_sources != task.test_sources
    with pytest.raises(DataError, match="more distinct values"):
        numbers_to_words(num_train=20, num_test=5, max_number=20)
    with pytest.raises(ConfigError, match="number_to_words"):
        number_to_words(-1)


_PARSERS = ["%Y-%m-%d", "%d %B %Y", "%B %d, %Y", "%b %d %Y", "%d %b %y", "%m/%d/%Y", "%d.%m.%Y",
            "%d.%m.%y", "%A, %B %d, %Y", "%a %d %b %Y", "%B %d %Y", "%Y%m%d", "%d-%b-%Y"]


def _parse(text: str) -> datetime.date:
    for pattern in _PARSERS:
        try:
            parsed = datetime.datetime.strptime(text, pattern).date()
        except ValueError:
            continue
        if "%y" in pattern and parsed.year >= 2050:  # this task's two-digit years: 1950-2049
            parsed = parsed.replace(year=parsed.year - 100)
        return parsed
    raise AssertionError(f"no format parses {text!r}")


def test_dates_task_every_source_parses_to_its_iso_target():
    task = dates_to_iso(num_train=2000, num_test=200, seed=0)
    assert not set(task.train_targets) & set(task.test_targets)  # held-out calendar days
    for source, target in zip(task.train_sources + task.test_sources,
                              task.train_targets + task.test_targets):
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", target)
        assert _parse(source).isoformat() == target, source
    styles = {re.sub(r"\d", "9", re.sub(r"[A-Za-z]+", "w", s)) for s in task.train_sources}
    assert len(styles) >= DATE_FORMATS - 2  # (a few formats share a digit/word skeleton)
    with pytest.raises(ConfigError, match="1950-01-01..2049-12-31"):
        dates_to_iso(start=datetime.date(1900, 1, 1))


def test_reversal_task_and_encoding():
    task = reversal(num_train=100, num_test=20, min_length=2, max_length=4, alphabet="abcd", seed=3)
    assert all(t == s[::-1] for s, t in zip(task.train_sources, task.train_targets))
    assert not set(task.train_sources) & set(task.test_sources)
    assert all(2 <= len(s) <= 4 for s in task.train_sources)
    tok = CharTokenizer.train(task.train_sources)
    x, y = encode_pairs(task.train_sources, task.train_targets, tok)
    assert x.shape[0] == y.shape[0] == 100 and (y == tok.eos_id).sum() == 100
    assert exact_match(["ab ", "x"], ["ab", "y"]) == 0.5
    with pytest.raises(DataError, match="more distinct values"):
        reversal(num_train=100, num_test=20, min_length=1, max_length=2, alphabet="ab")


# ------------------------------------------------------------------------------ char LM
def test_fortunes_corpus_is_split_by_entry(tmp_path):
    (tmp_path / "alpha").write_text("first one\n%\nsecond one\n%\nthird\none\n%\n")
    (tmp_path / "beta").write_text("fourth\n%\nfifth\n")
    (tmp_path / "beta.dat").write_bytes(b"\x00binary index")
    corpus = load_fortunes_corpus(path=tmp_path, validation_fraction=0.4, seed=0)
    assert corpus.categories == ("alpha", "beta")
    assert (corpus.num_train_entries, corpus.num_validation_entries) == (3, 2)
    train = set(corpus.train_text.split("\n%\n"))
    validation = set(corpus.validation_text.split("\n%\n"))
    assert train | validation == {"first one", "second one", "third\none", "fourth", "fifth"}
    assert not train & validation
    same = load_fortunes_corpus(path=tmp_path, validation_fraction=0.4, seed=0)
    assert same.validation_text == corpus.validation_text
    with pytest.raises(ConfigError, match="validation_fraction"):
        load_fortunes_corpus(path=tmp_path, validation_fraction=1.5)


def test_lm_windows_and_bigram_baseline():
    ids = np.arange(100) % 7
    batches = list(LMWindows(ids, block_size=10, batch_size=4, steps=3, seed=0))
    assert len(batches) == 3
    x, y = batches[0]
    assert x.shape == y.shape == (4, 10) and (x[:, 1:] == y[:, :-1]).all()
    assert ((x + 1) % 7 == y).all()
    train, evaluation = np.array([0, 1, 0, 1, 1, 0]), np.array([0, 1, 1])
    counts = np.array([[0, 2], [2, 1]], dtype=float)  # pairs in train: 01 10 01 11 10
    probs = (counts + 0.5) / (counts.sum(1, keepdims=True) + 1.0)
    expected = -(np.log2(probs[0, 1]) + np.log2(probs[1, 1])) / 2
    assert bigram_bits_per_char(train, evaluation, 2, alpha=0.5) == pytest.approx(expected)
    with pytest.raises(DataError, match="longer than block_size=10"):
        LMWindows(ids[:10], block_size=10, batch_size=2, steps=1)
