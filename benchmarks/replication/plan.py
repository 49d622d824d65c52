"""What a replication runs: tasks, their fixed splits, methods, and the plan of runs.

Every task file ``<task>.jsonl`` is split once, with a fixed seed, into the
few-shot examples (composition examples for LoraHub, prompt shots for
in-context learning) and up to ``eval_count`` other examples that every method
is scored on. Deterministic methods run once; the others once per seed.

Besides generation (zero-shot, ICL) and composition, the baselines that tell
answer format from skill: the majority answer of the shots, the best single
module on the shots, and rank classification, which scores the task's possible
answers with the model (alone, with shots, or with the module another method
found) instead of generating one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from composition.engine.examples import read_examples
from composition.engine.scoring import answer_choices
from composition.engine.types import (
    AdapterRef,
    CompositionSettings,
    EngineError,
    Example,
    ModelRef,
)

ZERO_SHOT, IN_CONTEXT, COMPOSE = "zero-shot", "icl", "compose"
MAJORITY, MAJORITY_ORACLE = "majority", "majority-oracle"
BEST_SINGLE, RANK = "best-single", "rank"
# Kinds that score without a model; the others load the base model.
MODEL_FREE = (MAJORITY, MAJORITY_ORACLE)
PAPER_MODULE_COUNT = 20


@dataclass(frozen=True)
class TaskSpec:
    name: str
    examples: tuple[Example, ...]


@dataclass(frozen=True)
class TaskSplit:
    task: str
    # Composition examples (LoraHub) and prompt shots (ICL): the same ones.
    shots: tuple[Example, ...]
    evaluation: tuple[Example, ...]
    # The task's answer set for rank classification (``answer_choices`` over every example's
    # target: a property of the task's format); empty for an open-ended task.
    answers: tuple[str, ...] = ()


@dataclass(frozen=True)
class MethodSpec:
    name: str
    kind: str  # ZERO_SHOT, IN_CONTEXT, COMPOSE, MAJORITY, MAJORITY_ORACLE, BEST_SINGLE or RANK
    label: str
    description: str
    settings: CompositionSettings = field(default_factory=CompositionSettings)
    # Compositions: modules drawn at random per seed (None: every module).
    sample: int | None = None
    # Run once per seed (random module draws or a random search); else once, with seed 0.
    seeded: bool = False
    # Rank classification: the earlier method whose model it scores with (its module, its
    # shots in the prompt) and whose generated outputs stand on a task without an answer set.
    reuses: str | None = None
    # Uses the evaluation examples' labels: shown for context, never a method one could run.
    oracle: bool = False


@dataclass(frozen=True)
class RunKey:
    task: str
    method: str
    seed: int


@dataclass(frozen=True)
class RunResult:
    task: str
    method: str
    seed: int
    accuracy: float
    # One output per evaluation example, in the split's order, and whether it matched.
    outputs: tuple[str, ...]
    correct: tuple[bool, ...]
    # Prompt tokens fed to the model per evaluation example (ICL: shots included).
    tokens_per_example: float
    seconds: float
    modules: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()
    fingerprint: str = ""
    # Compositions: module preselection plus the weight search, within ``seconds``.
    search_seconds: float = 0.0
    # Rank classification: the answers scored; empty where the task has no answer set and
    # the outputs are the generated ones of the method it reuses.
    answer_set: tuple[str, ...] = ()

    @property
    def key(self) -> RunKey:
        return RunKey(self.task, self.method, self.seed)


@dataclass(frozen=True)
class ReplicationSetup:
    base: ModelRef
    modules: tuple[AdapterRef, ...]
    tasks: tuple[TaskSpec, ...]
    methods: tuple[MethodSpec, ...]
    seeds: int = 5
    shots: int = 5
    eval_count: int = 100
    split_seed: int = 0
    # Every method runs in this precision ("auto": fp32 on a CPU, bf16 on a GPU).
    dtype: str = "auto"


def default_methods(max_new_tokens: int = 32) -> tuple[MethodSpec, ...]:
    """The paper's baselines and LoraHub, and the hub's improved composition."""
    paper = CompositionSettings(steps=40, optimizer="NGOpt", max_new_tokens=max_new_tokens)
    return (
        MethodSpec(
            "zero-shot",
            ZERO_SHOT,
            "Zero-shot",
            "the base model alone, greedy decoding",
            CompositionSettings(max_new_tokens=max_new_tokens),
        ),
        MethodSpec(
            "icl",
            IN_CONTEXT,
            "ICL",
            "the few-shot examples as earlier turns of the chat, then the question",
            CompositionSettings(max_new_tokens=max_new_tokens),
        ),
        MethodSpec(
            "lorahub",
            COMPOSE,
            "LoraHub",
            f"{PAPER_MODULE_COUNT} modules drawn at random per seed, NGOpt, 40 steps, "
            "L1 0.05 (the paper's setting)",
            paper,
            sample=PAPER_MODULE_COUNT,
            seeded=True,
        ),
        MethodSpec(
            "improved",
            COMPOSE,
            "Improved",
            f"the {PAPER_MODULE_COUNT} modules with the lowest loss alone on the few-shot "
            "examples, chosen from all modules (one forward pass each) instead of drawn at "
            "random, then NGOpt for 80 steps instead of 40, L1 0.05. Nothing in it is random "
            "(NGOpt at this budget runs Cobyla, which draws nothing), so it runs once per task "
            "and its average and best are the same number",
            replace(paper, steps=80, preselect=PAPER_MODULE_COUNT),
        ),
    )


def baseline_methods(max_new_tokens: int = 32) -> tuple[MethodSpec, ...]:
    """What tells answer format from skill: majority answers, best single module, ranking."""
    generation = CompositionSettings(max_new_tokens=max_new_tokens)
    ranked = "the task's answer set ranked by likelihood"
    return (
        MethodSpec(
            "majority",
            MAJORITY,
            "Majority",
            "the most frequent target of the few-shot examples, answered to every question "
            "(a tie goes to the one seen first)",
        ),
        MethodSpec(
            "majority-oracle",
            MAJORITY_ORACLE,
            "Majority (eval, oracle)",
            "the most frequent target of the evaluation examples themselves, answered to every "
            "question: it reads the labels it is scored on, so it is context, not a method",
            oracle=True,
        ),
        MethodSpec(
            "best-single",
            BEST_SINGLE,
            "Best single",
            "the one module with the lowest loss alone on the few-shot examples, chosen from "
            "all modules, at weight 1, greedy decoding",
            generation,
        ),
        MethodSpec(
            "rank-zero-shot",
            RANK,
            "Rank 0-shot",
            f"{ranked} by the base model alone",
            generation,
            reuses="zero-shot",
        ),
        MethodSpec(
            "rank-icl",
            RANK,
            "Rank ICL",
            f"{ranked} by the base model, the few-shot examples in the prompt as for ICL",
            generation,
            reuses="icl",
        ),
        MethodSpec(
            "rank-best-single",
            RANK,
            "Rank best single",
            f"{ranked} with the Best single module",
            generation,
            reuses="best-single",
        ),
        MethodSpec(
            "rank-lorahub",
            RANK,
            "Rank LoraHub",
            f"{ranked} with the module LoraHub composed, per seed",
            generation,
            seeded=True,
            reuses="lorahub",
        ),
    )


LAYER_GROUPS = 4


def strategy_methods(max_new_tokens: int = 32) -> tuple[MethodSpec, ...]:
    """The engine's newer composition strategies, each once its setting exists in the engine."""
    paper = CompositionSettings(steps=40, optimizer="NGOpt", max_new_tokens=max_new_tokens)
    known = {f.name for f in fields(CompositionSettings)}
    methods = []
    if "merge" in known:
        methods.append(
            MethodSpec(
                "merge-exact",
                COMPOSE,
                "Exact merge",
                f"LoraHub's setting ({PAPER_MODULE_COUNT} modules drawn per seed, NGOpt, 40 "
                "steps, L1 0.05) with the exact merge: each module's own update wᵢ·sᵢ·BᵢAᵢ "
                "summed instead of A and B averaged apart",
                replace(paper, merge="exact"),
                sample=PAPER_MODULE_COUNT,
                seeded=True,
            )
        )
    if {"strategy", "preselect_method"} <= known:
        methods.append(
            MethodSpec(
                "auto",
                COMPOSE,
                "Auto",
                f"the {PAPER_MODULE_COUNT} modules retrieval ranks first among all, then "
                "strategy auto: leave-one-out validation on the few-shot examples picks the "
                "search's weights, the best single module, the uniform average or the base model",
                replace(
                    paper,
                    preselect=PAPER_MODULE_COUNT,
                    preselect_method="retrieval",
                    strategy="auto",
                ),
            )
        )
    if "weight_groups" in known:
        methods.append(
            MethodSpec(
                "groups",
                COMPOSE,
                "Layer groups",
                f"Improved's {PAPER_MODULE_COUNT} modules (lowest loss alone) and 80 NGOpt "
                f"steps, with {LAYER_GROUPS} weights per module, one per group of consecutive "
                "layers, instead of one",
                replace(paper, steps=80, preselect=PAPER_MODULE_COUNT, weight_groups=LAYER_GROUPS),
            )
        )
    return tuple(methods)


def read_tasks(folder: str | Path, names: Sequence[str] | None = None) -> tuple[TaskSpec, ...]:
    """Every ``<task>.jsonl`` in ``folder`` (or only ``names``), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EngineError(f"{folder}: not a folder of <task>.jsonl files")
    files = {path.stem: path for path in sorted(folder.glob("*.jsonl"))}
    if names:
        unknown = [n for n in names if n not in files]
        if unknown:
            raise EngineError(f"no task file for {', '.join(unknown)} in {folder}")
        files = {n: files[n] for n in sorted(set(names))}
    if not files:
        raise EngineError(f"{folder}: no <task>.jsonl files")
    return tuple(TaskSpec(name, tuple(read_examples(path))) for name, path in files.items())


def split_task(task: TaskSpec, shots: int, eval_count: int, seed: int = 0) -> TaskSplit:
    """A fixed split: the examples shuffled by (seed, task name), shots first, then evaluation."""
    if shots < 1 or eval_count < 1:
        raise EngineError("shots and eval_count must be at least 1")
    if len(task.examples) <= shots:
        raise EngineError(
            f"{task.name}: {len(task.examples)} examples, need more than the {shots} shots"
        )
    order = list(range(len(task.examples)))
    # Seeding with a string is stable across runs and Python versions (it is hashed with sha512).
    random.Random(f"{seed}:{task.name}").shuffle(order)
    picked = [task.examples[i] for i in order]
    answers = answer_choices(example.target for example in task.examples) or ()
    return TaskSplit(
        task.name, tuple(picked[:shots]), tuple(picked[shots : shots + eval_count]), answers
    )


def planned_runs(setup: ReplicationSetup) -> list[RunKey]:
    """Task by task, methods in the given order; deterministic methods run once (seed 0)."""
    return [
        RunKey(task.name, method.name, seed)
        for task in setup.tasks
        for method in setup.methods
        for seed in (range(setup.seeds) if method.seeded else (0,))
    ]


def sample_modules(
    modules: Sequence[AdapterRef], count: int | None, seed: int
) -> tuple[AdapterRef, ...]:
    """``count`` modules drawn with ``seed`` from the name-sorted set; all when fewer exist."""
    ordered = sorted(modules, key=lambda ref: ref.name)
    if count is None or count >= len(ordered):
        return tuple(ordered)
    return tuple(random.Random(seed).sample(ordered, count))


def check_setup(setup: ReplicationSetup) -> None:
    if setup.seeds < 1:
        raise EngineError("seeds must be at least 1")
    names = [method.name for method in setup.methods]
    if len(set(names)) != len(names):
        raise EngineError("a method is listed twice")
    earlier: dict[str, MethodSpec] = {}
    for method in setup.methods:
        source = earlier.get(method.reuses) if method.reuses else None
        if method.reuses and source is None:
            raise EngineError(f"{method.name} reuses {method.reuses}, which must run before it")
        if source is not None and source.seeded != method.seeded:
            raise EngineError(f"{method.name} must have as many seeds as {method.reuses}")
        earlier[method.name] = method
    if any(m.kind == BEST_SINGLE for m in setup.methods) and not setup.modules:
        raise EngineError("the best single module needs at least 1 module; none found")
    if any(m.kind == COMPOSE for m in setup.methods) and len(setup.modules) < 2:
        raise EngineError(
            f"composition methods need at least 2 modules; {len(setup.modules)} found"
        )
