"""The report's intervals: each method's average and its paired differences to references.

Differences are taken against ICL and against LoraHub (the paper's setting),
over the tasks both methods have, paired by evaluation example; the sign test
counts the tasks where the method is above or below the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.replication.plan import RANK, MethodSpec, ReplicationSetup, split_task
from benchmarks.replication.stats import (
    CONFIDENCE,
    RESAMPLES,
    SEED,
    Interval,
    SignTest,
    mean_interval,
    paired_difference,
    sign_test,
)
from composition.engine.scoring import MAX_ANSWER_CHOICES

REFERENCES = ("icl", "lorahub")
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class Comparison:
    reference: str
    difference: Interval
    signs: SignTest
    # Tasks where the per-task paired interval lies above, or below, zero.
    tasks_above: tuple[str, ...]
    tasks_below: tuple[str, ...]


def compare(
    scores: dict[tuple[str, str], list[float]], method: str, reference: str
) -> Comparison | None:
    first = {t: s for (t, m), s in scores.items() if m == method}
    second = {t: s for (t, m), s in scores.items() if m == reference}
    common = sorted(set(first) & set(second))
    if not common or method == reference:
        return None
    above, below = [], []
    for task in common:
        alone = paired_difference({task: first[task]}, {task: second[task]})
        if alone.low > 0:
            above.append(task)
        elif alone.high < 0:
            below.append(task)
    means = {t: sum(first[t]) / len(first[t]) for t in common}
    reference_means = {t: sum(second[t]) / len(second[t]) for t in common}
    return Comparison(
        reference,
        paired_difference({t: first[t] for t in common}, {t: second[t] for t in common}),
        sign_test(means, reference_means),
        tuple(above),
        tuple(below),
    )


def _points(value: float) -> str:
    return f"{100 * value:+.1f}"


def _interval(interval: Interval, signed: bool = False) -> str:
    show = _points if signed else (lambda v: f"{100 * v:.1f}")
    text = f"{show(interval.estimate)} [{show(interval.low)}, {show(interval.high)}]"
    return f"**{text}**" if signed and interval.excludes_zero else text


def _signs(test: SignTest) -> str:
    p_value = "< 0.001" if test.p_value < 0.001 else f"{test.p_value:.3f}"
    if test.p_value < SIGNIFICANCE:
        p_value = f"**{p_value}**"
    return f"{test.wins}–{test.losses}–{test.ties}, p {p_value}"


def _mirrored(method: str, reference: str) -> bool:
    """A later reference against an earlier one: already said the other way round."""
    return method in REFERENCES and REFERENCES.index(method) > REFERENCES.index(reference)


def interval_lines(
    setup: ReplicationSetup,
    methods: tuple[MethodSpec, ...],
    scores: dict[tuple[str, str], list[float]],
    same_answer: dict[str, float],
) -> list[str]:
    """The section: a table of averages and differences, and which differences are significant.

    ``same_answer``: per method, the mean share of a task's questions given the method's most
    frequent answer there (100: one answer to everything, as the majority baseline does).
    """
    labels = {m.name: m.label for m in setup.methods}
    references = [r for r in REFERENCES if any(m.name == r for m in methods)]
    lines = [
        "## Averages with 95% intervals",
        "",
        f"Percentile bootstrap over evaluation examples ({RESAMPLES:,} resamples, seed {SEED}, "
        f"{CONFIDENCE:.0%}): each task's examples are resampled, the average over tasks "
        "recomputed. Differences are paired (both methods on the same resampled examples) "
        "and taken over the tasks both methods have; a method with seeds counts, per example, "
        "the share of seeds right. **Bold**: the interval excludes 0. The sign test counts "
        "tasks above–below–level with the reference (exact two-sided binomial, ties left out; "
        f"bold: p < {SIGNIFICANCE}). Tasks ↑/↓: tasks where the method's own paired interval "
        "is above or below the reference's. Same answer: the share of a task's questions that "
        "get the method's most frequent answer on that task, averaged over tasks (and seeds); "
        "near 100 the method answers one thing to everything, as the majority baseline does.",
        "",
        "| Method | Tasks | Average [95% CI] | Same answer (%) | "
        + " | ".join(
            f"− {labels[r]} [95% CI] | sign test vs {labels[r]} | tasks ↑/↓ vs {labels[r]}"
            for r in references
        )
        + " |",
        "|---|---:|---:|---:|" + "---:|---:|---:|" * len(references),
    ]
    found: list[tuple[str, Comparison]] = []
    for method in methods:
        own = {t: s for (t, m), s in scores.items() if m == method.name}
        same = same_answer.get(method.name)
        cells = [
            method.label,
            str(len(own)),
            _interval(mean_interval(own)),
            "—" if same is None else f"{100 * same:.0f}",
        ]
        for reference in references:
            comparison = compare(scores, method.name, reference)
            if comparison is None:
                cells += ["—", "—", "—"]
                continue
            if not method.oracle and not _mirrored(method.name, reference):
                found.append((method.name, comparison))
            cells += [
                _interval(comparison.difference, signed=True),
                _signs(comparison.signs),
                f"{len(comparison.tasks_above)}/{len(comparison.tasks_below)}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *_verdicts(found, labels)]
    return lines


def _verdicts(found: list[tuple[str, Comparison]], labels: dict[str, str]) -> list[str]:
    significant = [
        f"{labels[name]} vs {labels[c.reference]} ({_interval(c.difference, signed=True)} points)"
        for name, c in found
        if c.difference.excludes_zero
    ]
    level = [
        f"{labels[name]} vs {labels[c.reference]}"
        for name, c in found
        if not c.difference.excludes_zero
    ]
    lines = []
    if significant:
        lines.append("- Differences whose interval excludes 0: " + "; ".join(significant) + ".")
    if level:
        lines.append(
            "- Not distinguishable from 0 at this size (the interval holds 0): "
            + "; ".join(level)
            + "."
        )
    return lines


def not_run_lines(setup: ReplicationSetup, ran: tuple[MethodSpec, ...]) -> list[str]:
    missing = [m for m in setup.methods if m not in ran]
    if not missing:
        return []
    return [
        "",
        "Not run yet (no cached run, so no column): "
        + ", ".join(f"{m.label} (`{m.name}`)" for m in missing)
        + ".",
    ]


def rank_rule_lines(setup: ReplicationSetup) -> list[str]:
    """How rank classification gets its answers, and the tasks where it has none."""
    if not any(m.kind == RANK for m in setup.methods):
        return []
    open_ended = [
        task.name
        for task in setup.tasks
        if not split_task(task, setup.shots, setup.eval_count, setup.split_seed).answers
    ]
    lines = [
        "- Rank classification's answer set is fixed per task before anything is scored: the "
        "distinct targets (after the normalisation above) of all the task's examples, when "
        f"there are at most {MAX_ANSWER_CHOICES}. That set is a property of the task's format "
        "(its options, yes/no); how often each answer occurs, and which example has which, "
        "is never used. An answer's score is the summed log-probability of its tokens and the "
        "end of sequence after the prompt the reused method's model sees; the highest wins "
        "(a tie goes to the first in sorted order).",
    ]
    if open_ended:
        lines.append(
            f"- Tasks with more than {MAX_ANSWER_CHOICES} distinct targets have no answer set: "
            "there the rank methods keep the generated answers of the run they reuse ("
            + ", ".join(open_ended)
            + ")."
        )
    return lines
