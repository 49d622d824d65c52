"""Writes of the composition app: jobs and their state changes.

The job row is the source of truth. Submission creates it and dispatches the
Celery task once the row is committed; the task only calls ``composition_run``
here, which claims the row, runs the engine, reports progress to the row and
stores the result as a new module linked to its sources.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from composition.engine import cards
from composition.engine.scoring import exact_match
from composition.engine.types import (
    OPTIMIZERS,
    AdapterRef,
    CompositionCancelled,
    CompositionResult,
    CompositionSettings,
    EngineError,
    Example,
    ModelRef,
    StepReport,
)
from composition.models import (
    CompositionCandidate,
    CompositionJob,
    JobStatus,
    WorkerCheck,
)
from hubsite import job_runs
from hubsite.job_runs import JobStateError
from modules.models import BaseModel, Module
from modules.selectors import module_visible_to, visible_module_ids

logger = logging.getLogger(__name__)
ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class JobLimitExceeded(Exception):
    """The user already has as many active jobs as allowed."""


def known_queues() -> list[str]:
    return [queue.name for queue in settings.CELERY_TASK_QUEUES]


# --- Worker checks -----------------------------------------------------------


def worker_check_request(*, queue: str) -> WorkerCheck:
    """Create a check row and send it to ``queue`` once the row is committed."""
    if queue not in known_queues():
        raise ValueError(f"unknown queue {queue!r}; known: {', '.join(known_queues())}")
    from composition.tasks import worker_check_answer

    with transaction.atomic():
        check = WorkerCheck.objects.create(queue=queue)
        transaction.on_commit(lambda: worker_check_answer.apply_async(args=[check.pk], queue=queue))
    return check


def worker_check_answer_run(*, check_id: int, worker_host: str) -> None:
    """What a worker does with a check: mark it running, then succeeded."""
    now = timezone.now()
    WorkerCheck.objects.filter(pk=check_id).update(
        status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, worker_host=worker_host
    )
    WorkerCheck.objects.filter(pk=check_id).update(
        status=JobStatus.SUCCEEDED, finished_at=timezone.now()
    )


# --- Submitting ----------------------------------------------------------------


# Search settings, named alike on the form, the job row, the submission and the API.
SETTING_FIELDS = (
    "steps", "l1", "bound", "optimizer", "population", "seed", "max_new_tokens", "preselect",
)  # fmt: skip


@dataclass(frozen=True)
class CompositionSubmission:
    """What a user asks for; the form and the API both build one."""

    base_model: BaseModel
    examples: list[Example]
    modules: list[Module] = field(default_factory=list)
    pick: int | None = None
    heldout: list[Example] = field(default_factory=list)
    name: str = ""
    steps: int = 40
    l1: float = 0.05
    bound: float = 1.5
    optimizer: str = "NGOpt"
    population: int = 1
    seed: int | None = 0
    max_new_tokens: int = 32
    preselect: int | None = None


def composition_submit(*, owner, submission: CompositionSubmission) -> CompositionJob:
    """Validate, create the job row, and queue it once committed.

    Raises ``ValidationError`` (with field errors) for bad input and
    ``JobLimitExceeded`` when the user already has too many active jobs.
    """
    _check_limits(owner, submission)
    candidates = _candidates(owner, submission)
    _check_preselect(submission.preselect, len(candidates))
    with transaction.atomic():
        job = CompositionJob.objects.create(
            owner=owner,
            base_model=submission.base_model,
            name=submission.name or _default_name(owner),
            examples=[_example_json(e) for e in submission.examples],
            heldout=[_example_json(e) for e in submission.heldout],
            picked_at_random=submission.pick is not None,
            steps=submission.steps,
            l1=submission.l1,
            bound=submission.bound,
            optimizer=submission.optimizer,
            population=submission.population,
            seed=submission.seed,
            max_new_tokens=submission.max_new_tokens,
            preselect=submission.preselect,
        )
        CompositionCandidate.objects.bulk_create(
            CompositionCandidate(job=job, module=m, module_name=m.full_name, position=i)
            for i, m in enumerate(candidates)
        )
        _dispatch_on_commit(job)
    return job


def _check_limits(owner, submission: CompositionSubmission) -> None:
    active = CompositionJob.objects.filter(owner=owner, status__in=ACTIVE_STATUSES).count()
    if active >= settings.HUB_MAX_ACTIVE_JOBS:
        raise JobLimitExceeded(
            f"you already have {active} queued or running compositions "
            f"(at most {settings.HUB_MAX_ACTIVE_JOBS}); wait for one to finish or cancel one"
        )
    errors: dict[str, list[str]] = {}
    _check_examples(
        errors, "examples", submission.examples, settings.HUB_MAX_EXAMPLES, required=True
    )
    _check_examples(errors, "heldout", submission.heldout, settings.HUB_MAX_HELDOUT, required=False)
    bounds = {
        "steps": (submission.steps, 1, 1000),
        "population": (submission.population, 1, 64),
        "max_new_tokens": (submission.max_new_tokens, 1, 256),
    }
    for name, (value, low, high) in bounds.items():
        if not low <= value <= high:
            errors.setdefault(name, []).append(f"must be between {low} and {high}")
    if not 0 < submission.bound <= 10:
        errors.setdefault("bound", []).append("must be above 0 and at most 10")
    if submission.l1 < 0:
        errors.setdefault("l1", []).append("must not be negative")
    if submission.optimizer not in OPTIMIZERS:
        errors.setdefault("optimizer", []).append(
            f"unknown optimiser {submission.optimizer!r}; use one of {', '.join(OPTIMIZERS)}"
        )
    if (
        submission.name
        and CompositionJob.objects.filter(owner=owner, name=submission.name).exists()
    ):
        errors.setdefault("name", []).append("you already used this name for a composition")
    if (
        submission.name
        and Module.objects.filter(owner=owner, name__iexact=submission.name).exists()
    ):
        errors.setdefault("name", []).append("you already have a module with this name")
    if errors:
        raise ValidationError(errors)


def _check_preselect(preselect: int | None, candidate_count: int) -> None:
    if preselect is None:
        return
    if preselect < 2:
        raise ValidationError({"preselect": ["a composition needs at least 2 modules"]})
    if preselect >= candidate_count:
        raise ValidationError(
            {
                "preselect": [
                    f"must be fewer than the {candidate_count} candidate modules, "
                    "or empty to compose them all"
                ]
            }
        )


def _check_examples(errors, field_name, examples, limit, *, required) -> None:
    if required and not examples:
        errors.setdefault(field_name, []).append("at least one example is needed")
    if len(examples) > limit:
        errors.setdefault(field_name, []).append(
            f"at most {limit} examples ({len(examples)} given)"
        )
    longest = settings.HUB_MAX_EXAMPLE_CHARS
    for number, example in enumerate(examples, start=1):
        if len(example.input) + len(example.target) > longest:
            errors.setdefault(field_name, []).append(
                f"example {number} is longer than {longest} characters"
            )


def _candidates(owner, submission: CompositionSubmission) -> list[Module]:
    base = submission.base_model
    if submission.pick is not None:
        return _pick_at_random(owner, base, submission.pick, submission.seed)
    modules = submission.modules
    errors = []
    if len(modules) < 2:
        errors.append("choose at least 2 modules")
    if len(modules) > settings.HUB_MAX_CANDIDATES:
        errors.append(f"at most {settings.HUB_MAX_CANDIDATES} modules")
    if len({m.pk for m in modules}) != len(modules):
        errors.append("a module is listed twice")
    for module in modules:
        if module.base_model_id != base.pk:
            errors.append(f"{module.full_name} adapts {module.base_model}, not {base}")
    if not errors and modules:
        errors += _shape_mismatches(modules)
    if errors:
        raise ValidationError({"modules": errors})
    return list(modules)


def _shape_mismatches(modules: list[Module]) -> list[str]:
    def shape(m: Module) -> str:
        return f"rank {m.r}, alpha {m.lora_alpha:g}, targets {sorted(m.target_modules)}"

    first = modules[0]
    return [
        f"{m.full_name} has {shape(m)}; {first.full_name} has {shape(first)}"
        for m in modules[1:]
        if shape(m) != shape(first)
    ]


def compatible_modules(*, owner, base_model: BaseModel):
    """Modules a user may compose for ``base_model``: those they may see."""
    return module_visible_to(owner).filter(base_model=base_model)


def _pick_at_random(owner, base: BaseModel, k: int, seed: int | None) -> list[Module]:
    pool = list(compatible_modules(owner=owner, base_model=base).order_by("id"))
    # Only modules shaped like the most common shape can be merged together.
    shapes: dict[tuple, list[Module]] = {}
    for module in pool:
        shapes.setdefault(
            (module.r, module.lora_alpha, tuple(sorted(module.target_modules))), []
        ).append(module)
    largest = max(shapes.values(), key=len, default=[])
    if len(largest) < 2:
        raise ValidationError(
            {"pick": [f"fewer than 2 compatible modules exist for {base} ({len(largest)} found)"]}
        )
    if k < 2:
        raise ValidationError({"pick": ["pick at least 2 modules"]})
    k = min(k, len(largest), settings.HUB_MAX_CANDIDATES)
    return random.Random(seed).sample(largest, k)


def _default_name(owner) -> str:
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    return f"composed-{stamp}"


def _example_json(example: Example) -> dict:
    return {"input": example.input, "target": example.target}


def _dispatch_on_commit(job: CompositionJob) -> None:
    from composition.tasks import gpu_run_composition

    job_runs.dispatch_on_commit(gpu_run_composition, job)


# --- Cancelling and publishing ----------------------------------------------------


def composition_cancel(*, job: CompositionJob) -> CompositionJob:
    """Cancel a queued job at once; ask a running one to stop after its step."""
    return job_runs.request_cancel(job)


def composition_publish(*, job: CompositionJob) -> Module:
    """Make the composed module public.

    Its card becomes public text: its list of sources is written again so
    that it names no module that is not public now (one may have been made
    private since the card was written).
    """
    from modules.services import module_update

    module = job.result_module
    if job.status != JobStatus.SUCCEEDED or module is None:
        raise JobStateError("only a finished composition with a result can be published")
    return module_update(
        module=module, visibility=Module.Visibility.PUBLIC, card=_card_naming_public_sources(job)
    )


def composition_cards_refresh() -> list[Module]:
    """Rewrite the sources of published compositions' cards that name a module not public.

    Cards written before sources were left unnamed, or naming a source made
    private since, are fixed; the others are left alone. Returns the modules
    whose card changed.
    """
    from modules.services import module_update

    jobs = CompositionJob.objects.filter(
        status=JobStatus.SUCCEEDED, result_module__visibility=Module.Visibility.PUBLIC
    ).select_related("result_module__base_model", "result_module__owner")
    changed = []
    for job in jobs:
        card = _card_naming_public_sources(job)
        if card is not None:
            changed.append(module_update(module=job.result_module, card=card))
    return changed


def _card_naming_public_sources(job: CompositionJob) -> str | None:
    """The result's card with its sources written for anyone to read; None if unchanged."""
    card = job.result_module.card
    rewritten = cards.with_section(
        card, _sources_section(list(job.candidates.filter(selected=True)))
    )
    return rewritten if rewritten != card else None


# --- Running (in a worker) ------------------------------------------------------


def composition_run(*, job_id: int, attempt: int, worker_host: str) -> None:
    """Run a job. Safe to call again for the same job (redelivery)."""
    reset = {"best_loss": None, "loss_history": []}
    job = job_runs.claim(CompositionJob, job_id, attempt, worker_host, reset)
    if job is not None:
        run_claimed_job(job, "job", _run_claimed)


def run_claimed_job(job, prefix: str, body: Callable[[Any, Path], None]) -> None:
    """Run ``body(job, work_dir)`` for a claimed job and record how it ended.

    The heartbeat beats all along; the work folder is removed whatever happens.
    """
    work_dir = Path(tempfile.mkdtemp(prefix=f"{prefix}-{job.pk}-", dir=job_work_root()))
    try:
        with job_runs.kept_alive(job):
            body(job, work_dir)
    except CompositionCancelled:
        job_runs.finish(job, JobStatus.CANCELLED)
    except (EngineError, ValidationError) as exc:
        message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        job_runs.finish(job, JobStatus.FAILED, error=message)
    except Exception as exc:
        logger.exception("%s %s failed", type(job).__name__, job.pk)
        error = f"internal error: {type(exc).__name__}: {exc}"
        job_runs.finish(job, JobStatus.FAILED, error=error)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _run_claimed(job: CompositionJob, work_dir: Path) -> None:
    # The engine pulls in torch: imported where it runs, so web processes stay light.
    from composition.engine.compose import CompositionRequest, compose, predict

    candidates = list(job.candidates.select_related("module__owner"))
    missing = [c.module_name for c in candidates if c.module is None]
    if missing:
        raise EngineError(f"source modules were deleted: {', '.join(missing)}")
    base = base_model_ref(job.base_model)
    request = CompositionRequest(
        base=base,
        modules=tuple(module_ref(c.module) for c in candidates),
        examples=tuple(Example(**e) for e in job.examples),
        heldout=tuple(Example(**e) for e in job.heldout),
        settings=CompositionSettings(
            steps=job.steps,
            l1=job.l1,
            bound=job.bound,
            optimizer=job.optimizer,
            population=job.population,
            seed=job.seed,
            max_new_tokens=job.max_new_tokens,
            preselect=job.preselect,
        ),
    )
    reporter = ProgressReporter(job)
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
    _store_result(job, candidates, result, zero_shot, out_dir)


def base_model_ref(base_model: BaseModel) -> ModelRef:
    """Where a worker finds the base model: a local folder, or a Hub download."""
    location = Path(base_model.weights_location)
    if not location.is_dir():
        from huggingface_hub import snapshot_download

        location = Path(
            snapshot_download(base_model.weights_location, cache_dir=settings.MODEL_CACHE_DIR)
        )
    return ModelRef(base_model.identifier, location, base_model.task_type)


def module_ref(module: Module) -> AdapterRef:
    from modules.services import module_local_folder

    weights = module.files.filter(filename="adapter_model.safetensors").first()
    return AdapterRef(
        module.full_name, module_local_folder(module), weights.sha256 if weights else None
    )


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


def _store_result(job, candidates, result: CompositionResult, zero_shot: list[str], out_dir: Path):
    from modules.services import ModuleDuplicate, module_create

    composed = _record_weights(candidates, result)
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
    card = _result_card(job, candidates, result, zero_shot_accuracy)
    (out_dir / "README.md").write_text(card)
    # One transaction: a worker that dies before the commit leaves no module
    # behind, so the redelivered task cannot store the result twice.
    with transaction.atomic():
        if not job_runs.this_run(job).select_for_update().exists():
            logger.warning("composition job %s: attempt %s was superseded", job.pk, job.attempt)
            return
        CompositionCandidate.objects.bulk_update(candidates, ["weight", "solo_loss", "selected"])
        try:
            module = module_create(
                owner=job.owner,
                name=job.name,
                files={f.name: f for f in out_dir.iterdir()},
                base_model=job.base_model,
                tags=["composed", "lorahub"],
                visibility=Module.Visibility.PRIVATE,
                card=card,
                lineage=[(c.module, c.weight) for c in composed],
            )
        except ModuleDuplicate as duplicate:
            # The same inputs and seed give the same weights: reuse that module.
            module = duplicate.existing
        timings = result.timings
        job_runs.this_run(job).update(
            status=JobStatus.SUCCEEDED,
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
            result_module=module,
            accuracy=result.accuracy,
            zero_shot_accuracy=zero_shot_accuracy,
            predictions=predictions,
            load_seconds=timings.load_seconds,
            select_seconds=timings.select_seconds if result.preselection else None,
            optimize_seconds=timings.optimize_seconds,
            evaluate_seconds=timings.evaluate_seconds,
            warm_start=timings.warm_start,
            device=device_name(),
        )


def _record_weights(candidates, result: CompositionResult) -> list:
    """Set each candidate's weight (0 when preselection left it out); the composed ones."""
    # The engine names modules as the run found them (module_ref).
    weights = dict(zip(result.module_names, result.weights, strict=True))
    solo_losses = {score.name: score.loss for score in result.preselection}
    for candidate in candidates:
        name = candidate.module.full_name
        candidate.selected = name in weights
        candidate.weight = weights.get(name, 0.0)
        candidate.solo_loss = solo_losses.get(name)
    return [c for c in candidates if c.selected]


def _result_card(job, candidates, result: CompositionResult, zero_shot_accuracy) -> str:
    metadata = {
        "base_model": job.base_model.identifier,
        "library_name": "peft",
        "license": "other",
        "tags": ["lora", "composed", "lorahub"],
    }
    composed = [c for c in candidates if c.selected]
    origin = f"Composed on the hub from {len(composed)} modules"
    if len(composed) < len(candidates):
        origin += (
            f" (the {len(composed)} of {len(candidates)} candidates with the lowest loss alone "
            "on the examples)"
        )
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
        + f"(LoraHub method: {job.optimizer}, {job.steps} steps, L1 {job.l1:g}, "
        + f"weights in ±{job.bound:g}, seed {job.seed}). "
        + f"Best objective {result.best_objective:.4f}.\n\n"
        + _sources_section(composed)
        + scores
    )


def _sources_section(composed: list[CompositionCandidate]) -> str:
    """The card's list of sources, naming only those anyone may see."""
    public = visible_module_ids(user=None, module_ids=[c.module_id for c in composed])
    return cards.sources_section(
        [
            cards.CardSource(c.module_name if c.module_id in public else None, c.weight)
            for c in composed
        ]
    )


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "cpu"


def job_work_root() -> Path:
    root = Path(settings.VAR_DIR) / "job-work"
    root.mkdir(parents=True, exist_ok=True)
    return root


# --- Housekeeping -------------------------------------------------------------------


def composition_sweep_stale(*, now=None) -> tuple[int, int]:
    """Re-queue (once) or fail running jobs whose worker stopped answering.

    Returns (requeued, failed).
    """
    return job_runs.sweep_stale(CompositionJob, _dispatch_on_commit, now=now)


# --- Playground -------------------------------------------------------------------

PLAYGROUND_MAX_INPUTS = 8
PLAYGROUND_MAX_CHARS = 2000


def playground_request(*, user, module: Module, inputs: list[str], max_new_tokens: int = 64):
    """Queue a generation with ``module`` for a few inputs."""
    from composition.models import GenerationRequest
    from composition.tasks import gpu_generate

    inputs = [text for text in inputs if text.strip()]
    errors = []
    if not inputs:
        errors.append("type at least one input")
    if len(inputs) > PLAYGROUND_MAX_INPUTS:
        errors.append(f"at most {PLAYGROUND_MAX_INPUTS} inputs at a time")
    if any(len(text) > PLAYGROUND_MAX_CHARS for text in inputs):
        errors.append(f"an input is longer than {PLAYGROUND_MAX_CHARS} characters")
    if not 1 <= max_new_tokens <= 256:
        raise ValidationError({"max_new_tokens": ["must be between 1 and 256"]})
    if errors:
        raise ValidationError({"inputs": errors})
    with transaction.atomic():
        request = GenerationRequest.objects.create(
            requester=user, module=module, inputs=inputs, max_new_tokens=max_new_tokens
        )
        transaction.on_commit(lambda: gpu_generate.delay(request.pk))
    return request


def playground_run(*, request_id: int, worker_host: str) -> None:
    from composition.models import GenerationRequest

    updated = GenerationRequest.objects.filter(pk=request_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=timezone.now(), worker_host=worker_host
    )
    if not updated:
        return
    request = GenerationRequest.objects.select_related("module__base_model", "module__owner").get(
        pk=request_id
    )
    module = request.module
    from composition.engine.compose import predict

    try:
        outputs = predict(
            base_model_ref(module.base_model),
            request.inputs,
            adapter=module_ref(module),
            max_new_tokens=request.max_new_tokens,
        )
    except Exception as exc:
        logger.exception("generation %s failed", request_id)
        GenerationRequest.objects.filter(pk=request_id).update(
            status=JobStatus.FAILED, finished_at=timezone.now(), error_message=str(exc)
        )
        return
    GenerationRequest.objects.filter(pk=request_id).update(
        status=JobStatus.SUCCEEDED, finished_at=timezone.now(), outputs=outputs
    )


def playground_expire(*, request, waited_seconds: float = 60.0) -> None:
    """A request no worker took in time fails with a message that says so."""
    from composition.models import GenerationRequest

    cutoff = timezone.now() - timedelta(seconds=waited_seconds)
    GenerationRequest.objects.filter(
        pk=request.pk, status=JobStatus.QUEUED, created_at__lt=cutoff
    ).update(
        status=JobStatus.FAILED,
        finished_at=timezone.now(),
        error_message=f"no worker took the request within {waited_seconds:.0f} s: "
        "the workers are busy or none is running",
    )
