"""The cost and the choices of strategy "auto" against the plain composition.

The paper's setting on the real SmolLM2-135M: 20 trained starter modules, 5 shots of a BBH
task, 40 NGOpt steps. Per task, one job with strategy "compose" and one with "auto" (same
seed, so the same search): the seconds of the search (plus validation for auto), their
ratio, which strategy auto chose, and the held-out loss of both results on further examples
of the task.

    .venv/bin/python benchmarks/strategy_validation.py [--tasks 3] [--steps 40] [--modules 20]

Timings on a shared machine vary: compare the ratio, measured in one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.candidate_retrieval import (  # noqa: E402
    BASE,
    TASKS,
    heldout_loss,
    starter_modules,
    task_examples,
)
from composition.engine.adapters import AdapterCache  # noqa: E402
from composition.engine.compose import CompositionRequest, compose  # noqa: E402
from composition.engine.loading import BaseModelCache  # noqa: E402
from composition.engine.types import AdapterRef, CompositionSettings  # noqa: E402


def run(tasks: int, steps: int, module_count: int) -> list[dict]:
    models, adapters = BaseModelCache(), AdapterCache()
    loaded, _ = models.get(BASE, "cpu")
    folders = {p.name: p for p in starter_modules()[:module_count]}
    refs = tuple(AdapterRef(name, path) for name, path in folders.items())
    rows = []
    for task in TASKS[:tasks]:
        shots, heldout = task_examples(task)
        row: dict = {"task": task}
        for strategy in ("compose", "auto"):
            settings = CompositionSettings(steps=steps, device="cpu", strategy=strategy)
            result = compose(
                CompositionRequest(BASE, refs, tuple(shots), settings=settings),
                models=models,
                adapters=adapters,
            )
            timings = result.timings
            row[strategy] = {
                "seconds": timings.optimize_seconds + timings.validate_seconds,
                "heldout_loss": heldout_loss(loaded, result, adapters, folders, heldout),
                "chosen": result.strategy.chosen if result.strategy else "compose",
                "extra": result.strategy.extra_evaluations if result.strategy else 0,
            }
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--modules", type=int, default=20)
    args = parser.parse_args()
    rows = run(args.tasks, args.steps, args.modules)
    print(
        f"\nStrategy auto against compose: {args.modules} starter modules, 5 shots, "
        f"{args.steps} NGOpt steps, SmolLM2-135M on CPU"
    )
    print(
        "  task".ljust(34)
        + "compose s".rjust(11)
        + "auto s".rjust(9)
        + "ratio".rjust(7)
        + "  chosen".ljust(14)
        + "held-out loss compose / auto".rjust(30)
    )
    for row in rows:
        compose_row, auto_row = row["compose"], row["auto"]
        print(
            f"  {row['task']}".ljust(34)
            + f"{compose_row['seconds']:.1f}".rjust(11)
            + f"{auto_row['seconds']:.1f}".rjust(9)
            + f"{auto_row['seconds'] / compose_row['seconds']:.2f}".rjust(7)
            + f"  {auto_row['chosen']}".ljust(14)
            + f"{compose_row['heldout_loss']:.3f} / {auto_row['heldout_loss']:.3f}".rjust(30)
        )
    ratio = statistics.mean(r["auto"]["seconds"] / r["compose"]["seconds"] for r in rows)
    print(
        f"  mean seconds ratio auto / compose: {ratio:.2f} "
        f"({rows[0]['auto']['extra']} forward passes beyond the {args.steps} of the search)"
    )


if __name__ == "__main__":
    main()
