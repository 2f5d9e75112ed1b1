"""utils/checks: the shared argument checks. Each bad input (a bool, a float for an int, NaN,
infinity, a negative, a value out of range, a string, None) raises ConfigError naming the owner,
the argument and the value received; good values come back."""

from __future__ import annotations

import math

import pytest

from bigmodel.errors import ConfigError
from bigmodel.utils import checks


def test_good_values_come_back():
    assert checks.positive_int("Model", "width", 3) == 3
    assert checks.positive_int("Model", "vocab", 0, allow_zero=True) == 0
    assert checks.int_at_least("Mel", "n_fft", 2, 2) == 2
    assert checks.positive_number("Opt", "lr", 1) == 1.0 and isinstance(
        checks.positive_number("Opt", "lr", 1), float)
    assert checks.number_at_least("Opt", "lr", 0, 0.0) == 0.0
    assert checks.rate("Layer", "dropout", 0.0) == 0.0
    assert checks.rate("Opt", "momentum", 1, high_inclusive=True) == 1.0
    assert checks.rate("Aug", "scale", 0.5, low=0.5, high=2.0) == 0.5
    assert checks.one_of("Model", "norm", "lrn", ("lrn", "batch", None)) == "lrn"
    assert checks.one_of("Model", "norm", None, ("lrn", "batch", None)) is None


@pytest.mark.parametrize("value", [True, False, 2.0, "3", None, 0, -1, math.nan])
def test_positive_int_refuses(value):
    with pytest.raises(ConfigError) as info:
        checks.positive_int("TransformerModel", "num_layers", value)
    assert str(info.value) == (f"TransformerModel: 'num_layers' must be a positive int; "
                               f"received {value!r}")


def test_non_negative_int_and_int_at_least():
    with pytest.raises(ConfigError, match=r"^RNN: 'vocab_size' must be a non-negative int; "
                                          r"received -1$"):
        checks.positive_int("RNN", "vocab_size", -1, allow_zero=True)
    for value in (1, 1.0, True, "2"):
        with pytest.raises(ConfigError, match=r"^LogMel: 'n_fft' must be an int >= 2; received "):
            checks.int_at_least("LogMel", "n_fft", value, 2)


@pytest.mark.parametrize("value", [0, -0.1, math.nan, math.inf, -math.inf, True, "0.1", None])
def test_positive_number_refuses(value):
    with pytest.raises(ConfigError) as info:
        checks.positive_number("layerwise_lr", "base_lr", value)
    assert str(info.value) == f"layerwise_lr: 'base_lr' must be a number > 0; received {value!r}"


@pytest.mark.parametrize("value", [-1e-9, math.nan, math.inf, False, "1"])
def test_number_at_least_refuses(value):
    with pytest.raises(ConfigError) as info:
        checks.number_at_least("train_skipgram", "subsample", value, 0.0)
    assert str(info.value) == (f"train_skipgram: 'subsample' must be a number >= 0; "
                               f"received {value!r}")


@pytest.mark.parametrize("value", [1.0, 1, -0.01, math.nan, math.inf, True, "0.1", None])
def test_rate_refuses(value):
    with pytest.raises(ConfigError) as info:
        checks.rate("TransformerEncoderLayer", "dropout", value)
    assert str(info.value) == (f"TransformerEncoderLayer: 'dropout' must be in [0, 1); "
                               f"received {value!r}")


def test_rate_bounds():
    with pytest.raises(ConfigError, match=r"'momentum' must be in \[0, 1\]; received 1.5"):
        checks.rate("SGD", "momentum", 1.5, high_inclusive=True)
    with pytest.raises(ConfigError, match=r"'scale' must be in \[0.5, 2\); received 0.25"):
        checks.rate("Aug", "scale", 0.25, low=0.5, high=2.0)


def test_one_of_lists_the_choices():
    with pytest.raises(ConfigError) as info:
        checks.one_of("TextRCNN", "rnn_type", "gru2", ("lstm", "gru"))
    assert str(info.value) == "TextRCNN: 'rnn_type' must be one of 'lstm', 'gru'; received 'gru2'"
    with pytest.raises(ConfigError, match="received True"):  # True == 1, but a bool is not 1
        checks.one_of("Model", "steps", True, (1, 2))
