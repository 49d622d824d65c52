"""Playground: a few inputs through one module, run by a worker."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from composition import services
from composition.models import GenerationRequest, JobStatus

pytestmark = pytest.mark.django_db


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

    services.playground_run(request_id=request.pk, worker_host="test@host")

    body = api.get(response.json()["url"]).json()
    assert body["status"] == "succeeded"
    assert len(body["outputs"]) == 2 and all(isinstance(o, str) for o in body["outputs"])


def test_bad_inputs_are_field_errors(api, tiny_modules):
    response = api.post(
        "/api/v1/playground/", {"module": "lorahub/skill-0", "inputs": [" "] * 3}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["inputs"] == ["type at least one input"]


def test_a_request_no_worker_takes_fails_with_a_clear_message(api, tiny_modules):
    response = api.post(
        "/api/v1/playground/", {"module": "lorahub/skill-1", "inputs": ["hello"]}, format="json"
    )
    GenerationRequest.objects.update(created_at=timezone.now() - timedelta(minutes=2))

    body = api.get(response.json()["url"]).json()

    assert body["status"] == JobStatus.FAILED
    assert "no worker took the request within 60 s" in body["error_message"]


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
