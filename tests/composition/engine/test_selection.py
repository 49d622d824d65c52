"""Module preselection: each candidate alone on the examples, the best k kept."""

import json

import pytest
import torch

from composition.engine.__main__ import main
from composition.engine.adapters import AdapterCache
from composition.engine.compose import CompositionRequest, compose
from composition.engine.loading import BaseModelCache
from composition.engine.lora import ComposedLora
from composition.engine.objective import Objective
from composition.engine.selection import SelectionRequest, rank, select_modules
from composition.engine.types import CompositionCancelled, CompositionSettings, EngineError
from tests.composition.engine.conftest import EXAMPLES, HELDOUT


@pytest.fixture(scope="module")
def candidates(tiny_llama, make_modules):
    return make_modules(tiny_llama, count=6, prefix="candidate")


@pytest.fixture
def models():
    return BaseModelCache()


def alone_loss(base, ref, models) -> float:
    """One module at weight 1 in a composition of its own: the unbatched path."""
    loaded, _ = models.get(base)
    single = ComposedLora(loaded.model, [AdapterCache().get(ref)], loaded.device, loaded.dtype)
    with single, torch.inference_mode():
        [evaluation] = Objective(loaded, single, EXAMPLES, base.task_type)(torch.ones(1, 1).numpy())
    return evaluation.loss


def test_the_chosen_modules_are_those_with_the_lowest_loss_alone(tiny_llama, candidates, models):
    selection = select_modules(SelectionRequest(tiny_llama, candidates, EXAMPLES, keep=3), models)

    expected = {ref.name: alone_loss(tiny_llama, ref, models) for ref in candidates}
    assert {s.name: s.loss for s in selection.scores} == pytest.approx(expected, rel=1e-5)
    best_three = sorted(expected, key=expected.get)[:3]
    assert [ref.name for ref in selection.chosen] == best_three
    assert [s.loss for s in selection.scores] == sorted(s.loss for s in selection.scores)


def test_the_base_loss_is_the_loss_without_modules(tiny_llama, candidates, models):
    selection = select_modules(SelectionRequest(tiny_llama, candidates, EXAMPLES, keep=2), models)
    # compose's first candidate is w = 0, and with it the L1 term is 0 too.
    plain = compose(
        CompositionRequest(tiny_llama, candidates[:2], EXAMPLES, settings=CompositionSettings(1)),
        models=models,
    )

    assert selection.base_loss == pytest.approx(plain.objective_history[0], rel=1e-6)


def test_selection_is_deterministic_and_independent_of_the_batch_size(
    tiny_llama, candidates, models
):
    def run(group_size):
        request = SelectionRequest(tiny_llama, candidates, EXAMPLES, keep=4, group_size=group_size)
        return select_modules(request, models)

    first, again, unbatched = run(4), run(4), run(1)

    assert again == first.__class__(first.chosen, first.scores, first.base_loss, again.seconds)
    assert unbatched.chosen == first.chosen
    assert [s.loss for s in unbatched.scores] == pytest.approx([s.loss for s in first.scores])


def test_keeping_more_than_there_are_keeps_all_best_first(tiny_llama, llama_modules, models):
    selection = select_modules(
        SelectionRequest(tiny_llama, llama_modules, EXAMPLES, keep=10), models
    )

    assert sorted(ref.name for ref in selection.chosen) == sorted(r.name for r in llama_modules)
    assert [ref.name for ref in selection.chosen] == [s.name for s in selection.scores]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"keep": 0}, "keep must be at least 1, not 0"),
        ({"modules": ()}, "at least one candidate module"),
        ({"examples": ()}, "at least one example"),
        ({"group_size": 0}, "group_size must be at least 1"),
    ],
)
def test_bad_selection_requests_are_refused_clearly(tiny_llama, llama_modules, change, message):
    request = SelectionRequest(tiny_llama, llama_modules, EXAMPLES, keep=2)
    fields = {**request.__dict__, **change}

    with pytest.raises(EngineError, match=message):
        select_modules(SelectionRequest(**fields), BaseModelCache())


def test_a_module_listed_twice_is_refused(tiny_llama, llama_modules):
    request = SelectionRequest(tiny_llama, (*llama_modules, llama_modules[0]), EXAMPLES, keep=2)

    with pytest.raises(EngineError, match="modules listed twice: tester/module-0"):
        select_modules(request, BaseModelCache())


def test_compose_with_preselect_searches_only_the_kept_modules(tiny_llama, candidates, models):
    selection = select_modules(SelectionRequest(tiny_llama, candidates, EXAMPLES, keep=3), models)
    settings = CompositionSettings(steps=4, preselect=3)

    result = compose(CompositionRequest(tiny_llama, candidates, EXAMPLES, HELDOUT, settings))

    assert result.module_names == tuple(ref.name for ref in selection.chosen)
    assert len(result.weights) == 3
    assert [s.name for s in result.preselection] == [s.name for s in selection.scores]
    assert result.timings.select_seconds > 0


def test_preselection_reports_progress_per_pass(tiny_llama, candidates, models):
    reports = []
    settings = CompositionSettings(steps=2, preselect=2)

    compose(
        CompositionRequest(tiny_llama, candidates, EXAMPLES, (), settings),
        models=models,
        on_scored=lambda done, total: reports.append((done, total)),
    )

    # 6 candidates and the base model, 4 rows a pass: 3 then 4 scored.
    assert reports == [(3, 6), (6, 6)]


def test_preselection_stops_when_cancelled(tiny_llama, candidates, models):
    reports = []
    settings = CompositionSettings(steps=2, preselect=2)

    with pytest.raises(CompositionCancelled):
        compose(
            CompositionRequest(tiny_llama, candidates, EXAMPLES, (), settings),
            models=models,
            on_scored=lambda done, total: reports.append(done),
            should_cancel=lambda: bool(reports),
        )

    assert reports == [3]


def test_preselect_at_or_above_the_module_count_changes_nothing(tiny_llama, llama_modules, models):
    def run(preselect):
        settings = CompositionSettings(steps=4, preselect=preselect)
        return compose(CompositionRequest(tiny_llama, llama_modules, EXAMPLES, (), settings), None)

    plain, kept = run(None), run(3)

    assert kept.module_names == plain.module_names
    assert kept.objective_history == plain.objective_history
    assert kept.preselection == ()


def test_compose_refuses_preselect_below_two(tiny_llama, llama_modules):
    settings = CompositionSettings(steps=4, preselect=1)

    with pytest.raises(EngineError, match="a composition needs 2: k=1"):
        compose(CompositionRequest(tiny_llama, llama_modules, EXAMPLES, (), settings))


def test_cli_preselect_reports_the_scores(tiny_llama, candidates, tmp_path, capsys):
    examples = tmp_path / "examples.jsonl"
    examples.write_text("".join(json.dumps(e.__dict__) + "\n" for e in EXAMPLES))
    folders = [str(ref.path) for ref in candidates]

    code = main(
        ["compose", "--base", str(tiny_llama.path), "--base-id", "tiny/base",
         "--modules", *folders, "--examples", str(examples), "--out", str(tmp_path / "out"),
         "--steps", "2", "--preselect", "2"]
    )  # fmt: skip

    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert len(summary["weights"]) == 2
    assert len(summary["preselection"]) == 6


def test_a_module_whose_loss_is_not_a_number_ranks_last(llama_modules):
    losses = [float("nan"), 2.0, 1.0]

    assert rank(llama_modules, losses) == [2, 1, 0]


def test_cli_retrieval_and_auto_report_their_choices(tiny_llama, candidates, tmp_path, capsys):
    examples = tmp_path / "examples.jsonl"
    examples.write_text("".join(json.dumps(e.__dict__) + "\n" for e in EXAMPLES))
    folders = [str(ref.path) for ref in candidates]

    code = main(
        ["compose", "--base", str(tiny_llama.path), "--base-id", "tiny/base",
         "--modules", *folders, "--examples", str(examples), "--out", str(tmp_path / "out"),
         "--steps", "3", "--preselect", "3", "--preselect-method", "retrieval",
         "--strategy", "auto", "--validation-folds", "3"]
    )  # fmt: skip

    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert len(summary["weights"]) == 3
    assert len(summary["retrieval"]) == 6 and "preselection" not in summary
    strategy = summary["strategy"]
    assert set(strategy["validation_loss"]) == {"compose", "best_single", "uniform", "base"}
    assert strategy["chosen"] in strategy["validation_loss"]
    assert "3-fold" in strategy["reason"]


def test_cli_refuses_one_validation_fold(tiny_llama, candidates, tmp_path, capsys):
    examples = tmp_path / "examples.jsonl"
    examples.write_text("".join(json.dumps(e.__dict__) + "\n" for e in EXAMPLES))

    code = main(
        ["compose", "--base", str(tiny_llama.path), "--modules", str(candidates[0].path),
         str(candidates[1].path), "--examples", str(examples), "--out", str(tmp_path / "out"),
         "--strategy", "auto", "--validation-folds", "1"]
    )  # fmt: skip

    assert code == 2
    assert "error: validation needs at least 2 folds" in capsys.readouterr().err
