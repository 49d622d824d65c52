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
    requeued = []

    with job_runs.kept_alive(running_job, interval=0.05):
        time.sleep(0.3)
        assert job_runs.sweep_stale(CompositionJob, requeued.append) == (0, 0)
    CompositionJob.objects.filter(pk=running_job.pk).update(heartbeat_at=LONG_AGO)

    assert job_runs.sweep_stale(CompositionJob, requeued.append) == (1, 0)
    assert [job.pk for job in requeued] == [running_job.pk]
