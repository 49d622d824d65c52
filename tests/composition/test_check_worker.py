"""check_worker goes through the configured broker, via the service and on_commit."""

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from composition.models import JobStatus, WorkerCheck
from tests.workers import broker_connection, running_worker

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
