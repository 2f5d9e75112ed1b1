"""What a reader of an explanation figure sees: the text on each figure kind (titles, axis and tick
labels, words) and the PNG written -- predicted / true class in titles, units on spectrograms, no
padding tokens in text explanations, token labels on cropped attention maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bigmodel.explain import Explanation, explain
from bigmodel.explain.metrics import deletion_insertion
from bigmodel.explain.plots import (
    figure_texts,
    plot_attention,
    plot_curves,
    plot_explanation,
    save_figure,
    tokens_html,
)
from bigmodel.explain.token_figure import layout_words, special_token_strings
from bigmodel.models import create_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAMES = ["Coat", "Shirt", "Bag"]


def _written(figure, path) -> None:
    save_figure(figure, path)
    assert path.read_bytes().startswith(PNG_MAGIC) and path.stat().st_size > 2000


def _title(figure) -> str:
    return figure._suptitle.get_text()


def test_image_figure_says_predicted_with_probability_and_true(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(2 * 8 * 8, 3))
    images = torch.rand(2, 1, 8, 8)
    result = explain(model, images, method="saliency", labels=[1, 2], class_names=NAMES)
    with torch.no_grad():
        probabilities = model(images).softmax(dim=-1)[1]  # independent of the explanation
    predicted = int(probabilities.argmax())
    figure = result.plot(1, title="example 7 - saliency")
    title = _title(figure)
    assert title.splitlines()[0] == "example 7 - saliency"
    assert f"predicted: {NAMES[predicted]} (p={float(probabilities[predicted]):.2f})" in title
    assert "true: Bag" in title
    assert {"input", "attribution", "overlay"} <= set(figure_texts(figure))
    _written(figure, tmp_path / "image.png")
    # no labels: no "true"; another explained class is named
    other = (predicted + 1) % 3
    bare = explain(model, images, target=other, method="saliency", class_names=NAMES)
    text = _title(plot_explanation(bare, 1))
    assert "true:" not in text and f"explained: {NAMES[other]}" in text


@pytest.mark.parametrize("features", ["logmel", "mfcc"])
def test_speech_spectrogram_figure_has_time_and_frequency_axes(features, tmp_path):
    torch.manual_seed(0)
    model = create_model("speech-cnn", num_classes=3, channels=[4, 4, 4, 4], features=features)
    model.eval()
    with torch.no_grad():
        spectrograms = model.frontend.spectrogram(0.1 * torch.randn(1, 16000)).unsqueeze(1)
    result = explain(model, spectrograms, method="saliency", labels=[2],
                     class_names=["zero", "one", "two"])
    axes = result.extras["spectrogram"]
    assert axes["seconds_per_frame"] == pytest.approx(160 / 16000)
    figure = result.plot(0, title="example 0 - saliency")
    texts = figure_texts(figure)
    assert "time (s)" in texts and "true: two" in _title(figure) and "predicted: " in _title(figure)
    time_axis = figure.axes[2].get_xlim()  # the last frame's centre is at 1 s (101 frames)
    assert time_axis[1] == pytest.approx(100.5 * 0.01)
    assert "1.0" in texts and "1.2" not in texts  # only the seconds drawn inside the axis
    if features == "logmel":
        librosa = pytest.importorskip("librosa")
        assert axes["features"] == "mel" and "frequency (Hz, mel bands)" in texts
        # band centres against librosa's slaney mel scale (f_min 20 Hz, f_max 8 kHz): the
        # weighted mean of each triangular filter on 31 Hz FFT bins sits near its centre
        centres = librosa.mel_frequencies(40 + 2, fmin=20.0, fmax=8000.0)[1:-1]
        np.testing.assert_allclose(axes["band_hz"], centres, rtol=0.06, atol=20)
        ticks = [t.get_text() for t in figure.axes[0].get_yticklabels()]
        assert ticks[0] != "0" and ticks[-1].endswith("k")  # Hz labels, not band numbers
    else:
        assert axes["features"] == "mfcc" and "MFCC coefficient" in texts
    _written(figure, tmp_path / f"speech_{features}.png")
    loaded = Explanation.load(result.save(tmp_path / "speech.safetensors"))
    assert "time (s)" in figure_texts(loaded.plot(0))  # the units travel with the file


def _token_model(vocab: int = 60, length: int = 48):
    return create_model("transformer-classifier", vocab_size=vocab, num_classes=2,
                        max_length=length, d_model=16, num_heads=2, num_layers=1, dff=32,
                        pooling="cls")


def _padded_tokens(length: int = 48, real: int = 30):
    words = ["<pad>", "<unk>", "[CLS]", "[SEP]"] + [f"word{i}" for i in range(54)] + [
        "supercalifragilisticexpialidocious", "antidisestablishmentarianism"]
    rng = np.random.default_rng(0)
    ids = np.zeros((2, length), dtype=np.int64)
    ids[:, 0] = 2
    ids[0, 1:real - 1] = rng.integers(4, len(words), real - 2)
    ids[0, 5], ids[0, 9], ids[0, real - 1] = 58, 59, 3
    ids[1, 1:8] = rng.integers(4, 58, 7)
    ids[1, 8] = 3
    return ids, [[words[t] for t in row] for row in ids.tolist()], words


def test_text_figure_hides_padding_and_never_clips_a_word(tmp_path):
    torch.manual_seed(0)
    ids, tokens, _ = _padded_tokens()
    result = explain(_token_model(), ids, method="integrated_gradients", n_steps=4,
                     labels=[1, 0], class_names=["people", "science"], tokens=tokens)
    figure = result.plot(0)
    texts = figure_texts(figure)
    assert not {"<pad>", "[CLS]", "[SEP]"} & set(texts)
    real = [t for t in tokens[0] if t not in ("<pad>", "[CLS]", "[SEP]")]
    shown = [t for t in texts if t in set(real)]
    assert shown == real  # every real token, in reading order
    assert any("20 padding / special tokens not shown" in t for t in texts)
    assert "true: science" in _title(figure)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(figure).get_renderer()
    word_texts = list(figure.axes[0].texts)
    rows = {round(t.get_position()[1], 4) for t in word_texts}
    assert len(rows) >= 2  # 28 words (two of them very long) wrap onto several rows
    boxes = [t.get_bbox_patch().get_window_extent(renderer) for t in word_texts]
    for text, box in zip(word_texts, boxes):  # each coloured box inside the figure ...
        assert figure.bbox.x0 <= box.x0 and box.x1 <= figure.bbox.x1, text.get_text()
    for left, right in zip(boxes, boxes[1:]):  # ... and clear of the next one on its row
        if abs(left.y0 - right.y0) < 1:
            assert left.x1 <= right.x0, (left, right)
    _written(figure, tmp_path / "text.png")
    page = tokens_html(result, [0, 1])
    assert "&lt;pad&gt;" not in page and "[CLS]" not in page
    assert page.count('class="token"') == len(real) + 7


def test_word_layout_wraps_by_measured_width():
    wide, narrow = "W" * 30, "i" * 30
    rows = layout_words([wide, wide, narrow, narrow, narrow], width=4.0)
    for row in rows:
        end = row[-1][1] + row[-1][2]
        assert end <= 4.0 or len(row) == 1
    assert layout_words([narrow] * 3, width=4.0)[0][1][2] < rows[0][0][2] / 2  # "i" narrower


def test_attention_map_is_cropped_and_labelled_with_tokens(tmp_path):
    torch.manual_seed(0)
    ids, tokens, _ = _padded_tokens()
    result = explain(_token_model(), ids, method="attention", query=0, labels=[1, 0],
                     class_names=["people", "science"], tokens=tokens)
    figure = plot_attention(result, 0)
    texts = figure_texts(figure)
    assert "<pad>" not in texts and "predicted: " in _title(figure)
    assert "18 padding tokens cropped" in _title(figure)
    first = figure.axes[0]
    assert first.images[0].get_array().shape == (31, 31)  # model's [CLS] + 30 real tokens
    labels = [t.get_text() for t in first.get_xticklabels()]
    assert labels[0] == "[CLS]" and labels[2] == tokens[0][1]
    assert [t.get_text() for t in first.get_yticklabels()] == labels
    assert "key token" in texts and "query token" in texts
    _written(figure, tmp_path / "attention.png")
    short = plot_attention(result, 1)
    assert short.axes[0].images[0].get_array().shape == (10, 10)


def test_long_attention_maps_label_every_kth_token():
    torch.manual_seed(0)
    length = 100
    ids = np.random.default_rng(1).integers(1, 50, (1, length))
    tokens = [[f"t{t}" for t in row] for row in ids.tolist()]
    model = create_model("transformer-classifier", vocab_size=50, num_classes=2,
                         max_length=length, d_model=8, num_heads=1, num_layers=1, dff=16)
    result = explain(model, ids, method="attention", tokens=tokens)
    figure = plot_attention(result, 0)
    ax = figure.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert len(labels) == 34 and labels[:2] == tokens[0][0:4:3]  # every 3rd of 100
    assert "key token (every 3)" in figure_texts(figure)
    assert all(4.5 <= t.get_fontsize() <= 8 for t in ax.get_xticklabels())


def test_sequence_vector_and_curve_figures(tmp_path):
    torch.manual_seed(0)
    sequence_model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    result = explain(sequence_model, torch.rand(2, 4, 3), method="saliency", labels=[0, 2],
                     class_names=NAMES)
    figure = result.plot(1)
    assert "time step" in figure_texts(figure) and "true: Bag" in _title(figure)
    _written(figure, tmp_path / "sequence.png")
    vector = explain(nn.Linear(6, 3), torch.rand(2, 6), method="saliency", labels=[0, 1],
                     class_names=NAMES)
    figure = vector.plot(0)
    assert {"feature", "attribution"} <= set(figure_texts(figure))
    assert "true: Coat" in _title(figure)
    _written(figure, tmp_path / "vector.png")
    curves = deletion_insertion(sequence_model, result, steps=4, n_random=2)
    figure = plot_curves(curves, title="saliency: deletion / insertion")
    texts = figure_texts(figure)
    assert {"deletion", "insertion", "probability of explained class"} <= set(texts)
    _written(figure, tmp_path / "curves.png")


def test_hidden_tokens_from_a_tokenizer():
    from bigmodel.data.tokenizers import CharTokenizer

    tokenizer = CharTokenizer.train(["hello"])
    assert special_token_strings(tokenizer) == {"<pad>", "<bos>", "<eos>"}
    ids = torch.tensor([[tokenizer.bos_id, *tokenizer.encode("hel"), tokenizer.pad_id]])
    words = [tokenizer.itos[i] for i in ids[0].tolist()]
    model = nn.Sequential(nn.Embedding(len(tokenizer.itos), 3), nn.Flatten(), nn.Linear(15, 2))
    result = explain(model, ids, method="saliency", tokens=[words])
    texts = figure_texts(plot_explanation(result, 0, hidden_tokens={"<pad>", "h"}))
    assert "h" not in texts and "<bos>" in texts and "e" in texts and "<pad>" not in texts
