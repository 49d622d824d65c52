"""The API answers as its OpenAPI schema (/api/v1/schema/) says: statuses, bodies, content types.

Schemathesis generates requests for every operation from the schema (seeded,
a few per operation) and sends them, with an API token, to the hub's WSGI
application; each answer must have a documented status, a documented content
type and a body that matches the documented schema.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hubsite.wsgi import application

pytestmark = pytest.mark.slow
SCHEMA_PATH = "/api/v1/schema/?format=json"
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(autouse=True)
def connection_kept_between_requests():
    """As Django's test client does: the test's transaction holds the connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def token(user) -> str:
    return Token.objects.create(user=user).key


# Loaded on import, without the database (drf-spectacular describes the views and
# runs none): schemathesis' loading from a fixture does not run under pytest 9.
schema = schemathesis.openapi.from_wsgi(SCHEMA_PATH, application)


@schema.parametrize()
@settings(
    max_examples=8,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case, module, token):
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CONFORMANCE)


# --- Answers about things that exist -------------------------------------------------
# Generated paths rarely name a module or job that exists; these do, so the
# answers that succeed (and the files, with their content types) are checked too.

EXAMPLES = [{"input": "one plus two", "target": "three"}]


@pytest.fixture
def things(user, base_model, module, make_adapter):
    """A second module and one job of each kind, for the paths below to name."""
    from composition.models import CompositionJob, GenerationRequest, TrainingJob
    from modules.models import ImportJob
    from modules.services import module_import_folder

    other = module_import_folder(
        owner=user, name="other-adapter", folder=make_adapter(seed=1), base_model=base_model
    )
    return {
        "job_id": CompositionJob.objects.create(
            owner=user, base_model=base_model, name="queued", examples=EXAMPLES
        ).pk,
        "training_id": TrainingJob.objects.create(
            owner=user, base_model=base_model, name="queued", examples=EXAMPLES
        ).pk,
        "import_id": ImportJob.objects.create(
            owner=user, endpoint="https://huggingface.co", repo_ids=["lorahub/x"]
        ).pk,
        "request_id": GenerationRequest.objects.create(
            owner=user, module=module, inputs=["hello"]
        ).pk,
        "other": other.name,
    }


def calls(things) -> list[tuple[str, str, dict, dict]]:
    """(method, path, path parameters, request) of calls that name what exists."""
    module = {"owner": "ada", "name": "tiny-adapter"}
    composition = {
        "base_model": "acme/tiny-llama",
        "modules": ["ada/tiny-adapter", f"ada/{things['other']}"],
        "examples": EXAMPLES,
    }
    training = {"base_model": "acme/tiny-llama", "name": "trained", "examples": EXAMPLES}
    return [
        ("GET", "/api/v1/base-models/", {}, {}),
        ("GET", "/api/v1/base-models/{identifier}/", {"identifier": "acme/tiny-llama"}, {}),
        ("GET", "/api/v1/modules/", {}, {"query": {"search": "tiny", "page_size": 1}}),
        ("GET", "/api/v1/modules/", {}, {"query": {"page": 99}}),
        ("GET", "/api/v1/tags/", {}, {}),
        ("GET", "/api/v1/modules/{owner}/{name}/", module, {}),
        ("GET", "/api/v1/modules/{owner}/{name}/download/", module, {}),
        *[
            ("GET", "/api/v1/modules/{owner}/{name}/files/{filename}", module | {"filename": f}, {})
            for f in ("README.md", "adapter_config.json", "adapter_model.safetensors", "absent")
        ],
        ("POST", "/api/v1/modules/{owner}/{name}/like/", module, {}),
        ("DELETE", "/api/v1/modules/{owner}/{name}/like/", module, {}),
        ("PATCH", "/api/v1/modules/{owner}/{name}/", module, {"body": {"license": "mit"}}),
        ("GET", "/api/v1/compositions/", {}, {}),
        ("POST", "/api/v1/compositions/", {}, {"body": composition}),
        ("GET", "/api/v1/compositions/{job_id}/", {"job_id": things["job_id"]}, {}),
        ("GET", "/api/v1/compositions/{job_id}/adapter/", {"job_id": things["job_id"]}, {}),
        ("POST", "/api/v1/compositions/{job_id}/publish/", {"job_id": things["job_id"]}, {}),
        ("POST", "/api/v1/compositions/{job_id}/cancel/", {"job_id": things["job_id"]}, {}),
        ("POST", "/api/v1/compositions/{job_id}/cancel/", {"job_id": things["job_id"]}, {}),
        ("GET", "/api/v1/trainings/", {}, {}),
        ("POST", "/api/v1/trainings/", {}, {"body": training}),
        ("GET", "/api/v1/trainings/{job_id}/", {"job_id": things["training_id"]}, {}),
        ("POST", "/api/v1/trainings/{job_id}/cancel/", {"job_id": things["training_id"]}, {}),
        ("GET", "/api/v1/imports/", {}, {}),
        ("POST", "/api/v1/imports/", {}, {"body": {"repo_ids": ["lorahub/y"]}}),
        ("GET", "/api/v1/imports/{job_id}/", {"job_id": things["import_id"]}, {}),
        ("POST", "/api/v1/imports/{job_id}/cancel/", {"job_id": things["import_id"]}, {}),
        (
            "POST",
            "/api/v1/playground/",
            {},
            {"body": {"module": "ada/tiny-adapter", "inputs": ["a"]}},
        ),
        ("GET", "/api/v1/playground/{request_id}/", {"request_id": things["request_id"]}, {}),
        ("POST", "/api/v1/auth/token/", {}, {"body": {"username": "ada", "password": "wrong"}}),
        (
            "POST",
            "/api/v1/auth/token/",
            {},
            {"body": {"username": "ada", "password": "s3cret-pass-phrase"}},
        ),
        ("DELETE", "/api/v1/modules/{owner}/{name}/", module, {}),
    ]


def test_answers_about_existing_things_are_as_documented(things, token, settings):
    settings.HUB_MAX_ACTIVE_PLAYGROUND = 1  # the second request is refused: a 429
    answered = []
    for method, path, path_parameters, request in calls(things):
        if "body" in request:
            request = {"media_type": "application/json", **request}
        case = schema[path][method].Case(path_parameters=path_parameters, **request)
        response = case.call_and_validate(
            headers={"Authorization": f"Token {token}"}, checks=CONFORMANCE
        )
        answered.append(response.status_code)

    # The calls reach what they were meant to: successes, and the errors on purpose.
    assert answered == [
        200, 200, 200, 404, 200, 200, 200, 200, 200, 200, 404, 200, 200, 200,
        200, 201, 200, 404, 409, 200, 409, 200, 201, 200, 200, 200, 201, 200, 200,
        429, 200, 400, 200, 204,
    ]  # fmt: skip
