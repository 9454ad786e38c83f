"""Profiles are data, checked when they are defined; their settings reach the operations."""

import pytest

from t2core.errors import ConfigError
from t2core.profiles import BaselineSlice, TrainSlice, get_profile


def test_a_typo_in_an_override_fails_when_the_profile_is_defined():
    with pytest.raises(ConfigError, match=r"train slice gsm8k: unknown RLConfig setting 'step'; known: .*steps"):
        TrainSlice("gsm8k", (("step", 3),))
    with pytest.raises(ConfigError, match=r"baseline lora/mbpp: unknown NTPConfig setting 'rnak'"):
        BaselineSlice("mbpp", "lora", (("rnak", 8),))
    with pytest.raises(ConfigError, match=r"baseline lora-pg/mbpp: unknown RLConfig setting 'max_len'"):
        BaselineSlice("mbpp", "lora-pg", (("max_len", 8),))  # an NTP setting on a REINFORCE baseline


def test_the_profile_dtype_reaches_training():
    from t2core.rl import RLConfig

    paper = get_profile("paper")  # bf16, and its training slices do not repeat it
    assert RLConfig(task="gsm8k", **paper.train_overrides("gsm8k")).dtype == "bfloat16"
    assert RLConfig(task="gsm8k", **get_profile("tiny").train_overrides("gsm8k")).dtype == "float32"
