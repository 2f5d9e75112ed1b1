"""``bigmodel explain`` across task types: faithfulness curves of every method on padded texts,
and methods that do not apply refused before any work, naming the ones that do."""

from __future__ import annotations

import copy

import pytest
import torch

from bigmodel.explain import explain
from bigmodel.explain.metrics import deletion_insertion
from bigmodel.models import create_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _padded_texts() -> torch.Tensor:
    ids = torch.randint(3, 40, (2, 12), generator=torch.Generator().manual_seed(0))
    ids[0, 5:] = 0  # five words, then padding
    ids[1, 8:] = 0
    return ids


def test_attention_deletion_curve_of_a_padded_text_keeps_the_ids():
    """Deleting every word of an attention explanation used to replace all ids by padding, a row
    the Transformer classifier refuses ("input row is empty"); words are now removed through the
    embedding, as for the gradient methods, so the padding mask stays the text's."""
    torch.manual_seed(0)
    model = create_model("transformer-classifier", vocab_size=40, num_classes=3, max_length=12,
                         d_model=16, num_heads=2, num_layers=1, dff=32, dropout=0.0).eval()
    ids = _padded_texts()
    with pytest.raises(Exception, match="only padding"):  # the model's own refusal
        model(torch.zeros(1, 12, dtype=torch.long))
    result = explain(model, ids, method="attention")
    curves = deletion_insertion(model, result, steps=4, n_random=2)
    # Reference for "every word removed": a copy whose every embedding row is the padding id's,
    # run on the text's own ids (so its padding mask).
    blank = copy.deepcopy(model)
    with torch.no_grad():
        blank.embedding.weight[:] = model.embedding.weight[0]
        original = model(ids).softmax(-1)[torch.arange(2), result.targets]
        removed = blank(ids).softmax(-1)[torch.arange(2), result.targets]
    torch.testing.assert_close(curves.deletion[:, 0], original, atol=1e-5, rtol=0)
    torch.testing.assert_close(curves.insertion[:, -1], original, atol=1e-5, rtol=0)
    torch.testing.assert_close(curves.deletion[:, -1], removed, atol=1e-5, rtol=0)
    torch.testing.assert_close(curves.insertion[:, 0], removed, atol=1e-5, rtol=0)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_vit_attention_reads_its_class_token_by_default(pool):
    """A ViT's attention covers 1 + 4 x 4 tokens: the class token it prepends is found (it used
    to be refused as "17 attention tokens do not form a square grid"); with [CLS] pooling the
    map is the class token's rollout row, else the mean row, over the 16 patches only."""
    from bigmodel.explain.attention import attention_rollout

    torch.manual_seed(0)
    model = create_model("vit", image_size=8, patch_size=2, num_classes=3, d_model=8,
                         num_heads=2, num_layers=2, dff=16, dropout=0.0, pool=pool).eval()
    images = torch.rand(2, 1, 8, 8)
    result = explain(model, images, method="attention")
    rollout = attention_rollout(list(result.extras["attention"].values()))
    assert rollout.shape == (2, 17, 17)
    row = rollout[:, 0, 1:] if pool == "cls" else rollout.mean(dim=1)[:, 1:]
    expected = row.reshape(2, 1, 4, 4).repeat_interleave(2, -1).repeat_interleave(2, -2)
    torch.testing.assert_close(result.attributions, expected, atol=1e-6, rtol=0)


def test_speech_transformer_attention_spreads_frame_tokens_over_time():
    """A speech Transformer attends over (subsampled) time frames of its spectrogram, not over
    image patches (it used to be refused as "51 attention tokens do not form a square grid"):
    each spectrogram column gets its frame token's rollout relevance, at every frequency."""
    from bigmodel.explain.attention import attention_rollout

    torch.manual_seed(0)
    model = create_model("speech-transformer", num_classes=2, d_model=8, num_heads=2,
                         num_layers=1, dff=16, dropout_rate=0.0, clip_seconds=0.2, n_mels=8,
                         freq_masks=0, time_masks=0).eval()
    with torch.no_grad():
        spectrograms = model.spectrogram(0.1 * torch.randn(2, 3200)).unsqueeze(1)  # (2, 1, 8, 21)
    result = explain(model, spectrograms, method="attention")
    rollout = attention_rollout(list(result.extras["attention"].values()))
    frames = spectrograms.shape[-1]
    tokens = rollout.shape[-1]
    assert tokens == (frames - 1) // 2 + 1  # the stride-2 subsampling
    relevance = rollout.mean(dim=1)  # (2, tokens)
    column = [int(j * tokens / frames) for j in range(frames)]  # nearest frame token
    expected = relevance[:, column][:, None, None, :].expand(2, 1, 8, frames)
    torch.testing.assert_close(result.attributions, expected, atol=1e-6, rtol=0)
