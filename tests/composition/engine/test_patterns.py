r"""The rule for regular expressions in adapter configs: what PEFT users write passes,
patterns a backtracking engine can take exponential or quadratic time on are refused.

Refusals are decided from the pattern alone, so none of these tests runs a slow match.
"""

import pytest

from composition.engine.patterns import (
    FULL_NAME,
    LAYERS_NAME,
    MAX_MODULE_PATH_LENGTH,
    PATTERN_KEY,
    SAVED_MODULE,
    config_pattern_problems,
    key_matches,
    name_matches,
    pattern_problem,
)

LLAMA_MODULES = [
    f"model.layers.{layer}.{block}.{leaf}"
    for layer in range(2)
    for block, leaves in (
        ("self_attn", ("q_proj", "k_proj", "v_proj", "o_proj")),
        ("mlp", ("gate_proj", "up_proj", "down_proj")),
    )
    for leaf in leaves
] + ["model.embed_tokens", "model.layers.0.input_layernorm", "model.norm", "lm_head"]
ATTENTION = {"q_proj", "k_proj", "v_proj", "o_proj"}
MLP = {"gate_proj", "up_proj", "down_proj"}

# The pattern of the attack, 14 characters, 2**23 ways to try per module name; and a
# variant that also matches real names (so an old check found nothing wrong with it).
HOSTILE = r"(?:.|.){23}.*X"
HOSTILE_MATCHING_REAL_NAMES = r"(?:.|.){23}.*proj"


@pytest.mark.parametrize(
    ("pattern", "selected"),
    [
        (r".*\.(q_proj|v_proj)", {"q_proj", "v_proj"}),
        (r".*(q_proj|v_proj)$", {"q_proj", "v_proj"}),
        (r"model\.layers\.\d+\.self_attn\.(q|v)_proj", {"q_proj", "v_proj"}),
        (r"^(?!.*lm_head).*proj$", ATTENTION | MLP),
        (r".*\.layers\.(0|1)\.mlp\.[^.]+", MLP),
        (r".*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)", ATTENTION | MLP),
        (r"model\.layers\.[0-9]+\.self_attn\.[qkv]_proj", {"q_proj", "k_proj", "v_proj"}),
        ("q_proj|v_proj", set()),  # full-matched: no module is named just q_proj
    ],
)
def test_patterns_people_write_are_accepted_and_match_as_peft_does(pattern, selected):
    from peft.utils.other import match_target_against_key

    assert pattern_problem(pattern, FULL_NAME) is None
    matched = {name for name in LLAMA_MODULES if name_matches(pattern, name)}
    assert {name.rsplit(".", 1)[-1] for name in matched} == selected
    assert matched == {name for name in LLAMA_MODULES if match_target_against_key(pattern, name)}


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (HOSTILE, "repeats a group"),
        (HOSTILE_MATCHING_REAL_NAMES, "repeats a group"),
        (r"(?:.|.){8}.*proj", "repeats a group"),
        (r"(a+)+proj", "repeats a group"),
        (r"(q|v)*_proj", "repeats a group"),
        # The repetition written out: no quantifier on a group, the same ways to try.
        ("(?:.|.)" * 23 + ".*proj", "can match the same text in too many ways"),
        (r".*.*X", "repetitions that can match the same characters"),
        (r".*\d+\.q_proj", "repetitions that can match the same characters"),
        (r".*layers\.\d+\..*proj", "repetitions that can match the same characters"),
        (r"q_proj.*+", "repeats a repetition"),
        (r"(\w+)\.\1", r"refers back to a group (\1)"),
        (r"(?P<x>q)(?P=x)", "has a '(?P' group"),
        (r"(?i)Q_PROJ", "has a '(?i' group"),
        (r"(?<=self_attn\.)q_proj", "has a '(?<' group"),
        (r"q_proj\Z", r"uses the escape \Z"),
        (r"q proj", "uses ' ', which is not part of a module name"),
    ],
)
def test_patterns_that_can_take_too_long_are_refused_with_advice(pattern, reason):
    problem = pattern_problem(pattern, FULL_NAME)

    assert problem is not None and reason in problem
    assert problem.endswith('list the module names instead, e.g. ["q_proj", "v_proj"]')


def test_length_and_syntax_are_still_checked_first():
    assert pattern_problem("q" * 257, FULL_NAME).startswith("is longer than 256 characters")
    assert pattern_problem("(q_proj", FULL_NAME).startswith("is not a valid regular expression")


def test_rank_pattern_keys_are_judged_as_peft_embeds_them():
    # PEFT matches a key as (.*\.)?(key)$: it already starts with a wildcard.
    assert pattern_problem("q_proj", PATTERN_KEY) is None
    assert pattern_problem(r"model\.layers\.0\.self_attn\.q_proj", PATTERN_KEY) is None
    assert pattern_problem(r"layers\.\d+\.mlp\.(gate|up)_proj", PATTERN_KEY) is None
    assert pattern_problem(r".*\.q_proj", FULL_NAME) is None

    problem = pattern_problem(r".*\.q_proj", PATTERN_KEY)

    assert "repetitions that can match the same characters" in problem
    assert 'use module names as keys, e.g. {"q_proj": 16}' in problem
    from peft.utils.other import get_pattern_key

    for key in ("q_proj", r"layers\.1\.self_attn\.q_proj", "proj"):
        for name in LLAMA_MODULES:
            assert key_matches(key, name) == (get_pattern_key([key], name) == key)


def test_modules_to_save_and_layers_pattern_entries_must_be_simple_names():
    assert pattern_problem("lm_head", SAVED_MODULE) is None
    assert pattern_problem("layers", LAYERS_NAME) is None
    assert "repeats a group" in pattern_problem("(?:.|.){12}", SAVED_MODULE)
    assert "repetitions that can match" in pattern_problem(".*", LAYERS_NAME)


def test_every_pattern_field_of_a_config_is_checked():
    config = {
        "target_modules": HOSTILE,
        "exclude_modules": r".*\.lm_head",
        "rank_pattern": {"q_proj": 8, HOSTILE_MATCHING_REAL_NAMES: 4},
        "alpha_pattern": {r".*.*v_proj": 16},
        "modules_to_save": ["lm_head", "(a+)+"],
        "layers_pattern": "layers",
    }

    problems = config_pattern_problems(config)

    assert [p.split(" ")[0] for p in problems] == [
        '"target_modules"', '"rank_pattern"', '"alpha_pattern"', '"modules_to_save"',
    ]  # fmt: skip
    assert problems[1].startswith(f'"rank_pattern" key {HOSTILE_MATCHING_REAL_NAMES!r} repeats')


def test_lists_of_names_and_all_linear_are_always_accepted():
    # PEFT compares list entries as strings; "all-linear" is a keyword, not a pattern.
    config = {"target_modules": ["(?:.|.){23}.*X", "q_proj"], "exclude_modules": ["lm_head"]}

    assert config_pattern_problems(config) == []
    assert config_pattern_problems({"target_modules": "all-linear"}) == []


def test_too_many_pattern_keys_are_refused():
    keys = {f"layers.{i}.q_proj": 8 for i in range(1025)}

    assert config_pattern_problems({"rank_pattern": keys}) == [
        '"rank_pattern" has 1025 keys; at most 1024'
    ]


def test_the_characters_of_all_patterns_together_are_bounded():
    keys = {f"model\\.layers\\.{i}\\.self_attn\\.(q|k|v|o)_proj": 8 for i in range(1000)}

    [problem] = config_pattern_problems({"rank_pattern": keys})

    assert problem.startswith("the patterns of the config hold ")
    assert problem.endswith("characters; at most 32768")


def test_module_paths_are_matched_only_up_to_the_bound():
    longest = "m" * (MAX_MODULE_PATH_LENGTH - len(".q_proj")) + ".q_proj"
    assert name_matches(r".*\.q_proj", longest)

    with pytest.raises(ValueError, match="at most 256"):
        name_matches(r".*\.q_proj", "m" + longest)
