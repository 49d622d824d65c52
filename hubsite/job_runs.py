"""The life of every worker job's row: queue, cancel, claim, run, keep alive, finish, sweep.

One lifecycle for every kind of ``hubsite.jobs.Job``. The row is the truth: a
run may write to it only while the row is running as that run's attempt
(``this_run``), so a run the sweep gave up on can never overwrite the next
attempt's progress or a final state. Each change of state is also appended
to the row's ``events``, so a re-queue or a failure stays on record after the
next attempt starts.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from composition.engine.types import CompositionCancelled, EngineError
from hubsite.errors import public_message
from hubsite.jobs import ACTIVE_STATUSES, Job, JobStatus

logger = logging.getLogger(__name__)

# Progress is written at most this often; the last step is always written.
PROGRESS_INTERVAL_SECONDS = 1.0


class JobStateError(Exception):
    """The job is not in a state that allows the action."""


class JobLimitExceeded(Exception):
    """The owner already has as many active jobs of this kind as allowed."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class JobFailed(Exception):
    """A run ends failed with a message meant for the job's owner."""


# --- Queueing -------------------------------------------------------------------------


def job_kinds() -> list[type[Job]]:
    """Every concrete job model of the installed apps."""
    return [model for model in apps.get_models() if issubclass(model, Job)]


def job_create(model: type[Job], *, owner, **fields) -> Job:
    """Create a queued job and send its task once the surrounding transaction commits.

    Raises ``JobLimitExceeded`` when the owner has as many active jobs of this
    kind as the kind's setting allows.
    """
    if owner is not None:
        check_active_limit(model, owner)
    job = model.objects.create(owner=owner, events=[_event("queued", 1)], **fields)
    dispatch_on_commit(job)
    return job


def check_active_limit(model: type[Job], owner) -> None:
    if not model.active_limit_setting:
        return
    limit = getattr(settings, model.active_limit_setting)
    active = model.objects.filter(owner=owner, status__in=ACTIVE_STATUSES).count()
    if active >= limit:
        raise JobLimitExceeded(
            f"you already have {active} queued or running {model.kind_plural} (at most "
            f"{limit}); wait for one to finish or cancel one",
            retry_after=model.retry_after_seconds,
        )


def dispatch_on_commit(job: Job) -> None:
    """Send the kind's task, by name, once the transaction that queued the job commits."""
    from hubsite.celery import app

    name, args, options = job.task_name, (job.pk, job.attempt), job.dispatch_options()
    transaction.on_commit(lambda: app.send_task(name, args=args, **options))


def request_cancel(job: Job) -> Job:
    """Cancel a queued job at once; ask a running one to stop after its current step."""
    with transaction.atomic():
        job = type(job).objects.select_for_update().get(pk=job.pk)
        if job.is_final:
            raise JobStateError(f"the job already {job.status}")
        if job.status == JobStatus.QUEUED:
            job.status = JobStatus.CANCELLED
            job.finished_at = timezone.now()
            _append(job, "cancelled", "cancelled before a worker took it")
        else:
            _append(job, "cancel_requested", "asked to stop after the current step")
        job.cancel_requested = True
        job.save(update_fields=["status", "finished_at", "cancel_requested", "events"])
    return job


# --- Running (in a worker) ------------------------------------------------------------


def run(
    model: type[Job],
    *,
    job_id: int,
    attempt: int,
    worker_host: str,
    body: Callable[[Job, Path], None],
    reset: dict | None = None,
) -> None:
    """Claim the job and run ``body(job, work_dir)``; record how it ended.

    Safe to call again for the same job (a redelivered task). ``reset`` holds
    the fields a fresh start clears. The body ends a successful run itself with
    ``finish(job, SUCCEEDED, …)`` (in the transaction that stores its result);
    a body that returns without doing so succeeds with nothing more to record.
    The heartbeat beats all along; the work folder is removed whatever happens.
    """
    job = claim(model, job_id, attempt, worker_host, reset or {})
    if job is None:
        return
    prefix = f"{model._meta.model_name}-{job.pk}-"
    work_dir = Path(tempfile.mkdtemp(prefix=prefix, dir=job_work_root()))
    try:
        with kept_alive(job):
            body(job, work_dir)
        finish(job, JobStatus.SUCCEEDED)
    except CompositionCancelled:
        finish(job, JobStatus.CANCELLED)
    except (EngineError, JobFailed) as exc:
        finish(job, JobStatus.FAILED, error=str(exc))
    except ValidationError as exc:
        finish(job, JobStatus.FAILED, error="; ".join(exc.messages))
    except Exception as exc:
        logger.exception("%s %s failed", model.__name__, job.pk)
        finish(job, JobStatus.FAILED, error=f"internal error: {type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def job_work_root() -> Path:
    """Where runs get their work folders (removed after each run, or as debris)."""
    root = Path(settings.JOB_WORK_DIR)
    root.mkdir(parents=True, exist_ok=True)
    return root


def claim(model: type[Job], job_id: int, attempt: int, worker_host: str, reset: dict):
    """Mark the job running as ``attempt``, or say it must not run (None)."""
    with transaction.atomic():
        job = model.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.is_final or job.attempt != attempt:
            return None
        now = timezone.now()
        if job.cancel_requested:
            job.status, job.finished_at = JobStatus.CANCELLED, now
            _append(job, "cancelled", "cancelled before it started")
            job.save(update_fields=["status", "finished_at", "events"])
            return None
        if job.status == JobStatus.RUNNING:
            # Delivered again while the row says running: the worker that had it
            # died and the broker handed the unacknowledged task on. That restart
            # counts as the job's retry, as a re-queue by the sweep would, so a
            # job that kills its worker every time cannot loop for ever.
            lost = (
                f"the worker ({job.worker_host or 'unknown'}) stopped at step "
                f"{job.current_step} of {job.steps} on attempt {job.attempt}"
            )
            if job.attempt >= model.max_attempts:
                job.status, job.finished_at = JobStatus.FAILED, now
                job.error_message = f"{lost} of {model.max_attempts}; not started again"
                _append(job, "failed", job.error_message)
                job.save(update_fields=["status", "finished_at", "error_message", "events"])
                return None
            _append(job, "requeued", f"{lost}; delivered again")
            # The redelivered task still carries the old number: a further copy
            # of it is ignored and the sweep deals with the row.
            job.attempt += 1
        job.status = JobStatus.RUNNING
        job.started_at = job.heartbeat_at = now
        job.worker_host = worker_host
        job.error_message = ""
        for field, value in reset.items():
            setattr(job, field, value)
        _append(job, "started", f"on {worker_host or 'a worker'}")
        job.save()
    return job


def this_run(job: Job):
    """The job's row while this run still owns it."""
    return type(job).objects.filter(pk=job.pk, status=JobStatus.RUNNING, attempt=job.attempt)


def finish(job: Job, status: str, error: str = "", **fields) -> bool:
    """End this run with ``status`` and result fields; False if it no longer owns the row.

    ``error`` is shown to the job's owner: paths of the worker's folders in it
    are cut to the file names they end in.
    """
    error = public_message(error)
    with transaction.atomic():
        row = this_run(job).select_for_update().only("events").first()
        if row is None:
            return False
        events = [*row.events, _event(str(status), job.attempt, error)]
        this_run(job).update(
            status=status,
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
            error_message=error,
            events=events,
            **fields,
        )
    return True


def stopped(job: Job) -> bool:
    """Whether the run must stop: cancel requested, or the sweep took the row back."""
    return not this_run(job).filter(cancel_requested=False).exists()


class ProgressWriter:
    """Writes a run's steps to its row, throttled, and tells the run when to stop.

    Kinds with a loss curve (``loss_history``) get their losses appended.
    """

    def __init__(self, job: Job):
        self.job = job
        self.pending: list[float] = []
        self.last_step: int | None = None
        self.fields: dict = {}
        self.last_write = 0.0
        self.last_stop_check = 0.0

    def record(self, step: int, losses: Iterable[float] = (), final: bool = False, **fields):
        """Step ``step`` done, with its new losses and other fields to write.

        Written at once when ``final`` (the last report of a phase), else at
        most once per interval.
        """
        self.pending.extend(losses)
        self.last_step, self.fields = step, fields
        if final or time.monotonic() - self.last_write >= PROGRESS_INTERVAL_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.last_step is None:
            return
        job = self.job
        written = dict(self.fields)
        if hasattr(job, "loss_history"):
            job.loss_history = written["loss_history"] = [*job.loss_history, *self.pending]
        self.pending = []
        job.current_step, job.heartbeat_at = self.last_step, timezone.now()
        for field, value in self.fields.items():
            setattr(job, field, value)
        this_run(job).update(
            current_step=job.current_step, heartbeat_at=job.heartbeat_at, **written
        )
        self.last_write = time.monotonic()

    def cancelled(self) -> bool:
        """Whether to stop: cancel requested, or the sweep took the row back."""
        if time.monotonic() - self.last_stop_check < PROGRESS_INTERVAL_SECONDS:
            return False
        self.last_stop_check = time.monotonic()
        return stopped(self.job)


@contextmanager
def kept_alive(job: Job, interval: float | None = None):
    """Beat the job's heartbeat from a thread while the body runs.

    Progress reports beat too, but nothing reports while a model loads or
    downloads, or while held-out examples are generated: a live job must not
    look dead to the sweep then.
    """
    interval = interval or max(1.0, settings.HUB_JOB_STALE_SECONDS / 5)
    done = threading.Event()

    def beat() -> None:
        try:
            while not done.wait(interval):
                try:
                    this_run(job).update(heartbeat_at=timezone.now())
                except DatabaseError:
                    logger.warning("heartbeat of %s failed", job, exc_info=True)
        finally:
            connections.close_all()  # this thread's own connections

    thread = threading.Thread(target=beat, name=f"heartbeat-{job.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=interval)


# --- The sweep (periodic) ---------------------------------------------------------------


def sweep(*, now=None) -> dict[str, tuple[int, int]]:
    """Deal with the jobs of every kind that no worker looks after.

    A running job whose heartbeat went stale is re-queued once (within its
    kind's attempts) or failed; a queued job older than its kind's queue
    time-out fails. Returns {kind: (requeued, failed)}.
    """
    now = now or timezone.now()
    return {model.__name__: _sweep_kind(model, now) for model in job_kinds()}


def _sweep_kind(model: type[Job], now) -> tuple[int, int]:
    requeued = failed = 0
    cutoff = now - timedelta(seconds=settings.HUB_JOB_STALE_SECONDS)
    stale = model.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff)
    for job_id in stale.values_list("pk", flat=True):
        outcome = _sweep_stale_job(model, job_id, cutoff, now)
        requeued += outcome == "requeued"
        failed += outcome == "failed"
    if model.queue_timeout_seconds is not None:
        waited = now - timedelta(seconds=model.queue_timeout_seconds)
        for job_id in model.objects.filter(
            status=JobStatus.QUEUED, created_at__lt=waited
        ).values_list("pk", flat=True):
            failed += _expire_queued_job(model, job_id, waited, now)
    return requeued, failed


def _sweep_stale_job(model: type[Job], job_id: int, cutoff, now) -> str:
    with transaction.atomic():
        job = model.objects.select_for_update().get(pk=job_id)
        if job.status != JobStatus.RUNNING or job.heartbeat_at >= cutoff:
            return ""
        silent = (
            f"the worker ({job.worker_host or 'unknown'}) stopped responding: no heartbeat "
            f"since {job.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC, at step {job.current_step} "
            f"of {job.steps}"
        )
        if job.attempt < model.max_attempts and not job.cancel_requested:
            job.status, job.attempt = JobStatus.QUEUED, job.attempt + 1
            job.error_message = f"{silent}; re-queued once"
            _append(job, "requeued", job.error_message)
            job.save(update_fields=["status", "attempt", "error_message", "events"])
            dispatch_on_commit(job)
            return "requeued"
        job.status, job.finished_at, job.error_message = JobStatus.FAILED, now, silent
        _append(job, "failed", silent)
        job.save(update_fields=["status", "finished_at", "error_message", "events"])
        return "failed"


def _expire_queued_job(model: type[Job], job_id: int, waited, now) -> bool:
    with transaction.atomic():
        job = model.objects.select_for_update().get(pk=job_id)
        if job.status != JobStatus.QUEUED or job.created_at >= waited:
            return False
        job.status, job.finished_at = JobStatus.FAILED, now
        job.error_message = (
            f"no worker took it within {model.queue_timeout_seconds:.0f} s: "
            "the workers are busy or none is running"
        )
        _append(job, "expired", job.error_message)
        job.save(update_fields=["status", "finished_at", "error_message", "events"])
        return True


# --- History ------------------------------------------------------------------------


def _event(event: str, attempt: int, message: str = "") -> dict:
    return {
        "at": timezone.now().isoformat(),
        "event": event,
        "attempt": attempt,
        "message": message,
    }


def _append(job: Job, event: str, message: str = "") -> None:
    job.events = [*job.events, _event(event, job.attempt, message)]
