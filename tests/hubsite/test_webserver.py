"""The embedded web server, started as ``manage.py runhub`` starts it."""

import http.client
import json
import urllib.request

import pytest
from rest_framework.authtoken.models import Token

from tests.hub_server import running_hub
from tests.slow_clients import SlowClients

SLOW_CONNECTIONS = 64
# Generous for a loaded machine; a server whose threads are all held by slow
# clients does not answer at all while they trickle.
ANSWER_TIMEOUT = 10


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=ANSWER_TIMEOUT) as response:
        return response.status, response.read()


@pytest.mark.slow
def test_hub_keeps_answering_while_slow_clients_trickle_headers_and_uploads(
    transactional_db, user, tmp_path
):
    token = Token.objects.create(user=user).key
    with running_hub(media_root=tmp_path / "media", log=tmp_path / "hub.log") as url:
        port = int(url.rsplit(":", 1)[1])
        with SlowClients(port, SLOW_CONNECTIONS, token=token, interval=1.0) as slow:
            slow.wait_for_ticks(2)  # every connection is open and mid-request

            health_status, health = get(url + "/healthz")
            list_status, listing = get(url + "/api/v1/modules/")

            assert slow.dropped == 0, "the server cut slow clients off"
        assert health_status == 200 and json.loads(health)["status"] == "ok"
        assert list_status == 200 and "results" in json.loads(listing)
        # Once they are gone the server is still well.
        assert get(url + "/healthz")[0] == 200


@pytest.mark.slow
def test_head_answers_have_headers_only_and_keep_the_connection_usable(transactional_db, tmp_path):
    with running_hub(media_root=tmp_path / "media", log=tmp_path / "hub.log") as url:
        host, port = url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=ANSWER_TIMEOUT)
        try:
            # An error answer, whose GET has a JSON body.
            connection.request("HEAD", "/ada/nothing/resolve/main/adapter_config.json")
            missing = connection.getresponse()
            missing.read()
            # The next answer on the same connection must start where HEAD's ended.
            connection.request("GET", "/healthz")
            health = connection.getresponse()
            health_body = health.read()
        finally:
            connection.close()

    assert missing.status == 401 and missing.getheader("X-Error-Code") == "RepoNotFound"
    assert int(missing.getheader("Content-Length")) > 0
    assert health.status == 200 and json.loads(health_body)["status"] == "ok"


def refused_length(url: str, path: str, length: int) -> tuple[int, str, bytes]:
    """Announce a body of ``length`` bytes and send none: the server answers from the headers."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=ANSWER_TIMEOUT)
    try:
        connection.putrequest("POST", path)
        connection.putheader("Content-Type", "multipart/form-data; boundary=x")
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


@pytest.mark.slow
def test_bodies_over_the_servers_limit_are_refused_in_json_for_the_api_and_in_words_elsewhere(
    transactional_db, tmp_path
):
    env = {"HUB_MAX_UPLOAD_BYTES": "1000"}
    too_long = 1000 + 1024 * 1024 + 1  # the limit plus what multipart adds around files
    with running_hub(media_root=tmp_path / "media", log=tmp_path / "hub.log", env=env) as url:
        api = refused_length(url, "/api/v1/modules/", too_long)
        page = refused_length(url, "/modules/new/", too_long)

    expected = "The upload is larger than the limit of 1000 bytes (1000 bytes)."
    assert api[:2] == (413, "application/json")
    assert json.loads(api[2]) == {"detail": expected}
    assert page[:2] == (413, "text/html; charset=utf-8")
    assert expected.encode() in page[2]
