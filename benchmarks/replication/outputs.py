"""From a method's outputs to a run: prompts as the model sees them, exact match, timing."""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.replication.plan import MethodSpec, RunResult, TaskSplit
from composition.engine.types import SEQ_2_SEQ_LM, Example, ModelRef


def prompt_text(tokenizer, base: ModelRef, shots: Sequence[Example], text: str) -> str:
    """What the model is given at inference, as ``generate`` would format it."""
    from composition.engine.encoding import format_few_shot_prompt, format_prompt

    if base.task_type == SEQ_2_SEQ_LM:
        return "".join(f"{shot.input}\n{shot.target}\n\n" for shot in shots) + text
    if shots:
        return format_few_shot_prompt(tokenizer, shots, text)
    return format_prompt(tokenizer, text)


def prompt_tokens(tokenizer, base: ModelRef, prompts: Sequence[str]) -> float:
    causal_chat = base.task_type != SEQ_2_SEQ_LM and getattr(tokenizer, "chat_template", None)
    counts = [len(tokenizer(p, add_special_tokens=not causal_chat)["input_ids"]) for p in prompts]
    return sum(counts) / len(counts) if counts else 0.0


def scored(
    split: TaskSplit,
    method: MethodSpec,
    seed: int,
    outputs: Sequence[str],
    tokens: float,
    seconds: float,
) -> RunResult:
    from composition.engine.scoring import exact_match

    correct = tuple(
        exact_match(out, ex.target) for out, ex in zip(outputs, split.evaluation, strict=True)
    )
    return RunResult(
        task=split.task,
        method=method.name,
        seed=seed,
        accuracy=sum(correct) / len(correct),
        outputs=tuple(outputs),
        correct=correct,
        tokens_per_example=tokens,
        seconds=seconds,
    )
