"""API → real broker → a separate worker process → engine on a tiny model → a registered module."""

import time

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from composition.models import JobStatus, TrainingJob
from modules.models import Module
from tests.composition.training.conftest import ROWS
from tests.workers import broker_connection, running_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def api(user, tiny_base):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def worker(tmp_path):
    with broker_connection(settings.CELERY_BROKER_URL, settings.TEST_BROKER_DIR) as conn:
        for queue in ("default", "gpu"):
            conn.default_channel.queue_purge(queue)
    log = tmp_path / "worker.log"
    with running_worker(
        broker_url=settings.CELERY_BROKER_URL,
        broker_dir=settings.TEST_BROKER_DIR,
        queues="gpu",
        log=log,
    ):
        yield log


def submit(api, **changes) -> TrainingJob:
    payload = {
        "base_model": "tiny/llama", "name": "worker-trained", "examples": ROWS, "steps": 5,
        "rank": 4, "alpha": 8, "batch_size": 2, "warmup_steps": 1, **changes,
    }  # fmt: skip
    response = api.post("/api/v1/trainings/", payload, format="json")
    assert response.status_code == 201, response.json()
    return TrainingJob.objects.get(pk=response.json()["id"])


def wait_until(job: TrainingJob, done, timeout: float, log) -> TrainingJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if done(job):
            return job
        time.sleep(0.3)
    pytest.fail(
        f"job stuck at {job.status} step {job.current_step}; worker log:\n{log.read_text()[-4000:]}"
    )


def test_a_worker_trains_the_job_and_registers_the_module(api, worker):
    job = submit(api)

    job = wait_until(job, lambda j: j.is_final, timeout=300, log=worker)

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert job.worker_host.startswith("test@")
    assert job.current_step == 5 and len(job.loss_history) == 5
    module = Module.objects.get(owner__username="ada", name="worker-trained")
    assert job.result_module == module and not module.is_public
    assert "Final training loss" in module.card
    body = api.get(f"/api/v1/trainings/{job.pk}/").json()
    assert body["result_module"] == "ada/worker-trained" and body["progress"] == 1.0


def test_cancel_while_running(api, worker):
    job = submit(api, steps=10000, batch_size=1)
    job = wait_until(job, lambda j: j.current_step >= 1, timeout=300, log=worker)

    api.post(f"/api/v1/trainings/{job.pk}/cancel/")

    job = wait_until(job, lambda j: j.is_final, timeout=120, log=worker)
    assert job.status == JobStatus.CANCELLED
    assert job.current_step < 10000 and job.result_module is None
    assert not Module.objects.filter(name="worker-trained").exists()
