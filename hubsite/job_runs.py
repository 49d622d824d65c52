"""The life of a worker job's row: queue, cancel, claim, keep alive, finish, sweep.

Shared by every kind of job a worker runs (compositions, trainings). A job
model has, besides ``hubsite.jobs.Job``'s fields, ``attempt``,
``cancel_requested``, ``current_step`` and ``steps``. The row is the truth:
a run may write to it only while the row is running as that run's attempt
(``this_run``), so a run the sweep gave up on can never overwrite the next
attempt's progress or a final state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from hubsite.jobs import JobStatus

logger = logging.getLogger(__name__)

# A job runs at most this often: once, then once more after its worker died.
MAX_ATTEMPTS = 2
# Progress is written at most this often; the last step is always written.
PROGRESS_INTERVAL_SECONDS = 1.0


class JobStateError(Exception):
    """The job is not in a state that allows the action."""


def dispatch_on_commit(task, job) -> None:
    """Send ``task(job id, attempt)`` once the transaction that queued the job commits."""
    job_id, attempt = job.pk, job.attempt
    transaction.on_commit(lambda: task.delay(job_id, attempt))


def request_cancel(job):
    """Cancel a queued job at once; ask a running one to stop after its current step."""
    with transaction.atomic():
        job = type(job).objects.select_for_update().get(pk=job.pk)
        if job.is_final:
            raise JobStateError(f"the job already {job.status}")
        if job.status == JobStatus.QUEUED:
            job.status = JobStatus.CANCELLED
            job.finished_at = timezone.now()
        job.cancel_requested = True
        job.save(update_fields=["status", "finished_at", "cancel_requested"])
    return job


def this_run(job):
    """The job's row while this run still owns it."""
    return type(job).objects.filter(pk=job.pk, status=JobStatus.RUNNING, attempt=job.attempt)


def claim(model, job_id: int, attempt: int, worker_host: str, reset: dict):
    """Mark the job running as ``attempt``, or say it must not run (None).

    ``reset`` holds the fields a fresh start clears (progress, results).
    """
    with transaction.atomic():
        job = model.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.is_final or job.attempt != attempt:
            return None
        now = timezone.now()
        if job.cancel_requested:
            job.status, job.finished_at = JobStatus.CANCELLED, now
            job.save(update_fields=["status", "finished_at"])
            return None
        if job.status == JobStatus.RUNNING:
            # Delivered again while the row says running: the worker that had it
            # died and the broker handed the unacknowledged task on. That restart
            # is the job's one retry, as a re-queue by the sweep would be, so a
            # job that kills its worker every time cannot loop for ever.
            if job.attempt >= MAX_ATTEMPTS:
                job.status, job.finished_at = JobStatus.FAILED, now
                job.error_message = (
                    f"the worker ({job.worker_host or 'unknown'}) stopped at step "
                    f"{job.current_step} of {job.steps} on attempt {job.attempt} of "
                    f"{MAX_ATTEMPTS}; not started again"
                )
                job.save(update_fields=["status", "finished_at", "error_message"])
                return None
            # The redelivered task still carries the old number: a further copy
            # of it is ignored and the sweep deals with the row.
            job.attempt += 1
        job.status = JobStatus.RUNNING
        job.started_at = job.heartbeat_at = now
        job.worker_host = worker_host
        job.current_step, job.error_message = 0, ""
        for field, value in reset.items():
            setattr(job, field, value)
        job.save()
    return job


def finish(job, status: str, error: str = "") -> None:
    this_run(job).update(status=status, finished_at=timezone.now(), error_message=error)


def stopped(job) -> bool:
    """Whether the run must stop: cancel requested, or the sweep took the row back."""
    return not this_run(job).filter(cancel_requested=False).exists()


class ProgressWriter:
    """Writes a run's steps to its row, throttled, and tells the run when to stop."""

    def __init__(self, job):
        self.job = job
        self.pending: list[float] = []
        self.last_step: int | None = None
        self.fields: dict = {}
        self.last_write = 0.0
        self.last_stop_check = 0.0

    def record(self, step: int, losses: Iterable[float], final: bool = False, **fields) -> None:
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
        job.loss_history = [*job.loss_history, *self.pending]
        self.pending = []
        job.current_step, job.heartbeat_at = self.last_step, timezone.now()
        for field, value in self.fields.items():
            setattr(job, field, value)
        this_run(job).update(
            current_step=job.current_step,
            loss_history=job.loss_history,
            heartbeat_at=job.heartbeat_at,
            **self.fields,
        )
        self.last_write = time.monotonic()

    def cancelled(self) -> bool:
        """Whether to stop: cancel requested, or the sweep took the row back."""
        if time.monotonic() - self.last_stop_check < PROGRESS_INTERVAL_SECONDS:
            return False
        self.last_stop_check = time.monotonic()
        return stopped(self.job)


@contextmanager
def kept_alive(job, interval: float | None = None):
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


def sweep_stale(model, dispatch: Callable, *, now=None) -> tuple[int, int]:
    """Re-queue (once) or fail running jobs of ``model`` whose worker stopped answering.

    ``dispatch(job)`` queues a re-queued job's task after the commit.
    Returns (requeued, failed).
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.HUB_JOB_STALE_SECONDS)
    requeued = failed = 0
    stale = model.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff)
    for job_id in stale.values_list("pk", flat=True):
        with transaction.atomic():
            job = model.objects.select_for_update().get(pk=job_id)
            if job.status != JobStatus.RUNNING or job.heartbeat_at >= cutoff:
                continue
            if job.attempt < MAX_ATTEMPTS and not job.cancel_requested:
                job.status, job.attempt = JobStatus.QUEUED, job.attempt + 1
                job.error_message = (
                    f"worker {job.worker_host} stopped responding at step {job.current_step}; "
                    "re-queued once"
                )
                job.save(update_fields=["status", "attempt", "error_message"])
                dispatch(job)
                requeued += 1
            else:
                job.status, job.finished_at = JobStatus.FAILED, now
                job.error_message = (
                    f"the worker ({job.worker_host or 'unknown'}) stopped responding: no heartbeat "
                    f"since {job.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC, at step {job.current_step} "
                    f"of {job.steps}"
                )
                job.save(update_fields=["status", "finished_at", "error_message"])
                failed += 1
    return requeued, failed
