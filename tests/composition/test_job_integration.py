"""The whole path: API → real broker → a separate worker process → engine on SmolLM2 → results."""

import time

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from composition.engine.synthetic import build_loras
from composition.models import CompositionJob, JobStatus
from modules.models import ModuleSource
from modules.services import EMBEDDED_BASE_MODEL, embedded_model_dir, module_create
from tests.workers import broker_connection, running_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SHOTS = [
    {"input": "Is the following sentence plausible? Kyle Tucker hit a home run.", "target": "yes"},
    {"input": "Is the following sentence plausible? Tom Brady scored a hat trick.", "target": "no"},
    {"input": "Is the following sentence plausible? Lebron James dunked.", "target": "yes"},
]
HELDOUT = [
    {"input": "Is the following sentence plausible? Messi threw a touchdown.", "target": "no"}
]


@pytest.fixture(scope="module")
def smollm2_adapter_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("smollm2-adapters")
    return build_loras(
        embedded_model_dir(), [root / "a", root / "b"], seeds=[1, 2], task_type="CAUSAL_LM",
        targets=("q_proj", "v_proj"), rank=8, alpha=16, base_id=EMBEDDED_BASE_MODEL, std=0.01,
    )  # fmt: skip


@pytest.fixture
def api_and_modules(smollm2_base_model, smollm2_adapter_dirs, user):
    for name, folder in zip(("alpha", "beta"), smollm2_adapter_dirs, strict=True):
        module_create(
            owner=user,
            name=name,
            files={f: folder / f for f in ("adapter_config.json", "adapter_model.safetensors")},
            base_model=smollm2_base_model,
        )
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


def wait_until(job: CompositionJob, done, timeout: float, log) -> CompositionJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if done(job):
            return job
        time.sleep(0.5)
    pytest.fail(
        f"job stuck at {job.status} step {job.current_step}; worker log:\n{log.read_text()[-4000:]}"
    )


def submit(api, **changes) -> CompositionJob:
    payload = {
        "base_model": EMBEDDED_BASE_MODEL, "modules": ["ada/alpha", "ada/beta"],
        "examples": SHOTS, "heldout": HELDOUT, "steps": 3, "max_new_tokens": 4, **changes,
    }  # fmt: skip
    response = api.post("/api/v1/compositions/", payload, format="json")
    assert response.status_code == 201, response.json()
    return CompositionJob.objects.get(pk=response.json()["id"])


def test_api_to_worker_to_registry(api_and_modules, worker):
    job = submit(api_and_modules, name="plausible")

    job = wait_until(job, lambda j: j.is_final, timeout=300, log=worker)

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert job.worker_host.startswith("test@")
    assert len(job.loss_history) == 3 and job.warm_start is False
    module = job.result_module
    assert module.full_name == "ada/plausible" and not module.is_public
    assert {s.source.name for s in ModuleSource.objects.filter(composed=module)} == {
        "alpha",
        "beta",
    }
    body = api_and_modules.get(f"/api/v1/compositions/{job.pk}/").json()
    assert body["predictions"][0]["target"] == "no"
    assert api_and_modules.get(f"/api/v1/compositions/{job.pk}/adapter/").status_code == 200


def test_cancel_while_running(api_and_modules, worker):
    job = submit(api_and_modules, steps=500, heldout=[])
    job = wait_until(job, lambda j: j.current_step >= 1, timeout=300, log=worker)

    api_and_modules.post(f"/api/v1/compositions/{job.pk}/cancel/")

    job = wait_until(job, lambda j: j.is_final, timeout=120, log=worker)
    assert job.status == JobStatus.CANCELLED
    assert job.current_step < 500 and job.result_module is None
