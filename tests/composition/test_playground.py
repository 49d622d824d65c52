"""Playground: a few inputs through one module, run by a worker."""

import json
import shutil
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from composition import playground
from composition.models import GenerationRequest, JobStatus
from hubsite import job_runs
from tests.workers import broker_reset, kill_worker, running_worker

pytestmark = pytest.mark.django_db
NODE = shutil.which("node")
PLAYGROUND_JS = Path(settings.BASE_DIR) / "static" / "js" / "playground.js"
# Runs the page's own status code under Node: what the user reads for an answer.
STATUS_SCRIPT = """
import { statusText, errorText } from "%s";
const [kind, value, status] = JSON.parse(process.argv[1]);
if (kind === "job") {
  console.log(statusText(value, 61));
} else {
  const type = kind === "json" ? "application/json" : "text/html";
  const body = kind === "json" ? JSON.stringify(value) : value;
  const statusText_ = { 429: "Too Many Requests", 502: "Bad Gateway" }[status];
  console.log(await errorText(new Response(body, { status, statusText: statusText_,
                                                 headers: { "Content-Type": type } })));
}
"""


def shown(kind: str, value, status: int = 200) -> str:
    """The playground's status line for a job (``kind`` "job") or an error answer."""
    result = subprocess.run(
        [NODE, "--input-type=module", "-e", STATUS_SCRIPT % PLAYGROUND_JS.as_uri(),
         json.dumps([kind, value, status])],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return result.stdout.strip()


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_request_is_queued_and_the_worker_fills_the_outputs(api, tiny_modules):
    response = api.post(
        "/api/v1/playground/",
        {
            "module": "lorahub/skill-0",
            "inputs": ["one plus two", "which is red"],
            "max_new_tokens": 3,
        },
        format="json",
    )
    assert response.status_code == 201 and response.json()["status"] == "queued"
    request = GenerationRequest.objects.get()

    playground.playground_run(job_id=request.pk, attempt=1, worker_host="test@host")

    body = api.get(response.json()["url"]).json()
    assert body["status"] == "succeeded"
    assert len(body["outputs"]) == 2 and all(isinstance(o, str) for o in body["outputs"])


def test_bad_inputs_are_field_errors(api, tiny_modules):
    response = api.post(
        "/api/v1/playground/", {"module": "lorahub/skill-0", "inputs": [" "] * 3}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["inputs"] == ["type at least one input"]


def test_a_request_no_worker_takes_is_failed_by_the_sweep_not_by_a_poll(api, tiny_modules):
    response = api.post(
        "/api/v1/playground/", {"module": "lorahub/skill-1", "inputs": ["hello"]}, format="json"
    )
    GenerationRequest.objects.update(created_at=timezone.now() - timedelta(minutes=2))
    assert api.get(response.json()["url"]).json()["status"] == JobStatus.QUEUED

    assert job_runs.sweep()["GenerationRequest"] == (0, 1)

    body = api.get(response.json()["url"]).json()
    assert body["status"] == JobStatus.FAILED
    assert body["error_message"] == (
        "no worker took it within 60 s: the workers are busy or none is running"
    )
    assert [e["event"] for e in body["events"]] == ["queued", "expired"]


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_the_page_says_in_words_that_no_worker_took_the_request(api, tiny_modules):
    response = api.post(
        "/api/v1/playground/", {"module": "lorahub/skill-1", "inputs": ["hello"]}, format="json"
    )
    GenerationRequest.objects.update(created_at=timezone.now() - timedelta(minutes=2))
    job_runs.sweep()

    body = api.get(response.json()["url"]).json()

    assert shown("job", body) == (
        "Failed: no worker took it within 60 s: the workers are busy or none is running"
    )


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_the_page_gives_the_reason_of_a_refusal_or_the_status_of_a_page_that_is_not_json(
    api, tiny_modules, settings
):
    settings.HUB_MAX_ACTIVE_PLAYGROUND = 0
    refused = api.post(
        "/api/v1/playground/", {"module": "lorahub/skill-1", "inputs": ["hello"]}, format="json"
    )
    invalid = api.post(
        "/api/v1/playground/", {"module": "lorahub/skill-1", "inputs": [" "]}, format="json"
    )

    assert shown("json", refused.json(), 429) == refused.json()["detail"]
    assert shown("json", invalid.json(), 400) == "type at least one input"
    assert shown("html", "<html><h1>502 Bad Gateway</h1></html>", 502) == (
        "The hub answered 502 Bad Gateway."
    )


def test_a_user_waiting_for_enough_requests_gets_a_429_with_retry_after(
    api, tiny_modules, settings, other_user
):
    settings.HUB_MAX_ACTIVE_PLAYGROUND = 2
    ask = {"module": "lorahub/skill-0", "inputs": ["hello"]}
    statuses = [api.post("/api/v1/playground/", ask, format="json").status_code for _ in range(3)]

    refused = api.post("/api/v1/playground/", ask, format="json")

    assert statuses == [201, 201, 429]
    assert refused.status_code == 429 and refused["Retry-After"] == "10"
    assert refused.json()["detail"] == (
        "you already have 2 queued or running playground requests (at most 2); "
        "wait for one to finish or cancel one"
    )
    # Others are not held back, and a finished request makes room again.
    other = APIClient()
    other.force_authenticate(other_user)
    assert other.post("/api/v1/playground/", ask, format="json").status_code == 201
    GenerationRequest.objects.filter(owner__username="ada").update(status=JobStatus.SUCCEEDED)
    assert api.post("/api/v1/playground/", ask, format="json").status_code == 201


def test_others_cannot_read_a_request(api, tiny_modules, django_user_model):
    url = api.post(
        "/api/v1/playground/", {"module": "lorahub/skill-1", "inputs": ["hi"]}, format="json"
    ).json()["url"]
    other = APIClient()
    other.force_authenticate(django_user_model.objects.create_user("eve", password="x-long-pass-2"))

    assert other.get(url).status_code == 404


def test_the_module_page_offers_the_playground(client, user, tiny_modules):
    client.force_login(user)

    page = client.get(tiny_modules[0].get_absolute_url()).content.decode()

    assert 'class="playground"' in page and 'data-module="lorahub/skill-0"' in page


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_request_whose_worker_was_killed_is_failed_by_the_sweep(
    user, tiny_modules, settings, tmp_path
):
    settings.HUB_JOB_STALE_SECONDS = 3
    broker_reset(settings.CELERY_BROKER_URL, settings.TEST_BROKER_DIR)
    request = playground.playground_request(
        user=user, module=tiny_modules[0], inputs=["one plus two"] * 8, max_new_tokens=256
    )
    with running_worker(
        broker_url=settings.CELERY_BROKER_URL,
        broker_dir=settings.TEST_BROKER_DIR,
        queues="gpu",
        log=tmp_path / "worker.log",
    ) as worker:
        request = wait_for(request, lambda r: r.status != JobStatus.QUEUED)
        assert request.status == JobStatus.RUNNING, "the generation ended before the kill"
        kill_worker(worker)

    def swept(r: GenerationRequest) -> bool:
        job_runs.sweep()
        return r.is_final

    request = wait_for(request, swept)
    broker_reset(settings.CELERY_BROKER_URL, settings.TEST_BROKER_DIR)
    assert request.status == JobStatus.FAILED and request.outputs == []
    assert request.error_message.startswith(f"the worker ({request.worker_host}) stopped")
    assert [e["event"] for e in request.events] == ["queued", "started", "failed"]


def wait_for(request: GenerationRequest, done, timeout: float = 120) -> GenerationRequest:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        request.refresh_from_db()
        if done(request):
            return request
        time.sleep(0.05)
    pytest.fail(f"request still {request.status}: {request.error_message!r}")
