"""The worker side of a composition: run the engine, report progress, store the result.

``composition_run`` is what the Celery task calls. The result becomes a new
private module of the job's owner, linked to its sources with their weights,
in the same transaction that marks the job succeeded.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.db import transaction

from composition.engine import cards
from composition.engine.scoring import exact_match
from composition.engine.types import (
    CompositionResult,
    CompositionSettings,
    EngineError,
    Example,
    StepReport,
)
from composition.engine_refs import base_model_ref, device_name, module_ref
from composition.models import CompositionCandidate, CompositionJob, JobStatus
from composition.retrieval import retrieve_candidates
from composition.selectors import agreed_license, licenses_in_words, source_licenses
from hubsite import job_runs
from modules.models import Module
from modules.selectors import visible_module_ids

logger = logging.getLogger(__name__)


def composition_run(*, job_id: int, attempt: int, worker_host: str) -> None:
    """Run a job. Safe to call again for the same job (redelivery)."""
    job_runs.run(
        CompositionJob,
        job_id=job_id,
        attempt=attempt,
        worker_host=worker_host,
        body=_run_claimed,
        reset={"current_step": 0, "best_loss": None, "loss_history": []},
    )


def _run_claimed(job: CompositionJob, work_dir: Path) -> None:
    # The engine pulls in torch: imported where it runs, so web processes stay light.
    from composition.engine.compose import CompositionRequest, compose, predict

    candidates = list(job.candidates.select_related("module__owner"))
    missing = [c.module_name for c in candidates if c.module is None]
    if missing:
        raise EngineError(f"source modules were deleted: {', '.join(missing)}")
    base = base_model_ref(job.base_model)
    examples = tuple(Example(**e) for e in job.examples)
    reporter = ProgressReporter(job)
    searched, preselect, retrieval_seconds = candidates, job.preselect, None
    if job.preselect_method == "retrieval" and job.preselect and job.preselect < len(candidates):
        # Ranked here from the stored fingerprints, so the others are never loaded.
        searched, retrieval_seconds = retrieve_candidates(
            job=job, candidates=candidates, base=base, examples=examples
        )
        reporter.scored(len(candidates), len(candidates))
        preselect = None
    request = CompositionRequest(
        base=base,
        modules=tuple(module_ref(c.module) for c in searched),
        examples=examples,
        heldout=tuple(Example(**e) for e in job.heldout),
        settings=CompositionSettings(
            steps=job.steps,
            l1=job.l1,
            bound=job.bound,
            optimizer=job.optimizer,
            population=job.population,
            seed=job.seed,
            max_new_tokens=job.max_new_tokens,
            preselect=preselect,
            preselect_method=job.preselect_method,
            strategy=job.strategy,
            validation_folds=job.validation_folds,
            early_stop=job.early_stop,
            merge=job.merge,
            weight_groups=job.weight_groups,
        ),
    )
    out_dir = work_dir / "adapter"
    result = compose(
        request,
        out_dir,
        on_step=reporter.step,
        should_cancel=reporter.cancelled,
        on_scored=reporter.scored,
    )
    reporter.flush()
    zero_shot = predict(base, [e.input for e in request.heldout], max_new_tokens=job.max_new_tokens)
    _store_result(job, candidates, result, zero_shot, out_dir, retrieval_seconds)


class ProgressReporter(job_runs.ProgressWriter):
    """The engine's composition steps, written to the job row."""

    def step(self, report: StepReport) -> None:
        self.record(
            report.step,
            report.new_losses,
            final=report.step == report.total,
            best_loss=report.best_loss,
        )

    def scored(self, done: int, total: int) -> None:
        # Preselection comes before the search's first step.
        self.record(0, (), final=done == total, scored_candidates=done)


def _store_result(
    job,
    candidates,
    result: CompositionResult,
    zero_shot: list[str],
    out_dir: Path,
    retrieval_seconds: float | None = None,
):
    from modules.services import ModuleDuplicate, module_create

    composed = _record_weights(candidates, result)
    licenses = source_licenses(c.module for c in composed)
    predictions = [
        {
            "input": p.input,
            "target": p.target,
            "output": p.output,
            "correct": p.correct,
            "zero_shot_output": base_output,
            "zero_shot_correct": exact_match(base_output, p.target),
        }
        for p, base_output in zip(result.predictions, zero_shot, strict=True)
    ]
    zero_shot_accuracy = (
        sum(p["zero_shot_correct"] for p in predictions) / len(predictions) if predictions else None
    )
    card = _result_card(job, candidates, result, zero_shot_accuracy, licenses)
    (out_dir / "README.md").write_text(card)
    # One transaction: a worker that dies before the commit leaves no module
    # behind, so the redelivered task cannot store the result twice.
    with transaction.atomic():
        if not job_runs.this_run(job).select_for_update().exists():
            logger.warning("composition job %s: attempt %s was superseded", job.pk, job.attempt)
            return
        CompositionCandidate.objects.bulk_update(
            candidates,
            ["weight", "group_weights", "solo_loss", "retrieval_score", "selected"],
            batch_size=500,
        )
        try:
            module = module_create(
                owner=job.owner,
                name=job.name,
                files={f.name: f for f in out_dir.iterdir()},
                base_model=job.base_model,
                tags=["composed", "lorahub"],
                license=agreed_license(licenses),
                visibility=Module.Visibility.PRIVATE,
                card=card,
                lineage=[(c.module, c.weight) for c in composed],
            )
        except ModuleDuplicate as duplicate:
            # The same inputs and seed give the same weights: reuse that module.
            module = duplicate.existing
        timings = result.timings
        job_runs.finish(
            job,
            JobStatus.SUCCEEDED,
            result_module=module,
            accuracy=result.accuracy,
            zero_shot_accuracy=zero_shot_accuracy,
            predictions=predictions,
            load_seconds=timings.load_seconds,
            select_seconds=_select_seconds(result, retrieval_seconds),
            optimize_seconds=timings.optimize_seconds,
            evaluate_seconds=timings.evaluate_seconds,
            warm_start=timings.warm_start,
            device=device_name(),
            **strategy_fields(result),
        )


def _select_seconds(result: CompositionResult, retrieval_seconds: float | None) -> float | None:
    if retrieval_seconds is not None:
        return retrieval_seconds
    return result.timings.select_seconds if result.preselection or result.retrieval else None


def strategy_fields(result: CompositionResult) -> dict:
    """The job row's record of strategy "auto": what won, why, every strategy's loss."""
    choice = result.strategy
    if choice is None:
        return {}
    return {
        "chosen_strategy": choice.chosen,
        "strategy_reason": choice.reason,
        "strategy_scores": {s.strategy: s.validation_loss for s in choice.scores},
        "validate_seconds": result.timings.validate_seconds,
    }


def _record_weights(candidates, result: CompositionResult) -> list:
    """Set each candidate's weight (0 when preselection left it out); the composed ones."""
    # The engine names modules as the run found them (module_ref).
    weights = dict(zip(result.module_names, result.module_weights(), strict=True))
    g = result.weight_groups
    groups = {
        name: list(result.weights[i * g : (i + 1) * g]) if g > 1 else []
        for i, name in enumerate(result.module_names)
    }
    solo_losses = {score.name: score.loss for score in result.preselection}
    retrieval_scores = {score.name: score.score for score in result.retrieval}
    for candidate in candidates:
        name = candidate.module.full_name
        candidate.selected = name in weights
        candidate.weight = weights.get(name, 0.0)
        candidate.group_weights = groups.get(name, [])
        candidate.solo_loss = solo_losses.get(name)
        if name in retrieval_scores:
            candidate.retrieval_score = retrieval_scores[name]
    return [c for c in candidates if c.selected]


def _result_card(
    job, candidates, result: CompositionResult, zero_shot_accuracy, licenses: dict[str, int]
) -> str:
    # The sources' license when they all share one; else none until the owner chooses.
    license = agreed_license(licenses)
    metadata = {
        "base_model": job.base_model.identifier,
        "library_name": "peft",
        **({"license": license} if license else {}),
        "tags": ["lora", "composed", "lorahub"],
    }
    license_line = (
        f"License: {license}, the license of all its sources.\n\n"
        if license
        else f"License: not chosen yet; its sources' licenses differ: "
        f"{licenses_in_words(licenses)}.\n\n"
    )
    composed = [c for c in candidates if c.selected]
    origin = f"Composed on the hub from {len(composed)} modules"
    if len(composed) < len(candidates):
        ranked_by = (
            "most relevant to the examples by fingerprint"
            if job.preselect_method == "retrieval"
            else "with the lowest loss alone on the examples"
        )
        origin += f" (the {len(composed)} of {len(candidates)} candidates {ranked_by})"
    if result.strategy is not None and result.strategy.chosen != "compose":
        origin += f"; validation on the examples chose {result.strategy.chosen}"
    scores = ""
    if result.accuracy is not None:
        scores = (
            f"\n## Held-out examples\n\nExact match on {len(job.heldout)} held-out examples: "
            f"{result.accuracy:.1%} (base model zero-shot: {zero_shot_accuracy:.1%}).\n"
        )
    return (
        cards.front_matter(metadata)
        + f"\n# {job.owner.username}/{job.name}\n\n"
        + f"{origin} with {len(job.examples)} examples "
        + f"(LoraHub method, {job.merge} merge{_groups_note(job)}: {job.optimizer}, "
        + f"{job.steps} steps, L1 {job.l1:g}, "
        + f"weights in ±{job.bound:g}, seed {job.seed}). "
        + f"Best objective {result.best_objective:.4f}.\n\n"
        + license_line
        + sources_section(composed)
        + scores
    )


def _groups_note(job) -> str:
    return f", {job.weight_groups} weights per module" if job.weight_groups > 1 else ""


def sources_section(composed: list[CompositionCandidate]) -> str:
    """The card's list of sources, naming only those anyone may see."""
    public = visible_module_ids(user=None, module_ids=[c.module_id for c in composed])
    return cards.sources_section(
        [
            cards.CardSource(c.module_name if c.module_id in public else None, c.weight)
            for c in composed
        ]
    )
