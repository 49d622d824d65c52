"""The life of a job's run in a worker: heartbeat while silent, ownership of the row."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from composition.models import CompositionJob
from hubsite import job_runs
from hubsite.jobs import JobStatus

LONG_AGO = timezone.now() - timedelta(hours=1)


@pytest.fixture
def running_job(user, base_model):
    return CompositionJob.objects.create(
        owner=user,
        base_model=base_model,
        name="silent",
        status=JobStatus.RUNNING,
        heartbeat_at=LONG_AGO,
        worker_host="worker@a",
    )


def heartbeat(job):
    return CompositionJob.objects.get(pk=job.pk).heartbeat_at


# The heartbeat thread has its own connection: it sees committed rows only.
@pytest.mark.django_db(transaction=True)
def test_a_silent_run_keeps_beating_and_stops_when_it_ends(running_job):
    with job_runs.kept_alive(running_job, interval=0.05):
        time.sleep(0.5)
    beaten = heartbeat(running_job)
    time.sleep(0.3)

    assert beaten > LONG_AGO
    assert heartbeat(running_job) == beaten


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_leaves_a_row_the_sweep_took_back(running_job):
    CompositionJob.objects.filter(pk=running_job.pk).update(status=JobStatus.QUEUED, attempt=2)

    with job_runs.kept_alive(running_job, interval=0.05):
        time.sleep(0.3)

    assert heartbeat(running_job) == LONG_AGO


@pytest.mark.django_db(transaction=True)
def test_a_beating_job_is_not_swept_but_a_silent_one_is(running_job, settings):
    settings.HUB_JOB_STALE_SECONDS = 60

    with job_runs.kept_alive(running_job, interval=0.05):
        time.sleep(0.3)
        assert job_runs.sweep()["CompositionJob"] == (0, 0)
    CompositionJob.objects.filter(pk=running_job.pk).update(heartbeat_at=LONG_AGO)

    assert job_runs.sweep()["CompositionJob"] == (1, 0)
    row = CompositionJob.objects.get(pk=running_job.pk)
    assert (row.status, row.attempt) == (JobStatus.QUEUED, 2)


class Reporter(job_runs.ProgressWriter):
    def step(self, number: int, loss: float) -> None:
        self.record(number, [loss], final=number == 3, best_loss=loss)


@pytest.mark.django_db
def test_progress_is_written_to_the_row_the_run_owns(running_job, monkeypatch):
    monkeypatch.setattr(job_runs, "PROGRESS_INTERVAL_SECONDS", 0.0)
    reporter = Reporter(running_job)
    callback = reporter.step  # what the engine is handed

    for number, loss in enumerate([0.9, 0.5, 0.7], start=1):
        callback(number, loss)
    row = CompositionJob.objects.get(pk=running_job.pk)

    assert (row.current_step, row.loss_history, row.best_loss) == (3, [0.9, 0.5, 0.7], 0.7)
    assert row.heartbeat_at > LONG_AGO
    assert not reporter.cancelled()
    CompositionJob.objects.filter(pk=running_job.pk).update(cancel_requested=True)
    assert reporter.cancelled()


@pytest.mark.django_db
def test_progress_between_writes_waits_for_the_next_write(running_job):
    reporter = Reporter(running_job)
    reporter.step(1, 0.9)  # the first step is written at once
    reporter.step(2, 0.8)  # within the interval: kept for later

    assert CompositionJob.objects.get(pk=running_job.pk).loss_history == [0.9]
    reporter.step(3, 0.7)  # the last step is always written
    assert CompositionJob.objects.get(pk=running_job.pk).loss_history == [0.9, 0.8, 0.7]


@pytest.mark.django_db(transaction=True)
def test_a_failed_runs_message_names_files_not_the_workers_folders(user, base_model, settings):
    job = CompositionJob.objects.create(owner=user, base_model=base_model, name="lost")

    def body(job, work_dir):
        (work_dir / "adapter").mkdir()
        (work_dir / "adapter" / "adapter_config.json").open()  # not there

    job_runs.run(CompositionJob, job_id=job.pk, attempt=job.attempt, worker_host="w", body=body)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error_message == (
        "internal error: FileNotFoundError: [Errno 2] No such file or directory: "
        "'adapter_config.json'"
    )
    assert str(settings.JOB_WORK_DIR) not in job.events[-1]["message"]


@pytest.mark.django_db(transaction=True)
def test_a_failed_runs_message_shows_control_characters_as_escapes(user, base_model):
    job = CompositionJob.objects.create(owner=user, base_model=base_model, name="escape")

    def body(job, work_dir):
        raise job_runs.JobFailed("the module 'x\x1b[2J' was deleted")

    job_runs.run(CompositionJob, job_id=job.pk, attempt=job.attempt, worker_host="w", body=body)

    job.refresh_from_db()
    assert job.error_message == "the module 'x\\x1b[2J' was deleted"
