"""Limits on log-in, token and sign-up attempts, per client address and per account name."""

import hashlib
import itertools
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
from django.contrib.auth import get_user_model

from tests.hub_server import running_hub

PASSWORD = "s3cret-pass-phrase"
LIMIT = 3


def login_form(username, password="wrong"):
    return {"username": username, "password": password}


def signup_form(username, password="a-long-passphrase-9"):
    # Mismatched passwords: the form is refused, but the attempt counts.
    return {"username": username, "password1": password, "password2": password + "x"}


# Each entry point, what it answers to an ordinary attempt, and the kind of limit.
ENTRY_POINTS = {
    "login form": ("/accounts/login/", login_form, 400, "LOGIN"),
    "admin login form": ("/admin/login/", login_form, 400, "LOGIN"),
    "api token": ("/api/v1/auth/token/", login_form, 400, "LOGIN"),
    "signup form": ("/accounts/signup/", signup_form, 400, "SIGNUP"),
}


@pytest.fixture
def limits(settings):
    """LIMIT attempts per hour for each kind of limit; tests lower or raise one as they need."""
    for name in ("LOGIN", "SIGNUP"):
        for per in ("IP", "ACCOUNT"):
            setattr(settings, f"HUB_{name}_RATE_PER_{per}", (LIMIT, 3600))
    return settings


def relax(settings, kind: str, per: str) -> None:
    setattr(settings, f"HUB_{kind}_RATE_PER_{per}", (1000, 3600))


def assert_throttled(response) -> None:
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 3600


@pytest.mark.django_db
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_attempts_beyond_the_limit_from_one_address_get_a_429(client, user, limits, entry):
    path, form, answer, kind = ENTRY_POINTS[entry]
    relax(limits, kind, "ACCOUNT")
    for attempt in range(LIMIT):
        response = client.post(path, form(f"name-{attempt}"), REMOTE_ADDR="203.0.113.7")
        assert response.status_code == answer

    refused = client.post(path, form("name-x"), REMOTE_ADDR="203.0.113.7")

    assert_throttled(refused)
    if "form" in entry:
        assert b"Too many attempts" in refused.content
    else:
        assert "throttled" in refused.json()["detail"]
    # Another address is not held back.
    assert client.post(path, form("name-y"), REMOTE_ADDR="203.0.113.8").status_code == answer


@pytest.mark.django_db
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_attempts_beyond_the_limit_for_one_account_get_a_429_from_any_address(
    client, user, limits, entry
):
    path, form, answer, kind = ENTRY_POINTS[entry]
    relax(limits, kind, "IP")
    for attempt in range(LIMIT):
        response = client.post(path, form("grace"), REMOTE_ADDR=f"198.51.100.{attempt}")
        assert response.status_code == answer

    # Another address, and the name written otherwise, are the same account.
    assert_throttled(client.post(path, form("Grace "), REMOTE_ADDR="198.51.100.99"))
    assert client.post(path, form("linus"), REMOTE_ADDR="198.51.100.99").status_code == answer


@pytest.mark.django_db
def test_beyond_the_limit_even_the_right_password_does_not_log_in(client, user, limits):
    for _ in range(LIMIT):
        client.post("/accounts/login/", login_form("ada"))

    response = client.post("/accounts/login/", login_form("ada", PASSWORD))

    assert_throttled(response)
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_the_form_and_the_token_endpoint_share_the_count(client, user, limits):
    for _ in range(LIMIT - 1):
        client.post("/accounts/login/", login_form("ada"))
    client.post("/api/v1/auth/token/", login_form("ada"))

    assert_throttled(client.post("/api/v1/auth/token/", login_form("ada", PASSWORD)))


@pytest.mark.django_db
def test_a_forged_forwarded_for_header_is_not_a_new_address(client, user, limits):
    relax(limits, "LOGIN", "ACCOUNT")
    for attempt in range(LIMIT):
        client.post(
            "/accounts/login/", login_form(f"n{attempt}"), HTTP_X_FORWARDED_FOR=f"10.9.9.{attempt}"
        )

    refused = client.post("/accounts/login/", login_form("n"), HTTP_X_FORWARDED_FOR="10.9.9.77")

    assert_throttled(refused)


@pytest.mark.django_db
def test_behind_a_proxy_the_address_is_the_one_it_forwards(client, user, limits):
    limits.REST_FRAMEWORK = {**limits.REST_FRAMEWORK, "NUM_PROXIES": 1}
    relax(limits, "LOGIN", "ACCOUNT")
    for attempt in range(LIMIT):
        # Every request comes from the proxy (the test client's 127.0.0.1).
        client.post("/accounts/login/", login_form(f"n{attempt}"), HTTP_X_FORWARDED_FOR="192.0.2.1")

    assert_throttled(
        client.post("/accounts/login/", login_form("n"), HTTP_X_FORWARDED_FOR="6.6.6.6, 192.0.2.1")
    )
    ok = client.post("/accounts/login/", login_form("n"), HTTP_X_FORWARDED_FOR="192.0.2.2")
    assert ok.status_code == 400  # refused for its wrong password, not for the limit


@pytest.mark.django_db
def test_attempts_for_many_other_names_do_not_flush_a_count(client, user, limits):
    """A full cache makes room by dropping entries, the lowest keys first: the victim here
    has the lowest. Attempts for a few hundred other names must not drop its count."""
    relax(limits, "LOGIN", "IP")
    victim = next(
        name
        for name in (f"victim-{i}" for i in itertools.count())
        if hashlib.sha256(name.encode()).hexdigest().startswith("00")
    )
    for _ in range(LIMIT):
        client.post("/api/v1/auth/token/", login_form(victim))
    for attempt in range(400):
        client.post("/api/v1/auth/token/", login_form(f"other-{attempt}"))

    assert_throttled(client.post("/api/v1/auth/token/", login_form(victim)))


def post_to_hub(url: str, data: dict) -> tuple[int, dict, str]:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(data).encode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_counts_are_shared_between_processes(client, settings, tmp_path):
    """gunicorn and this test process count the attempts on one account together."""
    get_user_model().objects.create_user(username="ada", password=PASSWORD)
    settings.HUB_LOGIN_RATE_PER_ACCOUNT = (LIMIT, 3600)
    env = {"HUB_LOGIN_RATE_PER_ACCOUNT": f"{LIMIT}/h", "HUB_LOGIN_RATE_PER_IP": "1000/h"}

    with running_hub(media_root=tmp_path / "media", log=tmp_path / "hub.log", env=env) as url:
        token_url = url + "/api/v1/auth/token/"
        for _ in range(LIMIT - 1):
            status, _, body = post_to_hub(token_url, login_form("ada"))
            assert status == 400, body
        # The last allowed attempt, in another process: the log-in form here.
        assert client.post("/accounts/login/", login_form("ada")).status_code == 400

        status, headers, body = post_to_hub(token_url, login_form("ada", PASSWORD))

    assert status == 429, body
    assert 0 < int(headers["Retry-After"]) <= 3600
    assert "throttled" in json.loads(body)["detail"]
    # And the other way round: this process refuses too.
    assert_throttled(client.post("/accounts/login/", login_form("ada", PASSWORD)))
