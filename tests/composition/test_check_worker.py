"""check_worker goes through the configured broker, via the service and on_commit."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from composition.models import JobStatus, WorkerCheck
from hubsite import job_runs
from tests.workers import broker_connection, kill_worker, running_worker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def empty_queues():
    with broker_connection(settings.CELERY_BROKER_URL, settings.TEST_BROKER_DIR) as conn:
        for queue in ("default", "gpu"):
            conn.default_channel.queue_purge(queue)
        yield
        for queue in ("default", "gpu"):
            conn.default_channel.queue_purge(queue)


@pytest.mark.slow
def test_check_worker_is_answered_by_a_running_worker(empty_queues, tmp_path, capsys):
    with running_worker(
        broker_url=settings.CELERY_BROKER_URL,
        broker_dir=settings.TEST_BROKER_DIR,
        queues="default,gpu",
        log=tmp_path / "worker.log",
    ):
        call_command("check_worker", queue="default", timeout=90)

    assert "queue default: answered by test@" in capsys.readouterr().out
    assert WorkerCheck.objects.get().status == JobStatus.SUCCEEDED


def test_check_worker_without_a_worker_says_so(empty_queues):
    with pytest.raises(CommandError, match="no worker answered on queue 'gpu' within 1 s"):
        call_command("check_worker", queue="gpu", timeout=1)

    assert WorkerCheck.objects.get().status == JobStatus.QUEUED


def test_check_worker_refuses_an_unknown_queue(db):
    with pytest.raises(CommandError, match="invalid choice: 'cpu'"):
        call_command("check_worker", "--queue", "cpu")


@pytest.mark.slow
def test_a_check_sent_after_its_worker_was_killed_is_failed_by_the_sweep(
    empty_queues, tmp_path, capsys
):
    with running_worker(
        broker_url=settings.CELERY_BROKER_URL,
        broker_dir=settings.TEST_BROKER_DIR,
        queues="default,gpu",
        log=tmp_path / "worker.log",
    ) as worker:
        call_command("check_worker", queue="gpu", timeout=90)
        kill_worker(worker)
        with pytest.raises(CommandError, match="no worker answered on queue 'gpu'"):
            call_command("check_worker", queue="gpu", timeout=2)

    unanswered = WorkerCheck.objects.get(status=JobStatus.QUEUED)
    WorkerCheck.objects.filter(pk=unanswered.pk).update(
        created_at=timezone.now() - timedelta(seconds=WorkerCheck.queue_timeout_seconds + 1)
    )
    assert job_runs.sweep()["WorkerCheck"] == (0, 1)

    unanswered.refresh_from_db()
    assert unanswered.status == JobStatus.FAILED
    assert unanswered.error_message.startswith("no worker took it within 120 s")
    assert [e["event"] for e in unanswered.events] == ["queued", "expired"]
