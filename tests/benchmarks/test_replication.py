"""The replication harness: fixed splits, a cache that resumes, the report."""

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks.replication.plan import (
    COMPOSE,
    IN_CONTEXT,
    ZERO_SHOT,
    MethodSpec,
    ReplicationSetup,
    TaskSpec,
    default_methods,
    planned_runs,
    read_tasks,
    sample_modules,
    split_task,
)
from benchmarks.replication.report import render_markdown, summarize, write_report
from benchmarks.replication.runs import EngineRunner, run_replication
from composition.engine.loading import BaseModelCache
from composition.engine.types import CompositionSettings, EngineError, Example

QUESTIONS = [
    ("one plus two", "three"),
    ("two plus two", "four"),
    ("is the cat red ? yes or no", "no"),
    ("is the sentence true ? yes or no", "yes"),
    ("which is blue ? ( a ) cat ( b ) bird", "( b )"),
    ("the answer is not true", "false"),
    ("three plus four", "seven"),
    ("five minus one", "four"),
    ("which contains a dog", "( a ) dog"),
    ("one plus one", "two"),
    ("is green a bird ? yes or no", "no"),
    ("six plus three", "nine"),
]


def write_task(folder, name, rows=QUESTIONS):
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"input": q, "target": a}) for q, a in rows]
    (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n")


def tiny_methods():
    small = CompositionSettings(steps=3, max_new_tokens=4)
    return (
        MethodSpec("zero-shot", ZERO_SHOT, "Zero-shot", "base model", small),
        MethodSpec("icl", IN_CONTEXT, "ICL", "shots in the prompt", small),
        MethodSpec("lorahub", COMPOSE, "LoraHub", "2 random modules", small, sample=2, seeded=True),
        MethodSpec(
            "improved",
            COMPOSE,
            "Improved",
            "best 2 alone, population 2",
            replace(small, steps=4, population=2, optimizer="CMA", preselect=2),
            seeded=True,
        ),
    )


class CountingRunner:
    """The engine runner, recording which runs it was asked for."""

    def __init__(self):
        self.calls = []
        self.runner = EngineRunner(models=BaseModelCache())

    def __call__(self, setup, split, method, seed, **reused):
        self.calls.append((split.task, method.name, seed))
        return self.runner(setup, split, method, seed, **reused)


@pytest.fixture
def tasks_folder(tmp_path):
    folder = tmp_path / "tasks"
    write_task(folder, "arithmetic")
    write_task(folder, "reversed", QUESTIONS[::-1])
    return folder


@pytest.fixture
def setup(tiny_llama, llama_modules, tasks_folder):
    return ReplicationSetup(
        base=tiny_llama,
        modules=llama_modules,
        tasks=read_tasks(tasks_folder),
        methods=tiny_methods(),
        seeds=2,
        shots=3,
        eval_count=5,
    )


def test_the_split_is_fixed_disjoint_and_capped():
    task = TaskSpec("arithmetic", tuple(Example(q, a) for q, a in QUESTIONS))

    split = split_task(task, shots=3, eval_count=5)

    assert split_task(task, shots=3, eval_count=5) == split
    assert len(split.shots) == 3 and len(split.evaluation) == 5
    assert not set(split.shots) & set(split.evaluation)
    assert split_task(task, shots=3, eval_count=100).evaluation[:5] == split.evaluation
    assert len(split_task(task, shots=3, eval_count=100).evaluation) == 9
    assert split_task(task, shots=3, eval_count=5, seed=1) != split
    # The shuffle depends on the task's name too.
    assert split_task(replace(task, name="other"), 3, 5).shots != split.shots


def test_a_task_with_too_few_examples_is_refused():
    task = TaskSpec("tiny", (Example("one", "two"),) * 3)

    with pytest.raises(EngineError, match="tiny: 3 examples, need more than the 3 shots"):
        split_task(task, shots=3, eval_count=5)


def test_tasks_are_read_from_the_folder_by_name(tasks_folder):
    assert [t.name for t in read_tasks(tasks_folder)] == ["arithmetic", "reversed"]
    assert [t.name for t in read_tasks(tasks_folder, ["reversed"])] == ["reversed"]
    with pytest.raises(EngineError, match="no task file for missing"):
        read_tasks(tasks_folder, ["missing"])


def test_modules_are_drawn_per_seed_and_all_are_used_when_too_few(llama_modules):
    assert sample_modules(llama_modules, 2, seed=0) == sample_modules(llama_modules, 2, seed=0)
    draws = {sample_modules(llama_modules, 2, seed=s) for s in range(6)}
    assert len(draws) > 1
    assert sample_modules(llama_modules, 20, seed=0) == tuple(
        sorted(llama_modules, key=lambda r: r.name)
    )


def test_deterministic_methods_run_once_composition_methods_once_per_seed(setup):
    plan = planned_runs(setup)

    assert [(k.method, k.seed) for k in plan if k.task == "arithmetic"] == [
        ("zero-shot", 0),
        ("icl", 0),
        ("lorahub", 0),
        ("lorahub", 1),
        ("improved", 0),
        ("improved", 1),
    ]


def test_a_second_run_computes_nothing_and_returns_the_same(setup, tmp_path):
    runner, messages = CountingRunner(), []

    first = run_replication(setup, tmp_path / "cache", runner, messages.append)
    computed = list(runner.calls)
    again = run_replication(setup, tmp_path / "cache", runner)

    assert len(computed) == 12
    assert runner.calls == computed
    assert again == first
    assert messages[0] == "12 runs planned: 0 cached, 12 to compute"
    assert "ETA" in messages[-1] and "arithmetic" in messages[1]
    result = next(r for r in first if r.method == "improved")
    assert len(result.outputs) == len(result.correct) == 5
    assert len(result.modules) == 2 and len(result.weights) == 2
    assert 0 < result.search_seconds < result.seconds
    zero = next(r for r in first if r.method == "zero-shot")
    icl = next(r for r in first if r.method == "icl")
    assert icl.tokens_per_example > zero.tokens_per_example > 0
    assert result.tokens_per_example == zero.tokens_per_example


def test_new_tasks_methods_and_seeds_compute_only_what_is_new(setup, tasks_folder, tmp_path):
    cache = tmp_path / "cache"
    run_replication(
        replace(setup, methods=setup.methods[:3], tasks=setup.tasks[:1]), cache, CountingRunner()
    )

    runner = CountingRunner()
    write_task(tasks_folder, "third", QUESTIONS[3:] + QUESTIONS[:3])
    results = run_replication(
        replace(setup, tasks=read_tasks(tasks_folder), seeds=3), cache, runner
    )

    assert len(results) == 3 * 8
    old = [c for c in runner.calls if c[0] == "arithmetic"]
    assert old == [("arithmetic", "lorahub", 2), *[("arithmetic", "improved", s) for s in range(3)]]
    assert sum(c[0] == "third" for c in runner.calls) == 8


def test_other_modules_recompute_compositions_only(setup, make_modules, tiny_llama, tmp_path):
    cache = tmp_path / "cache"
    run_replication(replace(setup, tasks=setup.tasks[:1]), cache, CountingRunner())

    runner = CountingRunner()
    others = make_modules(tiny_llama, count=3, prefix="other")
    run_replication(replace(setup, tasks=setup.tasks[:1], modules=others), cache, runner)

    assert {method for _, method, _ in runner.calls} == {"lorahub", "improved"}


def test_other_settings_or_split_recompute(setup, tmp_path):
    cache = tmp_path / "cache"
    first = replace(setup, tasks=setup.tasks[:1], methods=setup.methods[:1])
    run_replication(first, cache, CountingRunner())

    runner = CountingRunner()
    run_replication(replace(first, eval_count=4), cache, runner)
    slower = replace(first.methods[0], settings=CompositionSettings(max_new_tokens=5))
    run_replication(replace(first, methods=(slower,)), cache, runner)

    assert runner.calls == [("arithmetic", "zero-shot", 0)] * 2


def test_another_precision_recomputes_and_runs_in_that_precision(setup, tmp_path):
    cache = tmp_path / "cache"
    first = replace(setup, tasks=setup.tasks[:1], methods=setup.methods[:1], seeds=1)
    run_replication(first, cache, CountingRunner())

    runner = CountingRunner()
    run_replication(replace(first, dtype="bfloat16"), cache, runner)
    run_replication(replace(first, dtype="bfloat16"), cache, runner)

    assert runner.calls == [("arithmetic", "zero-shot", 0)]
    models = runner.runner.models
    assert models.get(first.base, "auto", "bfloat16")[1], "the run loaded the model in bf16"
    assert not models.get(first.base, "auto", "float32")[1], "and never in fp32"
    report = render_markdown(replace(first, dtype="bfloat16"), summarize(first, []), "cmd", None)
    assert "precision bfloat16 for every method" in report


def test_a_damaged_cache_file_is_computed_again(setup, tmp_path):
    cache = tmp_path / "cache"
    single = replace(setup, tasks=setup.tasks[:1], methods=setup.methods[:1])
    run_replication(single, cache, CountingRunner())
    [path] = (cache / "arithmetic" / "zero-shot").glob("seed0-*.json")
    path.write_text('{"task": "arith')

    runner = CountingRunner()
    run_replication(single, cache, runner)

    assert runner.calls == [("arithmetic", "zero-shot", 0)]
    assert json.loads(path.read_text())["task"] == "arithmetic"


def test_report_only_renders_what_is_cached(setup, tmp_path):
    cache, report = tmp_path / "cache", tmp_path / "report"
    run_replication(replace(setup, tasks=setup.tasks[:1]), cache, CountingRunner())
    runner = CountingRunner()

    results = run_replication(setup, cache, runner, compute=False)
    readme = write_report(setup, results, report, "python replicate.py tasks --seeds 2")

    assert runner.calls == []
    text = readme.read_text()
    assert (report / "accuracy.png").stat().st_size > 0
    assert "| Task | Zero-shot | ICL | LoraHub avg | LoraHub best | Improved avg |" in text
    assert "| reversed | — | — | — | — | — | — |" in text
    assert "| **Average** (1 tasks) |" in text
    assert "python replicate.py tasks --seeds 2" in text
    assert "![Accuracy per task and method](accuracy.png)" in text


def test_the_report_tables_hold_the_runs_numbers(setup, tmp_path):
    results = run_replication(setup, tmp_path / "cache", CountingRunner())

    text = write_report(setup, results, tmp_path / "report", "cmd", plot=False).read_text()

    for task in ("arithmetic", "reversed"):
        runs = [r for r in results if r.task == task and r.method == "lorahub"]
        mean = 100 * sum(r.accuracy for r in runs) / len(runs)
        best = 100 * max(r.accuracy for r in runs)
        zero = 100 * next(r.accuracy for r in results if r.task == task and r.method == "zero-shot")
        row = next(line for line in text.splitlines() if line.startswith(f"| {task} |"))
        assert row.split(" | ")[1:5] == [
            f"{zero:.1f}",
            row.split(" | ")[2],
            f"{mean:.1f}",
            f"{best:.1f}",
        ]
    assert "| **Average** (2 tasks) |" in text
    assert "| Zero-shot |" in text and "| of which search | Runs |" in text
    assert "Only 3 modules were available" not in text  # 2 are drawn, 3 exist
    assert "## Where composition helps, and where it does not" in text
    assert "With 5 evaluation examples per task one example is worth 20.0 points" in text
    assert "LoraHub** (average over seeds) beats Zero-shot on" in text
    assert not (tmp_path / "report" / "accuracy.png").exists()


def test_the_report_says_when_fewer_modules_than_drawn_exist(setup, tmp_path):
    methods = (replace(setup.methods[2], sample=20),)
    small = replace(setup, tasks=setup.tasks[:1], methods=methods, seeds=1)
    results = run_replication(small, tmp_path / "cache", CountingRunner())

    text = write_report(small, results, tmp_path / "report", "cmd", plot=False).read_text()

    assert "**Only 3 modules were available**, fewer than the 20 the paper draws" in text


def test_the_report_says_when_a_seeded_method_has_fewer_seeds_than_planned(setup, tmp_path):
    lorahub = (setup.methods[2],)
    one_seed = replace(setup, tasks=setup.tasks[:1], methods=lorahub, seeds=1)
    results = run_replication(one_seed, tmp_path / "cache", CountingRunner())

    planned_two = replace(one_seed, seeds=2)
    text = write_report(planned_two, results, tmp_path / "report", "cmd", plot=False).read_text()
    assert "**LoraHub has 1 of the 2 seeds per task** (fewer on 1 tasks" in text
    full = write_report(one_seed, results, tmp_path / "report", "cmd", plot=False).read_text()
    assert "seeds per task**" not in full


def test_composition_methods_need_two_modules(setup, llama_modules, tmp_path):
    with pytest.raises(EngineError, match="need at least 2 modules; 1 found"):
        run_replication(replace(setup, modules=llama_modules[:1]), tmp_path, CountingRunner())


def test_an_unseeded_composition_runs_once_with_one_column(setup, tmp_path):
    once = replace(setup.methods[3], seeded=False)
    single = replace(setup, tasks=setup.tasks[:1], methods=(setup.methods[0], once))
    runner = CountingRunner()

    results = run_replication(single, tmp_path / "cache", runner)
    text = write_report(single, results, tmp_path / "report", "cmd", plot=False).read_text()

    assert runner.calls == [("arithmetic", "zero-shot", 0), ("arithmetic", "improved", 0)]
    assert "| Task | Zero-shot | Improved |" in text
    assert "- **Improved** beats Zero-shot on" in text


def test_the_default_methods_are_the_papers_and_the_improved_one():
    methods = {m.name: m for m in default_methods()}

    assert list(methods) == ["zero-shot", "icl", "lorahub", "improved"]
    lorahub, improved = methods["lorahub"], methods["improved"]
    assert (lorahub.sample, lorahub.settings.optimizer, lorahub.settings.steps) == (20, "NGOpt", 40)
    assert lorahub.settings.l1 == 0.05 and lorahub.seeded
    assert (improved.sample, improved.settings.preselect) == (None, 20)


def load_script():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "replicate_lorahub.py"
    spec = importlib.util.spec_from_file_location("replicate_lorahub", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_the_script_runs_then_renders_from_the_cache_only(
    tiny_llama, llama_modules, tasks_folder, tmp_path
):
    script = load_script()
    modules = Path(llama_modules[0].path).parent
    (modules / "half-written.partial").mkdir(exist_ok=True)
    cache, report = tmp_path / "cache", tmp_path / "report"
    args = [
        str(tasks_folder), "--base-model", str(tiny_llama.path), "--modules", str(modules),
        "--methods", "zero-shot", "lorahub", "--seeds", "1", "--shots", "2",
        "--eval-count", "3", "--max-new-tokens", "3", "--cache", str(cache),
        "--report", str(report), "--no-plot",
    ]  # fmt: skip

    assert script.main(args) == 0
    files = sorted(cache.rglob("*.json"))
    (report / "README.md").unlink()
    assert script.main([*args, "--report-only"]) == 0

    assert len(files) == 4
    assert sorted(cache.rglob("*.json")) == files
    text = (report / "README.md").read_text()
    assert "Module set: 3 modules." in text
    [command] = [line for line in text.splitlines() if line.startswith(".venv/bin/python")]
    assert "--methods zero-shot lorahub --seeds 1" in command
    assert "--report-only" not in command


def test_the_script_reports_bad_input_as_an_error(tasks_folder, tmp_path, capsys):
    script = load_script()

    code = script.main([str(tasks_folder), "--modules", str(tmp_path / "none")])

    assert code == 2
    assert "not a folder of adapter folders" in capsys.readouterr().err
