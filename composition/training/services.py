"""Writes of module training: checking a request, the job's life, the new module.

Two callers share the steps here. ``manage.py train_module`` checks a request
with ``training_check`` and trains in its own process; the web and the API
create a ``TrainingJob`` with ``training_submit``, and a worker on the ``gpu``
queue runs it with ``training_run``, which claims the row, reports progress
to it and registers the result as a module of its owner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from composition.engine.targets import default_target_modules
from composition.engine.types import (
    Example,
    TrainingResult,
    TrainingSettings,
    TrainingStep,
)
from composition.engine_refs import base_model_ref, device_name
from composition.models import JobStatus, TrainingJob
from hubsite import job_runs
from hubsite.job_runs import JobLimitExceeded, JobStateError
from hubsite.jobs import ACTIVE_STATUSES
from hubsite.limits import out_of_range
from modules.models import BaseModel, Module
from modules.services import check_module_name

logger = logging.getLogger(__name__)

__all__ = [
    "JobLimitExceeded",
    "JobStateError",
    "TrainingSubmission",
    "trained_module_register",
    "training_cancel",
    "training_check",
    "training_run",
    "training_submit",
    "training_train",
]

# The settings whose ranges HUB_SETTING_RANGES["training"] gives.
RANGED_FIELDS = (
    "rank", "alpha", "dropout", "steps", "batch_size", "learning_rate", "warmup_steps",
    "max_length", "seed",
)  # fmt: skip
TRAINED_TAGS = ("trained",)
DATA_SOURCE_LENGTH = TrainingJob._meta.get_field("data_source").max_length


# The engine's defaults, the one source of the form's, the API's and the job row's.
DEFAULTS = TrainingSettings()


@dataclass(frozen=True)
class TrainingSubmission:
    """What a user asks for; the form, the API and the command each build one."""

    base_model: BaseModel
    name: str
    examples: list[Example]
    data_source: str = ""
    public: bool = False
    rank: int = DEFAULTS.rank
    alpha: int = DEFAULTS.alpha
    dropout: float = DEFAULTS.dropout
    # Empty: the usual attention projections of the base model's family.
    target_modules: Sequence[str] = field(default_factory=tuple)
    steps: int = DEFAULTS.steps
    batch_size: int = DEFAULTS.batch_size
    learning_rate: float = DEFAULTS.learning_rate
    warmup_steps: int = DEFAULTS.warmup_steps
    max_length: int = DEFAULTS.max_length
    seed: int = DEFAULTS.seed


# --- Checking a request -----------------------------------------------------------


def training_check(
    *, owner, submission: TrainingSubmission, limits: bool = True
) -> tuple[str, ...]:
    """Check a request; return the layers it adapts.

    Raises ``ValidationError`` with messages per field. ``limits`` applies the
    hub's caps on examples (the command line, run by an operator, skips them).
    """
    errors: dict[str, list[str]] = {}
    _check_name(errors, owner, submission.name)
    _check_examples(errors, submission.examples, limits)
    for name, messages in out_of_range(
        "training", {name: getattr(submission, name) for name in RANGED_FIELDS}
    ).items():
        errors.setdefault(name, []).extend(messages)
    if submission.warmup_steps > submission.steps:
        errors.setdefault("warmup_steps", []).append("must not be more than the steps")
    targets = _targets(errors, submission)
    if errors:
        raise ValidationError(errors)
    return targets


def _check_name(errors: dict, owner, name: str) -> None:
    check_module_name(owner, name, errors)
    busy = TrainingJob.objects.filter(owner=owner, name__iexact=name, status__in=ACTIVE_STATUSES)
    if name and "name" not in errors and busy.exists():
        errors.setdefault("name", []).append("A training job of yours is already making this name.")


def _check_examples(errors: dict, examples: Sequence[Example], limits: bool) -> None:
    if not examples:
        errors.setdefault("examples", []).append("at least one example is needed")
    if not limits:
        return
    most = settings.HUB_MAX_TRAINING_EXAMPLES
    if len(examples) > most:
        errors.setdefault("examples", []).append(f"at most {most} examples ({len(examples)} given)")
    longest = settings.HUB_MAX_EXAMPLE_CHARS
    too_long = [
        number
        for number, example in enumerate(examples, start=1)
        if len(example.input) + len(example.target) > longest
    ]
    if too_long:
        listed = ", ".join(str(n) for n in too_long[:10]) + (" …" if len(too_long) > 10 else "")
        errors.setdefault("examples", []).append(
            f"examples longer than {longest} characters (input + target): {listed}"
        )


def _targets(errors: dict, submission: TrainingSubmission) -> tuple[str, ...]:
    base_model = submission.base_model
    given = tuple(dict.fromkeys(t.strip() for t in submission.target_modules if t.strip()))
    targets = given or default_target_modules(base_model.family)
    known = set(base_model.linear_shapes)
    unknown = [t for t in targets if known and t not in known]
    if unknown:
        choices = f"choose among {', '.join(sorted(known))}"
        message = (
            f"{base_model.identifier} has no layers named {', '.join(unknown)}; {choices}"
            if given
            else f"{base_model.identifier} lacks the {base_model.family} family's usual "
            f"targets ({', '.join(unknown)}); name the layers to adapt ({choices})"
        )
        errors.setdefault("target_modules", []).append(message)
    return tuple(sorted(targets))


# --- Submitting, cancelling ---------------------------------------------------------


def training_submit(*, owner, submission: TrainingSubmission) -> TrainingJob:
    """Check, create the job row, and queue it on the ``gpu`` queue once committed.

    Raises ``ValidationError`` for bad input and ``JobLimitExceeded`` when
    the user already has as many queued or running trainings as allowed.
    """
    job_runs.check_active_limit(TrainingJob, owner)
    targets = training_check(owner=owner, submission=submission)
    s = submission
    with transaction.atomic():
        return job_runs.job_create(
            TrainingJob,
            owner=owner,
            base_model=s.base_model,
            name=s.name,
            examples=[{"input": e.input, "target": e.target} for e in s.examples],
            data_source=(s.data_source or f"{len(s.examples)} examples")[:DATA_SOURCE_LENGTH],
            make_public=s.public,
            rank=s.rank,
            alpha=s.alpha,
            dropout=s.dropout,
            target_modules=list(targets),
            steps=s.steps,
            batch_size=s.batch_size,
            learning_rate=s.learning_rate,
            warmup_steps=s.warmup_steps,
            max_length=s.max_length,
            seed=s.seed,
        )


def training_cancel(*, job: TrainingJob) -> TrainingJob:
    """Cancel a queued job at once; ask a running one to stop after its current step."""
    return job_runs.request_cancel(job)


# --- Training and registering (a worker, or the command line) -------------------------


def training_train(
    *,
    base_model: BaseModel,
    examples: Sequence[Example],
    training_settings: TrainingSettings,
    out_dir: Path,
    on_step: Callable[[TrainingStep], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> TrainingResult:
    """Run the engine: a PEFT folder in ``out_dir``, loss on target tokens only."""
    # The engine pulls in torch: imported where it runs, so web processes stay light.
    from composition.engine.training import train_lora

    return train_lora(
        base_model_ref(base_model),
        examples,
        out_dir,
        training_settings,
        on_step=on_step,
        should_cancel=should_cancel,
    )


def trained_module_register(
    *,
    owner,
    name: str,
    base_model: BaseModel,
    result: TrainingResult,
    data_source: str,
    example_count: int,
    public: bool = False,
) -> Module:
    """Register a trained folder as ``owner/name`` with a card that says how it was made.

    Raises ``ValidationError`` (a name taken meanwhile…) or ``ModuleDuplicate``.
    """
    from composition.engine.cards import training_card
    from modules.services import module_import_folder

    full_name = f"{owner.get_username()}/{name}"
    card = training_card(
        title=full_name,
        base_model=base_model.identifier,
        result=result,
        data_source=data_source,
        example_count=example_count,
        license="other",
        tags=TRAINED_TAGS,
        description=f"A LoRA module for {base_model.identifier}, trained on the hub "
        f"from {example_count} examples.",
    )
    return module_import_folder(
        owner=owner,
        name=name,
        folder=result.adapter_dir,
        base_model=base_model,
        tags=TRAINED_TAGS,
        visibility=Module.Visibility.PUBLIC if public else Module.Visibility.PRIVATE,
        card=card,
    )


def training_run(*, job_id: int, attempt: int, worker_host: str) -> None:
    """Run a job in a worker. Safe to call again for the same job (redelivery)."""
    job_runs.run(
        TrainingJob,
        job_id=job_id,
        attempt=attempt,
        worker_host=worker_host,
        body=_run_claimed,
        reset={"current_step": 0, "loss_history": [], "final_loss": None},
    )


def job_training_settings(job: TrainingJob) -> TrainingSettings:
    return TrainingSettings(
        rank=job.rank,
        alpha=job.alpha,
        dropout=job.dropout,
        target_modules=tuple(job.target_modules) or None,
        steps=job.steps,
        batch_size=job.batch_size,
        learning_rate=job.learning_rate,
        warmup_steps=job.warmup_steps,
        max_length=job.max_length,
        seed=job.seed,
    )


def _run_claimed(job: TrainingJob, work_dir: Path) -> None:
    from modules.services import ModuleDuplicate

    reporter = TrainingProgress(job)
    result = training_train(
        base_model=job.base_model,
        examples=[Example(**e) for e in job.examples],
        training_settings=job_training_settings(job),
        out_dir=work_dir / "adapter",
        on_step=reporter.step,
        should_cancel=reporter.cancelled,
    )
    reporter.flush()
    note = ""
    # One transaction: a worker that dies before the commit leaves no module
    # behind, so the redelivered task cannot register the result twice.
    with transaction.atomic():
        if not job_runs.this_run(job).select_for_update().exists():
            logger.warning("training job %s: attempt %s was superseded", job.pk, job.attempt)
            return
        try:
            module = trained_module_register(
                owner=job.owner,
                name=job.name,
                base_model=job.base_model,
                result=result,
                data_source=job.data_source,
                example_count=len(job.examples),
                public=job.make_public,
            )
        except ModuleDuplicate as duplicate:
            # The same examples, settings and seed give the same weights.
            module = duplicate.existing
            note = f"identical weights were already registered as {module.full_name}; linked it"
        job_runs.finish(
            job,
            JobStatus.SUCCEEDED,
            error=note,
            result_module=module,
            final_loss=result.final_loss,
            train_seconds=result.seconds,
            device=device_name(),
        )


class TrainingProgress(job_runs.ProgressWriter):
    """The engine's training steps, written to the job row."""

    def step(self, report: TrainingStep) -> None:
        self.record(report.step, [report.loss], final=report.step == report.total)
