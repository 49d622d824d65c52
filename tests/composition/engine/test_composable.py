"""The one rule of what can be composed, from an adapter config alone."""

import pytest

from composition.engine.composable import composability

PLAIN = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"]}


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"r": 64, "lora_alpha": 8, "use_rslora": True},
        {"rank_pattern": {"q_proj": 4}, "alpha_pattern": {"layers\\.0\\.self_attn\\.q_proj": 2}},
        {"bias": "none", "modules_to_save": None, "fan_in_fan_out": False, "use_dora": False},
    ],
)
def test_plain_lora_of_any_rank_alpha_or_pattern_is_composable(change):
    assert composability({**PLAIN, **change}) == (True, "")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"modules_to_save": ["lm_head"]}, "modules_to_save is set: modules_to_save replaces"),
        ({"fan_in_fan_out": True}, "fan_in_fan_out is set"),
        ({"bias": "lora_only"}, "bias is 'lora_only'"),
        ({"use_dora": True}, "use_dora is set: DoRA"),
        ({"lora_bias": True}, "lora_bias is set"),
        ({"peft_type": "IA3"}, "peft_type is 'IA3'"),
        ({"target_modules": ".*.*q"}, 'adapter_config.json "target_modules" has repetitions'),
    ],
)
def test_what_cannot_be_composed_says_why(change, reason):
    ok, why = composability({**PLAIN, **change})

    assert not ok
    assert why.startswith(reason)
