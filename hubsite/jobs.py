"""Background work tracked in the database: the row, not Celery, holds the state.

Every kind of work a worker does (compositions, trainings, imports, playground
generations, worker checks) is a concrete ``Job``: one set of fields for its
state, attempts, heartbeat, progress and history, and a few class attributes
that say how ``hubsite.job_runs`` queues, runs, limits and sweeps it.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class Job(models.Model):
    """State of a unit of background work; the row, not Celery, is the truth."""

    # The Celery task that runs a job of this kind, called as task(job_id, attempt).
    task_name: ClassVar[str] = ""
    # How often a job may start: a second attempt follows a worker that died.
    max_attempts: ClassVar[int] = 2
    # A queued job no worker took within this many seconds fails (None: it waits).
    queue_timeout_seconds: ClassVar[float | None] = None
    # The setting that caps an owner's queued and running jobs of this kind ("": no cap).
    active_limit_setting: ClassVar[str] = ""
    # What a refused owner is told to wait before asking again.
    retry_after_seconds: ClassVar[int] = 60
    # The kind in people's words, plural: "compositions".
    kind_plural: ClassVar[str] = "jobs"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    status = models.CharField(
        max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    # Each dispatch gets a number; a task carrying an older one was superseded
    # (re-queued by the sweep) and must not run.
    attempt = models.PositiveSmallIntegerField(default=1)
    cancel_requested = models.BooleanField(default=False)
    # Progress: units of work done of ``steps`` (search steps, repositories, inputs…).
    current_step = models.PositiveIntegerField(default=0)
    steps = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker_host = models.CharField(max_length=200, blank=True)
    error_message = models.TextField(blank=True)
    # What happened to the job, in order: [{"at", "event", "attempt", "message"}].
    events = models.JSONField(default=list, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def progress(self) -> float:
        return min(1.0, self.current_step / self.steps) if self.steps else 0.0

    def dispatch_options(self) -> dict:
        """Options of the task's dispatch beyond its routing by name (e.g. a queue)."""
        return {}
