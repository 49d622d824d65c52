"""API → real broker → a separate worker process → engine on a tiny model → a registered module."""

import time

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from composition.models import JobStatus, TrainingJob
from hubsite.tasks import sweep_jobs
from modules.models import Module
from tests.composition.training.conftest import ROWS
from tests.workers import broker_connection, broker_reset, kill_worker, running_worker

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


def test_a_training_whose_worker_was_killed_is_requeued_and_trained_again(api, tmp_path, settings):
    settings.HUB_JOB_STALE_SECONDS = 3
    broker_reset(settings.CELERY_BROKER_URL, settings.TEST_BROKER_DIR)
    # Enough steps to be caught running, few enough for the second attempt to finish.
    job = submit(api, steps=1500, batch_size=1)
    options = {
        "broker_url": settings.CELERY_BROKER_URL,
        "broker_dir": settings.TEST_BROKER_DIR,
        "queues": "gpu",
        "env": {"OMP_NUM_THREADS": "1"},
    }
    killed_log, fresh_log = tmp_path / "killed.log", tmp_path / "fresh.log"
    with running_worker(log=killed_log, hostname="killed@%h", **options) as first:
        job = wait_until(job, lambda j: j.current_step >= 1, timeout=300, log=killed_log)
        assert not job.is_final, "the training ended before its worker could be killed"
        kill_worker(first)
    # Redis hands the unacknowledged task on after this; the filesystem broker drops it.
    fresh_env = {**options["env"], "CELERY_VISIBILITY_TIMEOUT": "3"}
    with running_worker(log=fresh_log, hostname="fresh@%h", **{**options, "env": fresh_env}):

        def trained_again(j: TrainingJob) -> bool:
            if j.status == JobStatus.RUNNING and j.worker_host.startswith("killed@"):
                sweep_jobs()  # beat's sweep: re-queues the silent job once
            return j.is_final

        job = wait_until(job, trained_again, timeout=600, log=fresh_log)
    broker_reset(settings.CELERY_BROKER_URL, settings.TEST_BROKER_DIR)

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert job.attempt == 2 and job.worker_host.startswith("fresh@")
    # Started over: one loss per step of the second attempt, not the first's on top.
    assert job.current_step == 1500 and len(job.loss_history) == 1500
    assert [e["event"] for e in job.events][:3] == ["queued", "started", "requeued"]
    assert Module.objects.filter(name="worker-trained").count() == 1
