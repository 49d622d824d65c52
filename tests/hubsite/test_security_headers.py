"""HTTPS settings and the Content-Security-Policy: on behind https, harmless over http."""

import http.client
import os
import re
import secrets
import subprocess
import sys
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from composition.models import CompositionCandidate, CompositionJob, JobStatus, TrainingJob
from modules.models import ImportJob
from tests.hub_server import running_hub

HTTPS_ENV = {
    "DEBUG": "false",
    "HUB_PUBLIC_URL": "https://hub.example.org",
    "ALLOWED_HOSTS": "hub.example.org,127.0.0.1",
}
# What a developer's shell may set that would change what these tests see.
CONFIG_VARS = (
    "DEBUG", "HUB_PUBLIC_URL", "ALLOWED_HOSTS", "SECRET_KEY", "DATABASE_URL", "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD",
    "SECURE_PROXY_SSL_HEADER", "HUB_PROXY_COUNT",
)  # fmt: skip


def run_hub_command(tmp_path, *command, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    environment.update(
        DJANGO_SETTINGS_MODULE="hubsite.settings",
        HUB_VAR_DIR=str(tmp_path),
        SECRET_KEY=secrets.token_urlsafe(50),
        **env,
    )
    return subprocess.run(
        [sys.executable, *command],
        cwd=settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
    )


PRINT_SETTINGS = (
    "import django; django.setup(); from django.conf import settings as s; print(repr(("
    "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,"
    " s.SECURE_PROXY_SSL_HEADER, s.REST_FRAMEWORK['NUM_PROXIES'])))"
)


def test_check_deploy_is_clean_behind_https(tmp_path):
    result = run_hub_command(
        tmp_path, "manage.py", "check", "--deploy", "--fail-level", "WARNING", **HTTPS_ENV
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (HTTPS_ENV, (True, 31_536_000, True, True, ("HTTP_X_FORWARDED_PROTO", "https"), 1)),
        ({}, (False, 0, False, False, None, 0)),  # the embedded http://127.0.0.1:8000
        ({**HTTPS_ENV, "DEBUG": "true"}, (False, 0, False, False, None, 0)),
        (
            {**HTTPS_ENV, "SECURE_PROXY_SSL_HEADER": "", "HUB_PROXY_COUNT": "0"},
            (True, 31_536_000, True, True, None, 0),  # TLS ends at the web process itself
        ),
    ],
)
def test_https_settings_follow_the_public_url(tmp_path, env, expected):
    result = run_hub_command(tmp_path, "-c", PRINT_SETTINGS, **env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr(expected)


def csp(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return dict([*part.strip().split(" ", 1), ""][:2] for part in header.split(";"))


@pytest.mark.django_db
def test_the_embedded_default_has_a_csp_and_no_https_headers(client, user):
    response = client.post(
        "/accounts/login/", {"username": "ada", "password": "s3cret-pass-phrase"}
    )

    assert response.status_code == 302  # logged in, over plain HTTP
    assert "Strict-Transport-Security" not in response
    assert not response.cookies["sessionid"]["secure"]
    policy = csp(client.get("/"))
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert "upgrade-insecure-requests" not in policy


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_behind_https_a_real_hub_redirects_and_sends_hsts_csp_and_secure_cookies(
    tmp_path, django_user_model, settings
):
    # The hub's own hasher (the tests' fast one is not in its list).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    django_user_model.objects.create_user(username="ada", password="s3cret-pass-phrase")
    # Pages name their CSS and JS through the manifest collectstatic writes.
    env = {**HTTPS_ENV, "STATIC_ROOT": str(tmp_path / "static")}
    collected = run_hub_command(tmp_path, "manage.py", "collectstatic", "--noinput", **env)
    assert collected.returncode == 0, collected.stderr
    proxied = {"X-Forwarded-Proto": "https", "Host": "127.0.0.1"}
    with running_hub(
        media_root=tmp_path / "media",
        log=tmp_path / "hub.log",
        env={**env, "SECRET_KEY": secrets.token_urlsafe(50)},
        ready_headers=proxied,
    ) as url:
        port = urlsplit(url).port

        def get(path, headers=None, method="GET", body=None):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            response.read()
            connection.close()
            return response

        plain = get("/accounts/login/")
        health = get("/healthz")
        page = get("/accounts/login/", proxied)
        csrf_token = re.search(r"csrftoken=([^;]+)", page.getheader("Set-Cookie"))[1]
        login = get(
            "/accounts/login/",
            {
                **proxied,
                "Cookie": f"csrftoken={csrf_token}",
                "Origin": "https://127.0.0.1",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            method="POST",
            body=f"username=ada&password=s3cret-pass-phrase&csrfmiddlewaretoken={csrf_token}",
        )

    assert plain.status == 301
    assert plain.getheader("Location") == f"https://127.0.0.1:{port}/accounts/login/"
    assert health.status != 301  # container health checks call plain http
    assert page.status == 200
    assert page.getheader("Strict-Transport-Security") == "max-age=31536000; includeSubDomains"
    policy = page.getheader("Content-Security-Policy")
    assert "script-src 'self'" in policy and "upgrade-insecure-requests" in policy
    assert "; secure" in page.getheader("Set-Cookie").lower()
    assert login.status == 302, login.status
    session_cookie = next(
        c for c in login.headers.get_all("Set-Cookie") if c.startswith("sessionid=")
    )
    assert "; secure" in session_cookie.lower()


# --- The policy does not break the hub's own pages ---------------------------------


class InlineCode(HTMLParser):
    """Collects what a policy without 'unsafe-inline' would block in a page."""

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name, value in attributes.items():
            if name.startswith("on") or name == "style":
                self.found.append(f"<{tag} {name}=…>")
            if name in ("href", "src", "action") and (value or "").lower().startswith(
                "javascript:"
            ):
                self.found.append(f"<{tag} {name}={value}>")
        if tag == "style":
            self.found.append("<style>")
        if tag == "script":
            source = attributes.get("src")
            if source is None and attributes.get("type") != "application/json":
                self.found.append("inline <script>")
            if source is not None and not (source.startswith("/") and not source.startswith("//")):
                self.found.append(f"<script src={source}> from elsewhere")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


@pytest.fixture
def pages(user, module, base_model):
    """A page of each kind, seen by ada (a superuser, for the admin's pages)."""
    user.is_staff = user.is_superuser = True
    user.save()
    job = CompositionJob.objects.create(
        owner=user, base_model=base_model, name="mixed", examples=[{"input": "a", "target": "b"}],
        status=JobStatus.SUCCEEDED, current_step=2, steps=2, loss_history=[1.0, 0.5],
        best_loss=0.5, result_module=module, preselect=None,
        predictions=[{"input": "a", "target": "b", "output": "b", "correct": True,
                      "zero_shot_output": "c", "zero_shot_correct": False}],
    )  # fmt: skip
    CompositionCandidate.objects.create(
        job=job, module=module, module_name=module.full_name, position=0, weight=0.5, selected=True
    )
    training = TrainingJob.objects.create(
        owner=user, base_model=base_model, name="t", examples=[{"input": "a", "target": "b"}]
    )
    imported = ImportJob.objects.create(
        owner=user,
        endpoint="https://huggingface.co",
        results=[{"repo_id": "a/b", "status": "imported", "module": "ada/x", "message": "ok"}],
    )
    return [
        "/", "/modules/", "/tags/", "/ada/", "/ada/tiny-adapter/", "/ada/tiny-adapter/edit/",
        "/ada/tiny-adapter/delete/", "/modules/new/", "/compose/", f"/compose/jobs/{job.pk}/",
        "/compose/jobs/", "/train/", f"/train/jobs/{training.pk}/", "/modules/import/",
        f"/modules/import/{imported.pk}/", "/accounts/me/", "/admin/", "/admin/modules/module/",
    ]  # fmt: skip


@pytest.mark.django_db
def test_the_hubs_pages_run_no_inline_script_or_style(client, user, pages):
    anonymous = [client.get(path) for path in ("/accounts/login/", "/accounts/signup/")]
    client.force_login(user)

    for path, response in [
        *zip(("/accounts/login/", "/accounts/signup/"), anonymous, strict=True),
        *((path, client.get(path)) for path in pages),
    ]:
        assert response.status_code == 200, path
        assert inline_code(response.content.decode()) == [], path
        policy = csp(response)
        assert (policy["script-src"], policy["style-src"]) == ("'self'", "'self'"), path


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/docs/", "/api/v1/redoc/", "/api/v1/"])
def test_api_pages_load_scripts_from_the_hub_and_get_inline_styles_only(client, path):
    response = client.get(path, HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    blocked = [found for found in inline_code(response.content.decode()) if "script" in found]
    assert blocked == []
    policy = csp(response)
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self' 'unsafe-inline'"
    assert b"fonts.googleapis.com" not in response.content
