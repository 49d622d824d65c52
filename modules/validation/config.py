"""``adapter_config.json``: read as a PEFT LoRA config, or say what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

from composition.engine import patterns
from modules.validation.common import ADAPTER_CONFIG, AdapterInvalid, LoraConfigInfo, Problem

SUPPORTED_TASK_TYPES = ("CAUSAL_LM", "SEQ_2_SEQ_LM")
MAX_CONFIG_BYTES = 1_000_000


def read_lora_config(path: Path) -> LoraConfigInfo:
    """Parse ``adapter_config.json`` as a PEFT LoRA config, or say what is wrong."""
    file = ADAPTER_CONFIG
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise AdapterInvalid.single(file, f"is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        raw = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterInvalid.single(file, f"is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise AdapterInvalid.single(file, "must hold a JSON object")

    problems: list[Problem] = []

    def fail(message: str) -> None:
        problems.append(Problem(file, message))

    peft_type = raw.get("peft_type")
    if peft_type != "LORA":
        fail(f'"peft_type" must be "LORA", found {peft_type!r}')
    r = raw.get("r")
    if not _is_positive_int(r):
        fail(f'"r" (the rank) must be a positive integer, found {r!r}')
    alpha = raw.get("lora_alpha")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or alpha <= 0:
        fail(f'"lora_alpha" must be a positive number, found {alpha!r}')
    target_modules = _read_target_modules(raw.get("target_modules"), fail)
    task_type = raw.get("task_type")
    if task_type is not None and task_type not in SUPPORTED_TASK_TYPES:
        fail(
            f'"task_type" {task_type!r} is not supported; the hub hosts '
            f"{' and '.join(SUPPORTED_TASK_TYPES)} adapters"
        )
    if raw.get("use_dora"):
        fail('"use_dora" is true: DoRA adapters are not supported, only plain LoRA')
    rank_pattern = _read_pattern_map(
        raw, "rank_pattern", "rank", _is_positive_int, "ranks are positive integers", fail
    )
    _read_pattern_map(
        raw, "alpha_pattern", "alpha", _is_positive_number, "alphas are positive numbers", fail
    )
    for problem in patterns.config_pattern_problems(raw):
        fail(problem)
    base_name = raw.get("base_model_name_or_path")
    if base_name is not None and not isinstance(base_name, str):
        fail(f'"base_model_name_or_path" must be a string, found {base_name!r}')

    if problems:
        raise AdapterInvalid(problems)
    return LoraConfigInfo(
        r=r,
        lora_alpha=float(alpha),
        target_modules=target_modules,
        task_type=task_type,
        base_model_name_or_path=base_name or None,
        rank_pattern=rank_pattern,
        raw=raw,
    )


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_positive_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _read_target_modules(value: object, fail) -> tuple[str, ...] | str:
    # A string is a regular expression; config_pattern_problems says whether it is safe.
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value and all(isinstance(item, str) and item for item in value):
        return tuple(value)
    fail(f'"target_modules" must be a non-empty list of module names, found {value!r}')
    return ()


def _read_pattern_map(raw: dict, name: str, what: str, valid, rule: str, fail) -> dict:
    """``rank_pattern`` or ``alpha_pattern``, pattern to value; config_pattern_problems
    checks the patterns."""
    value = raw.get(name) or {}
    if not isinstance(value, dict):
        fail(f'"{name}" must be an object of pattern to {what}, found {value!r}')
        return {}
    for pattern, number in value.items():
        if not valid(number):
            fail(f'"{name}" gives {pattern!r} the {what} {number!r}; {rule}')
    return value
