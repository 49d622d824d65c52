"""The report's figure: accuracy per task and method, as grouped bars."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.replication.plan import ReplicationSetup
from benchmarks.replication.report import ReportTable


def plot_accuracy(setup: ReplicationSetup, table: ReportTable, path: Path) -> Path:
    """Grouped bars: one group per task (plus the average), one bar per method."""
    averages = table.averages()
    groups = [*table.tasks, "Average"]
    methods = list(table.methods)
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
