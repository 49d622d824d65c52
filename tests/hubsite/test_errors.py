"""Requests Django refuses while reading them are answered with the reason:
JSON under /api/, a page elsewhere, 413 for what is too large."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token

from modules.models import Module


@pytest.fixture
def token_header(user) -> dict:
    return {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=user).key}"}


def small_files(count: int) -> list:
    return [SimpleUploadedFile(f"file-{i}.txt", b"x") for i in range(count)]


def test_api_upload_with_too_many_files_is_a_json_400_that_says_so(client, token_header, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3

    response = client.post(
        "/api/v1/modules/", {"name": "many", "files": small_files(4)}, **token_header
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "detail": "The request sends more than 3 files, the most one request may carry."
    }
    assert Module.objects.count() == 0


def test_api_request_with_too_many_fields_is_a_json_400(client, token_header, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    fields = {f"field{i}": "x" for i in range(10)}

    response = client.post("/api/v1/modules/", {"name": "many", **fields}, **token_header)

    assert response.status_code == 400
    assert "more than 5 fields" in response.json()["detail"]


def test_api_form_fields_over_the_memory_limit_are_a_json_413(client, token_header, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = client.post(
        "/api/v1/modules/",
        {"name": "long", "description": "x" * 2000, "files": small_files(1)},
        **token_header,
    )

    assert response.status_code == 413
    assert response.json()["detail"].startswith(
        "The request's fields other than files are larger than 1000 bytes"
    )


def test_hub_protocol_request_with_too_many_fields_is_a_json_400(client, module, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 2

    response = client.post(
        "/api/models/ada/tiny-adapter/paths-info/main",
        {"paths": ["a", "b", "c", "d"]},
    )

    # The Hub's error shape, which huggingface_hub shows in its exception.
    assert response.status_code == 400
    assert "more than 2 fields" in response.json()["error"]
    assert response["X-Error-Message"] == response.json()["error"]


def test_unknown_api_path_is_a_json_404(client, db):
    response = client.get("/api/v1/no-such-thing/")

    assert response.status_code == 404
    assert response.json() == {"detail": "This hub does not serve /api/v1/no-such-thing/"}


def test_form_with_too_many_files_is_a_400_page_that_says_so(client, user, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    client.force_login(user)

    response = client.post("/compose/", {"examples_file": small_files(4)})

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert b"more than 3 files, the most one request may carry" in response.content
    assert b"<h1>Bad request</h1>" in response.content


def test_form_file_over_the_upload_limit_is_a_413_page_not_a_server_error(client, user, settings):
    settings.HUB_MAX_UPLOAD_BYTES = 1000
    client.force_login(user)
    examples = io.BytesIO(b'{"input": "a", "target": "b"}\n' * 100)
    examples.name = "examples.jsonl"

    response = client.post("/train/", {"name": "big", "examples_file": examples})

    assert response.status_code == 413
    assert b"larger than the limit of 1000 bytes" in response.content


@pytest.mark.django_db
def test_a_server_error_page_has_the_sites_header_search_and_a_way_home(rf, user):
    from django.contrib.auth.models import AnonymousUser

    from hubsite.errors import server_error

    request = rf.get("/ada/some-module/")
    request.user = AnonymousUser()
    response = server_error(request)

    page = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong" in page
    assert 'class="skip-link"' in page and 'role="search"' in page
    assert '<a href="/">Go to the home page</a>' in page


def test_a_server_error_page_that_cannot_render_falls_back_to_djangos(rf, monkeypatch):
    from hubsite import errors

    def broken(*args, **kwargs):
        raise RuntimeError("the database is down")

    monkeypatch.setattr(errors, "render", broken)
    response = errors.server_error(rf.get("/ada/some-module/"))
    assert response.status_code == 500
