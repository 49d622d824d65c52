"""What a job page's loss chart says in words: the summary and the table of values
that stand beside the chart drawn by static/js/job.js (and the same sentence it writes)."""

from __future__ import annotations

from composition.models import CompositionJob, JobStatus

PHASE_NAMES = (
    ("loading", "Loading"),
    ("scoring", "Scoring candidates"),
    ("optimising", "Optimising"),
    ("evaluating", "Evaluating"),
)


def composition_phase(job: CompositionJob) -> str:
    """waiting, loading, scoring, optimising, evaluating, or the job's final status."""
    if job.status == JobStatus.QUEUED:
        return "waiting"
    if job.is_final:
        return job.status
    if job.current_step >= job.steps:
        return "evaluating"
    if job.current_step > 0:
        return "optimising"
    if job.preselect and job.scored_candidates > 0:
        return "scoring"
    return "loading"


def second_line(values: list[float], kind: str) -> list[float]:
    """The best so far, or (``mean10``) the mean of the last 10 values."""
    line: list[float] = []
    for i, value in enumerate(values):
        if kind == "mean10":
            tail = values[max(0, i - 9) : i + 1]
            line.append(sum(tail) / len(tail))
        else:
            line.append(min(value, line[-1]) if line else value)
    return line


def chart_summary(values: list[float], *, quantity: str, x_name: str) -> str:
    if not values:
        return f"No {quantity} yet: the chart fills in as the job runs."
    best = min(values)
    plural = "" if len(values) == 1 else "s"
    return (
        f"{quantity[0].upper()}{quantity[1:]} over {len(values)} {x_name}{plural}: "
        f"first {values[0]:.4f}, last {values[-1]:.4f}, "
        f"lowest {best:.4f} at {x_name} {values.index(best) + 1}."
    )


def loss_chart_context(
    values: list[float], *, kind: str, y_name: str, x_name: str, second: str
) -> dict:
    return {
        "y_name": y_name,
        "x_name": x_name,
        "second_line": second,
        "loss_summary": chart_summary(values, quantity=y_name, x_name=x_name),
        "loss_rows": list(zip(values, second_line(values, kind), strict=True)),
        "phase_names": PHASE_NAMES,
    }
