"""The baselines that tell answer format from skill, run through the replication harness."""

from dataclasses import replace

import pytest

from benchmarks.replication.plan import (
    ReplicationSetup,
    baseline_methods,
    default_methods,
    read_tasks,
    split_task,
)
from benchmarks.replication.report import write_report
from benchmarks.replication.runs import run_replication
from composition.engine.scoring import answer_choices, majority_target
from composition.engine.types import CompositionSettings, EngineError
from tests.benchmarks.test_replication import CountingRunner, load_script, write_task

SMALL = CompositionSettings(steps=3, max_new_tokens=4)
YES_NO = [(f"is {n} even ? yes or no", "yes" if n % 2 == 0 else "no") for n in range(12)]
# More distinct targets than an answer set holds.
SUMS = [(f"{n} plus {n}", str(2 * n)) for n in range(24)]


def methods(*names):
    every = {m.name: m for m in (*default_methods(), *baseline_methods())}
    small = {"lorahub": replace(every["lorahub"], sample=2)}
    return tuple(
        replace(small.get(name, every[name]), settings=replace(SMALL, l1=every[name].settings.l1))
        for name in names
    )


@pytest.fixture
def setup(tiny_llama, llama_modules, tmp_path):
    folder = tmp_path / "tasks"
    write_task(folder, "parity", YES_NO)
    write_task(folder, "sums", SUMS)
    return ReplicationSetup(
        base=tiny_llama,
        modules=llama_modules,
        tasks=read_tasks(folder),
        methods=methods("zero-shot", "majority", "majority-oracle"),
        seeds=2,
        shots=3,
        eval_count=6,
    )


def runs_of(results, method):
    return {r.task: r for r in results if r.method == method}


def test_majority_answers_the_shots_majority_and_the_oracle_the_evaluation_sets(setup, tmp_path):
    results = run_replication(setup, tmp_path / "cache", CountingRunner())

    for task in setup.tasks:
        split = split_task(task, setup.shots, setup.eval_count)
        shots = majority_target([e.target for e in split.shots])
        oracle = majority_target([e.target for e in split.evaluation])
        assert set(runs_of(results, "majority")[task.name].outputs) == {shots}
        assert set(runs_of(results, "majority-oracle")[task.name].outputs) == {oracle}


@pytest.mark.slow
def test_rank_classification_answers_from_the_task_answer_set_and_is_cached(setup, tmp_path):
    ranked = replace(setup, methods=methods("zero-shot", "rank-zero-shot"))
    results = run_replication(ranked, tmp_path / "cache", CountingRunner())
    runner = CountingRunner()
    again = run_replication(ranked, tmp_path / "cache", runner)

    parity = runs_of(results, "rank-zero-shot")["parity"]
    assert parity.answer_set == ("no", "yes") == answer_choices(t for _, t in YES_NO)
    assert set(parity.outputs) <= {"no", "yes"}
    assert runner.calls == [] and again == results


@pytest.mark.slow
def test_a_task_without_an_answer_set_keeps_the_reused_runs_answers(setup, tmp_path):
    ranked = replace(setup, methods=methods("zero-shot", "rank-zero-shot"))
    results = run_replication(ranked, tmp_path / "cache", CountingRunner())

    sums = runs_of(results, "rank-zero-shot")["sums"]
    assert sums.answer_set == ()
    assert sums.outputs == runs_of(results, "zero-shot")["sums"].outputs


@pytest.mark.slow
def test_rank_classification_follows_its_reused_run(setup, tmp_path):
    """A new zero-shot run (other settings) makes its rank run compute again."""
    ranked = replace(setup, methods=methods("zero-shot", "rank-zero-shot"))
    run_replication(ranked, tmp_path / "cache", CountingRunner())
    longer = replace(ranked.methods[0], settings=replace(SMALL, max_new_tokens=5))
    runner = CountingRunner()

    run_replication(
        replace(ranked, methods=(longer, ranked.methods[1])), tmp_path / "cache", runner
    )

    assert sorted(set(runner.calls)) == [
        (t, m, 0) for t in ("parity", "sums") for m in ("rank-zero-shot", "zero-shot")
    ]


@pytest.mark.slow
def test_rank_lorahub_scores_with_each_seeds_composed_module(setup, tmp_path):
    composed = replace(setup, tasks=setup.tasks[:1], methods=methods("lorahub", "rank-lorahub"))
    results = run_replication(composed, tmp_path / "cache", CountingRunner())

    for seed in (0, 1):
        [lorahub] = [r for r in results if r.method == "lorahub" and r.seed == seed]
        [rank] = [r for r in results if r.method == "rank-lorahub" and r.seed == seed]
        assert (rank.modules, rank.weights) == (lorahub.modules, lorahub.weights)
        assert set(rank.outputs) <= {"no", "yes"}


@pytest.mark.slow
def test_the_best_single_module_is_the_lowest_loss_on_the_shots(setup, tmp_path):
    from composition.engine.selection import SelectionRequest, select_modules

    single = replace(setup, tasks=setup.tasks[:1], methods=methods("best-single"))
    [result] = run_replication(single, tmp_path / "cache", CountingRunner())

    split = split_task(setup.tasks[0], setup.shots, setup.eval_count)
    request = SelectionRequest(setup.base, setup.modules, split.shots, keep=1, dtype="auto")
    assert result.modules == (select_modules(request).chosen[0].name,)
    assert result.weights == (1.0,)


def test_a_rank_method_without_the_run_it_reuses_is_refused(setup, tmp_path):
    alone = replace(setup, methods=methods("rank-zero-shot"))
    with pytest.raises(EngineError, match="rank-zero-shot reuses zero-shot, which must run"):
        run_replication(alone, tmp_path / "cache", CountingRunner())


def test_the_script_adds_the_runs_a_method_reuses():
    script = load_script()
    chosen = script.with_reused(script.all_methods(), ["rank-lorahub", "majority"])
    assert [m.name for m in chosen] == ["lorahub", "majority", "rank-lorahub"]


def test_the_report_gives_intervals_and_lists_methods_not_run(setup, tmp_path):
    results = run_replication(setup, tmp_path / "cache", CountingRunner(), compute=False)
    cached = run_replication(
        replace(setup, methods=setup.methods[1:]), tmp_path / "cache", CountingRunner()
    )
    text = write_report(setup, cached, tmp_path / "report", "cmd", plot=False).read_text()

    assert results == []
    assert "| Task | Majority | Majority (eval, oracle) |" in text
    assert "Not run yet (no cached run, so no column): Zero-shot (`zero-shot`)." in text
    assert "## Averages with 95% intervals" in text
    row = next(line for line in text.splitlines() if line.startswith("| Majority | 2 |"))
    # Majority answers one thing to every question: its same-answer share is 100%.
    assert row.split(" | ")[3].strip(" |") == "100"


def test_a_method_run_on_some_tasks_only_keeps_out_of_the_main_averages(setup, tmp_path):
    every = replace(setup, methods=setup.methods[1:2])
    some = replace(setup, tasks=setup.tasks[:1], methods=setup.methods[2:3])
    results = run_replication(every, tmp_path / "cache", CountingRunner())
    results += run_replication(some, tmp_path / "cache", CountingRunner())

    text = write_report(setup, results, tmp_path / "report", "cmd", plot=False).read_text()

    assert "| Task | Majority |" in text and "| **Average** (2 tasks) |" in text
    assert "Run on some tasks only" in text
    assert "| Task | Majority | Majority (eval, oracle) |" in text
    assert "| Majority (eval, oracle) | 1 |" in text


def test_a_setting_the_engine_gained_keeps_cached_runs_until_it_is_changed():
    from benchmarks.replication.cache import FINGERPRINTED_SETTINGS, settings_fingerprint

    paper = default_methods()[2].settings
    assert set(settings_fingerprint(paper)) == FINGERPRINTED_SETTINGS
    assert settings_fingerprint(replace(paper, merge="exact"))["merge"] == "exact"
    assert settings_fingerprint(replace(paper, strategy="auto"))["strategy"] == "auto"


def test_the_newer_strategies_are_planned_once_the_engine_has_them():
    from benchmarks.replication.plan import strategy_methods

    methods = {m.name: m for m in strategy_methods()}
    assert methods["merge-exact"].settings.merge == "exact" and methods["merge-exact"].seeded
    assert methods["auto"].settings.strategy == "auto"
    assert methods["auto"].settings.preselect_method == "retrieval"
    groups = methods["groups"].settings
    assert groups.weight_groups == 4 and groups.preselect == 20 and not methods["groups"].seeded


@pytest.mark.slow
def test_the_newer_strategies_run_through_the_harness(setup, tmp_path):
    from benchmarks.replication.plan import strategy_methods

    # The tiny model has two layers: at most two groups of them.
    small = tuple(
        replace(
            m,
            sample=2 if m.sample else None,
            settings=replace(m.settings, steps=3, weight_groups=min(m.settings.weight_groups, 2)),
        )
        for m in strategy_methods(max_new_tokens=4)
    )
    one_seed = replace(setup, tasks=setup.tasks[:1], methods=small, seeds=1)
    results = run_replication(one_seed, tmp_path / "cache", CountingRunner())

    assert sorted(r.method for r in results) == ["auto", "groups", "merge-exact"]
    assert all(len(r.outputs) == setup.eval_count for r in results)
