"""What a replication runs: tasks, their fixed splits, methods, and the plan of runs.

Every task file ``<task>.jsonl`` is split once, with a fixed seed, into the
few-shot examples (composition examples for LoraHub, prompt shots for
in-context learning) and up to ``eval_count`` other examples that every method
is scored on. Deterministic methods run once; the others once per seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from composition.engine.examples import read_examples
from composition.engine.types import (
    AdapterRef,
    CompositionSettings,
    EngineError,
    Example,
    ModelRef,
)

ZERO_SHOT, IN_CONTEXT, COMPOSE = "zero-shot", "icl", "compose"
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


@dataclass(frozen=True)
class MethodSpec:
    name: str
    kind: str  # ZERO_SHOT, IN_CONTEXT or COMPOSE
    label: str
    description: str
    settings: CompositionSettings = field(default_factory=CompositionSettings)
    # Compositions: modules drawn at random per seed (None: every module).
    sample: int | None = None
    # Run once per seed (random module draws or a random search); else once, with seed 0.
    seeded: bool = False


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
    return TaskSplit(task.name, tuple(picked[:shots]), tuple(picked[shots : shots + eval_count]))


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
    if any(m.kind == COMPOSE for m in setup.methods) and len(setup.modules) < 2:
        raise EngineError(
            f"composition methods need at least 2 modules; {len(setup.modules)} found"
        )
