"""A task travels through a real broker to a real worker process and back."""

import time

import pytest

from composition.models import JobStatus, WorkerCheck
from composition.tasks import worker_check_answer
from tests.conftest import skip_or_fail
from tests.workers import REDIS_TEST_URL, broker_connection, redis_reachable, running_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_for_status(check: WorkerCheck, status: str, timeout: float) -> WorkerCheck:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check.refresh_from_db()
        if check.status == status:
            return check
        time.sleep(0.2)
    raise AssertionError(f"{check} did not reach {status} in {timeout} s")


@pytest.fixture(params=["embedded", "redis"])
def broker_url(request) -> str:
    if request.param == "redis":
        if not redis_reachable():
            skip_or_fail(f"Redis is not reachable at {REDIS_TEST_URL}")
        return REDIS_TEST_URL
    return "filesystem://localhost/"


def test_gpu_task_reaches_a_gpu_worker_and_updates_the_row(broker_url, tmp_path):
    broker_dir = tmp_path / "broker"
    with broker_connection(broker_url, broker_dir) as conn:
        for queue in ("default", "gpu"):
            conn.default_channel.queue_purge(queue)

        gpu_check = WorkerCheck.objects.create(queue="gpu")
        light_check = WorkerCheck.objects.create(queue="default")
        assert gpu_check.status == JobStatus.QUEUED
        for check in (gpu_check, light_check):
            worker_check_answer.apply_async(
                args=[check.pk, check.attempt], queue=check.queue, connection=conn
            )

        log = tmp_path / "worker.log"
        with running_worker(broker_url=broker_url, broker_dir=broker_dir, queues="gpu", log=log):
            try:
                gpu_check = wait_for_status(gpu_check, JobStatus.SUCCEEDED, timeout=90)
            except AssertionError:
                pytest.fail(f"worker log:\n{log.read_text()}")
            # Long enough for a misrouted task to have been taken as well.
            time.sleep(2)

        conn.default_channel.queue_purge("default")

    assert gpu_check.worker_host.startswith("test@")
    assert gpu_check.started_at <= gpu_check.finished_at
    light_check.refresh_from_db()
    assert light_check.status == JobStatus.QUEUED, "a worker on 'gpu' took a 'default' task"
