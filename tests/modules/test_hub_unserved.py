"""What the hub does not serve on Hub paths is answered as JSON with the reason.

huggingface_hub shows the ``X-Error-Message`` header and the body's ``error``
in the exception it raises; a page or a redirect would leave it with nothing
to show (or follow it somewhere it cannot read).
"""

import pytest

from tests.hub_server import running_hub
from tests.modules.hub_client import run_hub_client


def assert_hub_error(response, status: int, *words: str) -> str:
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    message = response.json()["error"]
    assert response["X-Error-Message"] == message
    for word in words:
        assert word in message
    return message


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/api/spaces",
        "/api/models/ada/tiny-adapter/refs",
        "/api/models/ada/tiny-adapter/discussions",
        "/api/datasets/ada/data",
        "/datasets/ada/data/resolve/main/train.csv",
        "/ada/tiny-adapter.git/info/refs",
        "/ada/tiny-adapter/info/refs",
    ],
)
def test_unserved_hub_paths_answer_json_with_the_reason(client, path):
    response = client.get(path, {"service": "git-upload-pack"} if "info" in path else {})

    assert_hub_error(response, 404, "does not serve", path)
    assert response["X-Error-Code"] == "NotServed"


@pytest.mark.django_db
def test_hub_paths_are_never_redirected_to_add_a_slash(client):
    # /api/models/ada/x/ would be a module page's address shape; no 301 to it.
    response = client.get("/api/models/ada/tiny-adapter/tree/main/x", follow=False)
    assert response.status_code != 301
    assert "json" in response["Content-Type"]

    rest = client.get("/api/v1/modules")
    assert rest.status_code == 404 and rest["Content-Type"] == "application/json"
    assert "did you mean /api/v1/modules/?" in rest.json()["detail"]
    assert rest["X-Error-Message"] == rest.json()["detail"]


@pytest.mark.django_db
def test_a_rest_api_object_not_found_keeps_its_own_answer(client):
    # Routes, but no such objects: the API says which, and the header repeats it.
    for path in ("/api/v1/base-models/no/thing/", "/api/v1/modules/no/thing/"):
        response = client.get(path)
        assert response.status_code == 404 and "does not serve" not in response.json()["detail"]
        assert response["X-Error-Message"] == response.json()["detail"]


@pytest.mark.django_db
def test_a_method_a_hub_route_does_not_take_is_json(client):
    response = client.post("/api/models/ada/tiny-adapter")

    message = assert_hub_error(response, 405, "POST", "/api/models/ada/tiny-adapter")
    assert "GET" in response["Allow"] and "GET" in message


@pytest.mark.django_db
def test_an_unserved_post_is_refused_as_json_not_as_a_csrf_page(client):
    client.handler.enforce_csrf_checks = True

    response = client.post("/api/spaces/ada/demo/duplicate", {"x": 1})

    assert response.status_code in (403, 404)
    assert response.json()["error"] == response["X-Error-Message"]


@pytest.mark.django_db
def test_a_crash_on_a_hub_path_is_json_not_the_error_page(monkeypatch):
    from django.test import Client

    from modules.hub_protocol import lists

    def crash(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(lists, "hub_model_search", crash)

    response = Client(raise_request_exception=False).get("/api/models")

    assert response.status_code == 500
    assert response.json() == {"error": "A server error occurred."}
    assert response["X-Error-Message"] == "A server error occurred."


@pytest.mark.django_db
def test_module_pages_still_add_their_slash(client, module):
    response = client.get("/ada/tiny-adapter")
    assert response.status_code == 301 and response["Location"] == "/ada/tiny-adapter/"


CLIENT_UNSERVED = """
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

def message_of(call, *args, **kwargs):
    try:
        list(call(*args, **kwargs))
    except HfHubHTTPError as exc:
        return [type(exc).__name__, str(exc), exc.server_message]
    return None

api = HfApi()
result = {
    "spaces": message_of(api.list_spaces),
    "datasets": message_of(api.list_datasets),
}
"""


@pytest.mark.slow
def test_huggingface_hub_shows_the_hubs_reason_for_what_it_does_not_serve(
    transactional_db, isolated_files, tmp_path
):
    with running_hub(media_root=isolated_files, log=tmp_path / "hub.log") as url:
        seen = run_hub_client(CLIENT_UNSERVED, endpoint=url, home=tmp_path / "hf")

    for call, path in (("spaces", "/api/spaces"), ("datasets", "/api/datasets")):
        kind, text, server_message = seen[call]
        assert kind == "HfHubHTTPError"
        assert f"This hub does not serve {path}" in text
        assert server_message == f"This hub does not serve {path}"
