"""Replicating the LoraHub paper's Table 1 on a folder of tasks, resumably.

Every task file ``<task>.jsonl`` is split once, with a fixed seed, into the
few-shot examples (composition examples for LoraHub, prompt shots for
in-context learning) and up to ``eval_count`` other examples that every method
is scored on. Each (task, method, seed) run is cached as its own JSON file
whose name carries a fingerprint of everything the run depends on (the split,
the method's settings, the base model and, for compositions, the module set).
Changing any of those recomputes the affected runs; adding tasks, methods or
seeds computes only what is new. The report is rendered from the cache alone.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from composition.engine.examples import read_examples
from composition.engine.types import (
    SEQ_2_SEQ_LM,
    AdapterRef,
    CompositionSettings,
    EngineError,
    Example,
    ModelRef,
)

if TYPE_CHECKING:
    # Both pull in torch; the runner imports them only when it runs.
    from composition.engine.adapters import AdapterCache
    from composition.engine.loading import BaseModelCache

# Bumped when a change in this file changes results: every cached run then recomputes.
CACHE_VERSION = 1
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


# Fingerprints ---------------------------------------------------------------


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def base_fingerprint(base: ModelRef) -> str:
    """The identifier, the config and the name and size of every file of the model folder."""
    folder = Path(base.path)
    files = sorted(
        (str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file()
    )
    config = folder / "config.json"
    config_hash = _file_sha256(config) if config.is_file() else None
    return _digest([base.identifier, base.task_type, config_hash, files])


def modules_fingerprint(modules: Sequence[AdapterRef]) -> str:
    """Names and the hash of each module's files (config and weights)."""
    entries = []
    for ref in sorted(modules, key=lambda r: r.name):
        folder = Path(ref.path)
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.startswith("adapter"))
        entries.append([ref.name, ref.sha256, [(p.name, _file_sha256(p)) for p in files]])
    return _digest(entries)


class Fingerprints:
    """Per-run fingerprints; the costly parts (file hashes) computed once."""

    def __init__(self, setup: ReplicationSetup):
        self.setup = setup
        self._base = base_fingerprint(setup.base)
        self._modules: str | None = None
        self.splits = {
            task.name: split_task(task, setup.shots, setup.eval_count, setup.split_seed)
            for task in setup.tasks
        }
        self.methods = {method.name: method for method in setup.methods}

    def modules(self) -> str:
        if self._modules is None:
            self._modules = modules_fingerprint(self.setup.modules)
        return self._modules

    def run(self, task: str, method_name: str) -> str:
        method = self.methods[method_name]
        split = self.splits[task]
        parts = {
            "version": CACHE_VERSION,
            "base": self._base,
            "dtype": self.setup.dtype,
            "split": _digest([asdict(e) for e in (*split.shots, *split.evaluation)]),
            "method": [method.kind, method.sample, asdict(method.settings)],
            # Zero-shot and ICL do not use modules: new modules leave them cached.
            "modules": self.modules() if method.kind == COMPOSE else None,
        }
        return _digest(parts)[:16]


# Cache ----------------------------------------------------------------------


def cache_path(cache_dir: Path, key: RunKey, fingerprint: str) -> Path:
    return Path(cache_dir) / key.task / key.method / f"seed{key.seed}-{fingerprint}.json"


def load_cached(path: Path) -> RunResult | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return RunResult(
            **{
                **data,
                "outputs": tuple(data["outputs"]),
                "correct": tuple(data["correct"]),
                "modules": tuple(data["modules"]),
                "weights": tuple(data["weights"]),
            }
        )
    except (ValueError, KeyError, TypeError):
        # A file cut short by a crash: computed again.
        return None


def save_cached(path: Path, result: RunResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(asdict(result), indent=1) + "\n")
    # Renamed into place, so an interrupted write never looks like a result.
    partial.replace(path)


# Running ----------------------------------------------------------------------

RunFunction = Callable[[ReplicationSetup, TaskSplit, MethodSpec, int], RunResult]


def run_replication(
    setup: ReplicationSetup,
    cache_dir: str | Path,
    run: RunFunction | None = None,
    progress: Callable[[str], None] | None = None,
    compute: bool = True,
) -> list[RunResult]:
    """Every planned run, from the cache or computed (and cached); in plan order.

    With ``compute=False`` nothing is computed: missing runs are left out.
    """
    check_setup(setup)
    fingerprints = Fingerprints(setup)
    methods = fingerprints.methods
    plan = planned_runs(setup)
    paths = {
        key: cache_path(Path(cache_dir), key, fingerprints.run(key.task, key.method))
        for key in plan
    }
    cached = {key: load_cached(path) for key, path in paths.items()}
    to_compute = sum(result is None for result in cached.values())
    say = progress or (lambda message: None)
    if compute:
        say(f"{len(plan)} runs planned: {len(plan) - to_compute} cached, {to_compute} to compute")
    started = time.perf_counter()
    computed = 0
    results = []
    for index, key in enumerate(plan, start=1):
        result = cached[key]
        if result is None and compute:
            method = methods[key.method]
            run = run or EngineRunner()
            say(f"[{index}/{len(plan)}] {key.task} · {key.method} · seed {key.seed} …")
            result = replace(
                run(setup, fingerprints.splits[key.task], method, key.seed),
                fingerprint=fingerprints.run(key.task, key.method),
            )
            save_cached(paths[key], result)
            computed += 1
            elapsed = time.perf_counter() - started
            eta = elapsed / computed * (to_compute - computed)
            say(
                f"[{index}/{len(plan)}] {key.task} · {key.method} · seed {key.seed}: "
                f"accuracy {result.accuracy:.1%} in {result.seconds:.0f}s · "
                f"elapsed {_duration(elapsed)} · ETA {_duration(eta)}"
            )
        if result is not None:
            results.append(result)
    return results


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


class EngineRunner:
    """Runs one method on one task split with the engine (models cached across runs)."""

    def __init__(
        self,
        models: BaseModelCache | None = None,
        adapters: AdapterCache | None = None,
        device: str = "auto",
    ):
        from composition.engine.adapters import adapter_cache
        from composition.engine.loading import base_model_cache

        self.models = models or base_model_cache
        self.adapters = adapters or adapter_cache
        self.device = device

    def __call__(
        self, setup: ReplicationSetup, split: TaskSplit, method: MethodSpec, seed: int
    ) -> RunResult:
        started = time.perf_counter()
        if method.kind == COMPOSE:
            return self._compose(setup, split, method, seed, started)
        if method.kind not in (ZERO_SHOT, IN_CONTEXT):
            raise EngineError(f"{method.name}: unknown kind of method {method.kind!r}")
        import torch

        from composition.engine.generate import generate

        loaded, _ = self.models.get(setup.base, self.device, setup.dtype)
        shots = split.shots if method.kind == IN_CONTEXT else ()
        prompts = [
            prompt_text(loaded.tokenizer, setup.base, shots, ex.input) for ex in split.evaluation
        ]
        with loaded.lock, torch.inference_mode():
            outputs = generate(
                loaded.model,
                loaded.tokenizer,
                prompts,
                setup.base.task_type,
                loaded.device,
                max_new_tokens=method.settings.max_new_tokens,
                prompts_are_formatted=True,
            )
        return _scored(
            split,
            method,
            seed,
            outputs,
            prompt_tokens(loaded.tokenizer, setup.base, prompts),
            time.perf_counter() - started,
        )

    def _compose(
        self,
        setup: ReplicationSetup,
        split: TaskSplit,
        method: MethodSpec,
        seed: int,
        started: float,
    ) -> RunResult:
        from composition.engine.compose import CompositionRequest, compose

        request = CompositionRequest(
            base=setup.base,
            modules=sample_modules(setup.modules, method.sample, seed),
            examples=split.shots,
            heldout=split.evaluation,
            settings=replace(method.settings, seed=seed, device=self.device, dtype=setup.dtype),
        )
        result = compose(request, models=self.models, adapters=self.adapters)
        loaded, _ = self.models.get(setup.base, self.device, setup.dtype)
        prompts = [
            prompt_text(loaded.tokenizer, setup.base, (), ex.input) for ex in split.evaluation
        ]
        return replace(
            _scored(
                split,
                method,
                seed,
                [p.output for p in result.predictions],
                prompt_tokens(loaded.tokenizer, setup.base, prompts),
                time.perf_counter() - started,
            ),
            modules=result.module_names,
            weights=result.weights,
            search_seconds=result.timings.select_seconds + result.timings.optimize_seconds,
        )


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


def _scored(
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


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes = round(seconds / 60)
    return f"{minutes}m" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


# Report -----------------------------------------------------------------------


@dataclass(frozen=True)
class MethodScore:
    """One method on one task: the mean and best accuracy over its seeds."""

    mean: float
    best: float
    runs: int


@dataclass(frozen=True)
class ReportTable:
    tasks: tuple[str, ...]
    methods: tuple[MethodSpec, ...]
    scores: dict[tuple[str, str], MethodScore]
    tokens: dict[str, float]  # method: mean prompt tokens per example over tasks
    seconds: dict[tuple[str, str], float]  # (task, method): all its runs together
    eval_counts: dict[str, int]
    search_seconds: dict[str, float] = field(default_factory=dict)  # method: mean per run

    def averages(self) -> dict[str, MethodScore]:
        """Per method, over the tasks where every method has a result (as in Table 1)."""
        complete = self.complete_tasks()
        out = {}
        for method in self.methods:
            scores = [self.scores[(t, method.name)] for t in complete]
            if scores:
                out[method.name] = MethodScore(
                    statistics.fmean(s.mean for s in scores),
                    statistics.fmean(s.best for s in scores),
                    len(scores),
                )
        return out

    def complete_tasks(self) -> list[str]:
        return [t for t in self.tasks if all((t, m.name) in self.scores for m in self.methods)]


def summarize(setup: ReplicationSetup, results: Sequence[RunResult]) -> ReportTable:
    by_pair: dict[tuple[str, str], list[RunResult]] = {}
    for result in results:
        by_pair.setdefault((result.task, result.method), []).append(result)
    scores = {
        pair: MethodScore(
            statistics.fmean(r.accuracy for r in runs), max(r.accuracy for r in runs), len(runs)
        )
        for pair, runs in by_pair.items()
    }
    tokens = {}
    for method in setup.methods:
        per_task = [
            statistics.fmean(r.tokens_per_example for r in runs)
            for (_, name), runs in by_pair.items()
            if name == method.name
        ]
        if per_task:
            tokens[method.name] = statistics.fmean(per_task)
    seconds = {pair: sum(r.seconds for r in runs) for pair, runs in by_pair.items()}
    search_seconds = {
        method.name: statistics.fmean(runs)
        for method in setup.methods
        if (runs := [r.search_seconds for r in results if r.method == method.name])
    }
    eval_counts = {}
    for task in setup.tasks:
        runs = [r for (t, _), rs in by_pair.items() if t == task.name for r in rs]
        if runs:
            eval_counts[task.name] = len(runs[0].correct)
    return ReportTable(
        tuple(t.name for t in setup.tasks),
        tuple(setup.methods),
        scores,
        tokens,
        seconds,
        eval_counts,
        search_seconds,
    )


def _pct(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def _precision(dtype: str) -> str:
    return "fp32 on a CPU, bf16 on a GPU (the engine's default)" if dtype == "auto" else dtype


def _columns(methods: Sequence[MethodSpec]) -> list[tuple[str, str, str]]:
    """(header, method name, "mean" or "best") per table column."""
    columns = []
    for method in methods:
        if method.seeded:
            columns.append((f"{method.label} avg", method.name, "mean"))
            columns.append((f"{method.label} best", method.name, "best"))
        else:
            columns.append((method.label, method.name, "mean"))
    return columns


def render_markdown(
    setup: ReplicationSetup, table: ReportTable, command: str, plot_name: str | None
) -> str:
    methods = {m.name: m for m in setup.methods}
    columns = _columns(setup.methods)
    total_seconds = sum(table.seconds.values())
    lines = [
        "# LoraHub replication on the hub's engine",
        "",
        "Generated by `benchmarks/replicate_lorahub.py` from its cache of runs; do not edit by "
        "hand. Accuracy is exact match after the paper's normalisation (strip, lower-case, drop "
        'a final "."), greedy decoding, in %.',
        "",
        "## Setup",
        "",
        f"- Base model: `{setup.base.identifier}` ({setup.base.task_type}), "
        f"precision {_precision(setup.dtype)} for every method.",
        f"- Module set: {len(setup.modules)} modules.",
        f"- Tasks: {len(setup.tasks)}; per task the examples are shuffled with the seed "
        f'`"{setup.split_seed}:<task>"` (Python\'s `random.Random`); the first {setup.shots} '
        f"are the few-shot examples of every method, the next (up to) {setup.eval_count} are "
        "the evaluation examples of every method.",
        f"- Seeds: {setup.seeds} for the methods with random draws ("
        + ", ".join(m.label for m in setup.methods if m.seeded)
        + "); the others are deterministic and run once.",
        "- Methods:",
        *[f"  - **{m.label}** (`{m.name}`): {m.description}." for m in setup.methods],
    ]
    few = [
        m for m in setup.methods if m.kind == COMPOSE and m.sample and m.sample > len(setup.modules)
    ]
    if few:
        lines += [
            "",
            f"**Only {len(setup.modules)} modules were available**, fewer than the "
            f"{few[0].sample} the paper draws: {', '.join(m.label for m in few)} used all of "
            "them in every seed, so its seeds differ only in the optimiser's randomness (none "
            "for NGOpt at this budget).",
        ]
    lines += [
        "",
        "To regenerate (runs missing from the cache are computed; `--report-only` renders "
        "what is cached):",
        "",
        "```sh",
        command,
        "```",
        "",
        f"Total compute time of the runs in this report: {_duration(total_seconds)} "
        f"({total_seconds:.0f} s).",
        "",
        "## Accuracy per task",
        "",
        "| Task | " + " | ".join(c[0] for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for task in table.tasks:
        cells = []
        for _, name, which in columns:
            score = table.scores.get((task, name))
            cells.append(_pct(getattr(score, which)) if score else "—")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    averages = table.averages()
    complete = table.complete_tasks()
    cells = [_pct(getattr(averages[n], w)) if n in averages else "—" for _, n, w in columns]
    lines.append(f"| **Average** ({len(complete)} tasks) | " + " | ".join(cells) + " |")
    if len(complete) < len(table.tasks):
        lines += ["", "The average covers only the tasks where every method has a result."]
    if plot_name:
        lines += ["", f"![Accuracy per task and method]({plot_name})"]
    lines += [
        "",
        "## Cost",
        "",
        "| Method | Prompt tokens per example | Seconds per run (mean) | of which search | Runs |",
        "|---|---:|---:|---:|---:|",
    ]
    for method in setup.methods:
        runs = [
            (table.seconds[(t, method.name)], table.scores[(t, method.name)].runs)
            for t in table.tasks
            if (t, method.name) in table.scores
        ]
        count = sum(n for _, n in runs)
        per_run = sum(s for s, _ in runs) / count if count else float("nan")
        search = table.search_seconds.get(method.name)
        tokens = table.tokens.get(method.name)
        lines.append(
            f"| {method.label} | {'—' if tokens is None else f'{tokens:.0f}'} | "
            f"{'—' if not count else f'{per_run:.0f}'} | "
            f"{'—' if method.kind != COMPOSE or search is None else f'{search:.0f}'} | {count} |"
        )
    lines += [
        "",
        "Prompt tokens are those fed to the model per evaluation example (ICL: the shots "
        "included); a composed module adds none. Search is the module preselection and the "
        "weight search; the rest of a run is generating the evaluation answers.",
    ]
    lines += [
        "",
        "Wall time per task, all seeds of each method together (seconds):",
        "",
        "| Task | Eval examples | " + " | ".join(m.label for m in setup.methods) + " | Total |",
        "|---|---:|" + "---:|" * (len(setup.methods) + 1),
    ]
    for task in table.tasks:
        per_method = [table.seconds.get((task, m.name)) for m in setup.methods]
        known = [s for s in per_method if s is not None]
        lines.append(
            f"| {task} | {table.eval_counts.get(task, '—')} | "
            + " | ".join("—" if s is None else f"{s:.0f}" for s in per_method)
            + f" | {sum(known):.0f} |"
        )
    lines += ["", "## Where composition helps, and where it does not", ""]
    lines += _findings(table, methods)
    return "\n".join(lines) + "\n"


def _findings(table: ReportTable, methods: dict[str, MethodSpec]) -> list[str]:
    complete = table.complete_tasks()
    if not complete:
        return ["No task has results for every method yet."]
    averages = table.averages()
    baselines = [m for m in methods.values() if m.kind != COMPOSE]
    composed = [m for m in methods.values() if m.kind == COMPOSE]
    lines = []
    for method in composed:
        parts = []
        for baseline in baselines:
            wins = [
                t
                for t in complete
                if table.scores[(t, method.name)].mean > table.scores[(t, baseline.name)].mean
            ]
            ties = [
                t
                for t in complete
                if table.scores[(t, method.name)].mean == table.scores[(t, baseline.name)].mean
            ]
            parts.append(
                f"beats {baseline.label} on {len(wins)} of {len(complete)} tasks "
                f"(ties on {len(ties)}; average {_pct(averages[method.name].mean)} vs "
                f"{_pct(averages[baseline.name].mean)})"
            )
        if not parts:
            continue
        over = " (average over seeds)" if method.seeded else ""
        lines.append(f"- **{method.label}**{over} " + "; ".join(parts) + ".")
        best_baseline = {
            t: max(table.scores[(t, b.name)].mean for b in baselines) for t in complete
        }
        losing = [t for t in complete if table.scores[(t, method.name)].mean < best_baseline[t]]
        if losing:
            lines.append(
                f"  It is below the better of {' and '.join(b.label for b in baselines)} on: "
                + ", ".join(losing)
                + "."
            )
    if len(composed) == 2:
        first, second = composed
        better = [
            t
            for t in complete
            if table.scores[(t, second.name)].mean > table.scores[(t, first.name)].mean
        ]
        worse = [
            t
            for t in complete
            if table.scores[(t, second.name)].mean < table.scores[(t, first.name)].mean
        ]
        lines.append(
            f"- **{second.label} vs {first.label}**: better on {len(better)} tasks, worse on "
            f"{len(worse)}, the same on {len(complete) - len(better) - len(worse)} "
            f"(average {_pct(averages[second.name].mean)} vs {_pct(averages[first.name].mean)})."
        )
    flat = [t for t in complete if len({round(table.scores[(t, m)].mean, 6) for m in methods}) == 1]
    if flat:
        lines.append(
            "- Every method scores the same on: "
            + ", ".join(flat)
            + " — there the method makes no difference at this model size."
        )
    lines += [
        "",
        "Exact match is strict: an answer with the right content in another form (a sentence "
        "instead of `(A)`, a missing bracket) counts as wrong, and much of what a composed "
        "module adds on these tasks is the answer format of its sources. " + _noise_note(table),
    ]
    return lines


def _noise_note(table: ReportTable) -> str:
    counts = sorted(set(table.eval_counts.values()))
    if not counts:
        return ""
    size = counts[0] if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    return (
        f"With {size} evaluation examples per task one example is worth "
        f"{100 / counts[0]:.1f} points or less: a difference of a few examples is noise."
    )


def plot_accuracy(setup: ReplicationSetup, table: ReportTable, path: Path) -> Path:
    """Grouped bars: one group per task (plus the average), one bar per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    averages = table.averages()
    groups = [*table.tasks, "Average"]
    methods = list(setup.methods)
    width = 0.8 / max(len(methods), 1)
    figure, axes = plt.subplots(figsize=(max(8, 0.9 * len(groups) + 2), 5))
    for index, method in enumerate(methods):
        values = [
            100 * table.scores[(t, method.name)].mean if (t, method.name) in table.scores else 0
            for t in table.tasks
        ]
        values.append(100 * averages[method.name].mean if method.name in averages else 0)
        positions = [g + (index - (len(methods) - 1) / 2) * width for g in range(len(groups))]
        label = f"{method.label} (avg over seeds)" if method.seeded else method.label
        axes.bar(positions, values, width, label=label)
    axes.set_xticks(range(len(groups)))
    axes.set_xticklabels(groups, rotation=45, ha="right", fontsize=8)
    axes.set_ylabel("exact match (%)")
    axes.set_title(f"{setup.base.identifier}: accuracy per task and method")
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_report(
    setup: ReplicationSetup,
    results: Sequence[RunResult],
    report_dir: str | Path,
    command: str,
    plot: bool = True,
) -> Path:
    """``README.md`` (and ``accuracy.png``) in ``report_dir``, from ``results``."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    table = summarize(setup, results)
    plot_name = None
    if plot:
        plot_accuracy(setup, table, report_dir / "accuracy.png")
        plot_name = "accuracy.png"
    readme = report_dir / "README.md"
    readme.write_text(render_markdown(setup, table, command, plot_name))
    return readme
