"""Every config, built from any JSON value at all, is a config or a ConfigError: never another exception.

And the single rules the checker applies to every field: a bool is not a number, an int field refuses 1.5
and "3", nan and inf are refused by name, a seed is bounded to what numpy and torch take, unknown keys and
non-dict input are refused.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core.config import from_dict
from engine.core.errors import ConfigError
from engine.ddpm.classifier import ClassifierConfig
from engine.ddpm.sample import SampleSettings
from engine.ddpm.schedule import ScheduleConfig
from engine.ddpm.train import DDPMTrainConfig
from engine.ddpm.unet import UNetConfig
from engine.gpt.model import GPTConfig
from engine.gpt.train import GPTTrainConfig
from engine.sae.train import SAETrainConfig

CONFIGS = [SAETrainConfig, GPTTrainConfig, GPTConfig, DDPMTrainConfig, UNetConfig, ScheduleConfig, SampleSettings, ClassifierConfig]
FUZZ = settings(max_examples=40, deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


def build_and_use(cls, values):
    """from_dict, then the config's own full check (for the sampler, against a model): a config or ConfigError."""
    try:
        config = from_dict(cls, values, "settings")
        if cls is SampleSettings:
            config.resolved(UNetConfig(), 1000)
        else:
            config.validate()
    except ConfigError as error:
        assert str(error) and "\n" not in str(error)
        return None
    assert isinstance(config, cls)
    return config


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda cls: cls.__name__)
def test_any_json_for_any_field_gives_the_config_or_a_config_error(cls):
    names = [field.name for field in fields(cls)]

    @FUZZ
    @given(st.dictionaries(st.sampled_from(names), json_values, max_size=4))
    def check(values):
        build_and_use(cls, values)

    check()


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda cls: cls.__name__)
def test_any_json_value_at_all_gives_the_config_or_a_config_error(cls):
    @FUZZ
    @given(json_values)
    def check(values):
        build_and_use(cls, values)

    check()


@pytest.mark.parametrize(
    "cls, values, words",
    [
        (SAETrainConfig, {"seed": 99999999999999999999999}, "seed must be between 0 and 2**63-1, got 99999999999999999999999."),
        (GPTTrainConfig, {"seed": 2**64}, "seed must be between 0 and 2**63-1"),
        (SAETrainConfig, {"beta": float("inf")}, "beta (sparsity weight) must be a finite number, got inf."),
        (SAETrainConfig, {"beta": 1e308}, "beta (sparsity weight) must be between 0 and 1000, got 1e+308."),
        (GPTTrainConfig, {"weight_decay": float("inf")}, "weight_decay must be a finite number, got inf."),
        (GPTTrainConfig, {"learning_rate": float("nan")}, "learning_rate must be a finite number, got nan."),
        (GPTTrainConfig, {"bias": 1}, "bias must be true or false, got 1."),
        (GPTTrainConfig, {"n_layer": True}, "n_layer must be a whole number, got True."),
        (GPTTrainConfig, {"n_layer": 1.5}, "n_layer must be a whole number, got 1.5."),
        (GPTTrainConfig, {"n_layer": "3"}, "n_layer must be a whole number, got '3'."),
        (DDPMTrainConfig, {"channel_mults": "1,2"}, "channel_mults must be a list"),
        (DDPMTrainConfig, {"channel_mults": [1, 2.5]}, "each of channel_mults must be a whole number, got 2.5."),
        (DDPMTrainConfig, {"sample_steps": 10**400}, "sample_steps must be between -2**63 and 2**63-1"),
        (SAETrainConfig, {"width": 3}, "Unknown SAE settings: width."),
        (SAETrainConfig, [1, 2], "The SAE settings must be a mapping of names to values, got [1, 2]."),
        (SampleSettings, {"guidance": float("-inf")}, "guidance must be a finite number, got -inf."),
        (ClassifierConfig, {"dropout": 1.0}, "dropout must be at least 0 and below 1, got 1.0."),
    ],
)
def test_each_rule_names_the_value_and_the_limit(cls, values, words):
    with pytest.raises(ConfigError) as raised:
        cls.from_dict(values) if hasattr(cls, "from_dict") else from_dict(cls, values, "settings")
        cls.from_dict(values).validate()
    assert words in str(raised.value)


def test_a_whole_float_from_a_page_is_a_whole_number_there_only():
    assert SAETrainConfig.from_form({"hidden_size": 25.0, "seed": 3.0}).hidden_size == 25
    with pytest.raises(ConfigError, match="seed must be a whole number, got inf"):
        SAETrainConfig.from_form({"seed": float("inf")})
    with pytest.raises(ConfigError, match="hidden_size must be a whole number, got 25.0"):
        SAETrainConfig.from_dict({"hidden_size": 25.0})


def test_defaults_and_presets_still_pass():
    from engine.ddpm.train import PRESETS as DDPM_PRESETS
    from engine.gpt.train import PRESETS as GPT_PRESETS

    for config in [*GPT_PRESETS.values(), *DDPM_PRESETS.values(), SAETrainConfig(), ClassifierConfig(), UNetConfig(), ScheduleConfig()]:
        assert config.validate() is config
