"""The report: accuracy per task and method, cost, and where composition helps."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.replication.plan import (
    COMPOSE,
    IN_CONTEXT,
    ZERO_SHOT,
    MethodSpec,
    ReplicationSetup,
    RunResult,
)
from benchmarks.replication.significance import interval_lines, not_run_lines, rank_rule_lines
from benchmarks.replication.stats import example_scores, same_answer_share


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes = round(seconds / 60)
    return f"{minutes}m" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


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
    # (task, method): per evaluation example, the share of the method's runs that got it right.
    example_scores: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    # Methods with runs on some of the tasks the others cover: kept out of the main table.
    partial: tuple[MethodSpec, ...] = ()
    # method: mean share of a task's questions given its most frequent answer on the task.
    same_answer: dict[str, float] = field(default_factory=dict)

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
    covered = {task for task, _ in by_pair}
    ran = [m for m in setup.methods if any(name == m.name for _, name in by_pair)]
    full = tuple(m for m in ran if all((t, m.name) in by_pair for t in covered))
    return ReportTable(
        tuple(t.name for t in setup.tasks),
        # A method with no run yet has no column (the report lists it as not run); one run on
        # only some tasks gets a table of its own, so the main averages keep every task.
        full,
        scores,
        tokens,
        seconds,
        eval_counts,
        search_seconds,
        {pair: example_scores([r.correct for r in runs]) for pair, runs in by_pair.items()},
        tuple(m for m in ran if m not in full),
        {
            m.name: statistics.fmean(
                same_answer_share(r.outputs) for r in results if r.method == m.name
            )
            for m in ran
        },
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


def partial_lines(table: ReportTable) -> list[str]:
    """Methods run on only some tasks, on those tasks, beside the methods run on all."""
    if not table.partial:
        return []
    methods = (*table.methods, *table.partial)
    tasks = [t for t in table.tasks if any((t, m.name) in table.scores for m in table.partial)]
    lines = [
        "",
        "Run on some tasks only (so left out of the table above), with every method on those "
        "tasks:",
        "",
        "| Task | " + " | ".join(m.label for m in methods) + " |",
        "|---|" + "---:|" * len(methods),
    ]
    for task in tasks:
        cells = [table.scores.get((task, m.name)) for m in methods]
        lines.append(
            f"| {task} | " + " | ".join("—" if c is None else _pct(c.mean) for c in cells) + " |"
        )
    return lines


def fewer_seeds_lines(setup: ReplicationSetup, table: ReportTable) -> list[str]:
    """Seeded methods whose cache holds fewer seeds than planned: their figures average fewer."""
    lines = []
    for method in (m for m in table.methods + table.partial if m.seeded):
        runs = sorted({s.runs for (_, name), s in table.scores.items() if name == method.name})
        if runs and runs[0] < setup.seeds:
            counts = " to ".join(str(r) for r in dict.fromkeys((runs[0], runs[-1])))
            short = sum(
                1 for (_, name), s in table.scores.items()
                if name == method.name and s.runs < setup.seeds
            )  # fmt: skip
            lines.append(
                f"- **{method.label} has {counts} of the {setup.seeds} seeds per task** "
                f"(fewer on {short} tasks; the first ones: seed 0 draws the same modules for "
                "every method); its figures average the seeds it has, the others' all of theirs."
            )
    return lines


def render_markdown(
    setup: ReplicationSetup, table: ReportTable, command: str, plot_name: str | None
) -> str:
    methods = {m.name: m for m in table.methods}
    columns = _columns(table.methods)
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
        *fewer_seeds_lines(setup, table),
        "- Methods:",
        *[f"  - **{m.label}** (`{m.name}`): {m.description}." for m in setup.methods],
        *rank_rule_lines(setup),
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
        f"Total compute time of the runs in this report: {duration(total_seconds)} "
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
    lines += not_run_lines(setup, (*table.methods, *table.partial))
    lines += partial_lines(table)
    if plot_name:
        lines += ["", f"![Accuracy per task and method]({plot_name})"]
    if table.example_scores:
        every = (*table.methods, *table.partial)
        lines += ["", *interval_lines(setup, every, table.example_scores, table.same_answer)]
    lines += [
        "",
        "## Cost",
        "",
        "| Method | Prompt tokens per example | Seconds per run (mean) | of which search | Runs |",
        "|---|---:|---:|---:|---:|",
    ]
    for method in table.methods:
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
        "| Task | Eval examples | " + " | ".join(m.label for m in table.methods) + " | Total |",
        "|---|---:|" + "---:|" * (len(table.methods) + 1),
    ]
    for task in table.tasks:
        per_method = [table.seconds.get((task, m.name)) for m in table.methods]
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
    baselines = [m for m in methods.values() if m.kind in (ZERO_SHOT, IN_CONTEXT)]
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
        from benchmarks.replication.plot import plot_accuracy

        plot_accuracy(setup, table, report_dir / "accuracy.png")
        plot_name = "accuracy.png"
    readme = report_dir / "README.md"
    readme.write_text(render_markdown(setup, table, command, plot_name))
    return readme
