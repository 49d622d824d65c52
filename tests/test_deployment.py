"""docker-compose.yml, its proxy's config and the README agree with the hub."""

import http.client
import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings

from hubsite.processes import production_web_command, worker_command
from modules.uploads import MULTIPART_OVERHEAD_BYTES, UploadTooLarge
from tests.conftest import skip_or_fail
from tests.servers import free_port

ROOT = Path(settings.BASE_DIR)
NGINX_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
NGINX_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}


def env_vars_read_by_settings() -> set[str]:
    """Every variable read by hubsite/settings.py and the settings_*.py modules it imports."""
    sources = [(ROOT / "hubsite" / "settings.py").read_text()] + [
        path.read_text() for path in (ROOT / "hubsite").glob("settings_*.py")
    ]
    return {
        name for source in sources for name in re.findall(r'env\.\w+\(\s*"([A-Z0-9_]+)"', source)
    }


def nginx_directives(text: str) -> dict[str, list[str]]:
    """Every ``name value…;`` of an nginx config, by name (comments dropped)."""
    directives: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if match := re.fullmatch(r"(\w+)\s+(.*);", line):
            directives.setdefault(match[1], []).append(match[2].strip())
    return directives


def nginx_quantity(value: str, units: dict[str, int]) -> int:
    number, unit = re.fullmatch(r"(\d+)([a-zA-Z]?)", value).groups()
    return int(number) * units[unit.lower()]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def proxy_config(compose) -> dict[str, list[str]]:
    """The nginx config the proxy service mounts as its main config."""
    [source] = [
        volume.split(":")[0]
        for volume in compose["services"]["proxy"]["volumes"]
        if volume.split(":")[1] == "/etc/nginx/nginx.conf"
    ]
    return nginx_directives((ROOT / source).read_text())


def test_settings_read_the_variables_this_test_relies_on():
    # Guards the regex above: if it found nothing, every check below would pass.
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "STORAGE_BACKEND"} <= env_vars_read_by_settings()
    # …and in the settings modules hubsite/settings.py imports.
    assert {"HUB_PUBLIC_URL", "HUB_LOGIN_RATE_PER_IP"} <= env_vars_read_by_settings()


def test_compose_has_every_production_service(compose):
    services = compose["services"]
    assert {"web", "worker", "beat", "postgres", "redis", "minio", "init"} <= set(services)
    for name, service in services.items():
        if name != "init":
            assert "healthcheck" in service, f"{name} has no health check"


def test_compose_environment_uses_only_variables_the_settings_read(compose):
    known = env_vars_read_by_settings()
    for name in ("web", "worker", "worker-light", "beat", "init"):
        unknown = set(compose["services"][name]["environment"]) - known
        assert not unknown, f"{name} sets variables the settings never read: {unknown}"


def test_compose_wires_the_backends_to_their_services(compose):
    env = compose["services"]["web"]["environment"]
    assert urlsplit(env["DATABASE_URL"]).scheme == "postgres"
    assert urlsplit(env["DATABASE_URL"]).hostname == "postgres"
    assert urlsplit(env["CELERY_BROKER_URL"]).scheme == "redis"
    assert urlsplit(env["CELERY_BROKER_URL"]).hostname == "redis"
    assert env["STORAGE_BACKEND"] == "s3"
    assert urlsplit(env["S3_ENDPOINT_URL"]).hostname == "minio"
    postgres = compose["services"]["postgres"]["environment"]
    assert urlsplit(env["DATABASE_URL"]).path == "/" + postgres["POSTGRES_DB"]


def test_web_runs_the_production_gunicorn_command_unpublished(compose):
    web = compose["services"]["web"]
    command = web["command"]
    bind = command[command.index("--bind") + 1]
    workers = int(command[command.index("--workers") + 1])
    assert command == production_web_command(bind, workers)
    # gunicorn gives a connection a thread while it reads the request: only
    # the buffering proxy may reach it.
    assert "ports" not in web and web["expose"] == [bind.rsplit(":", 1)[1]]


def test_proxy_is_the_way_in_and_hands_gunicorn_whole_requests(compose, proxy_config):
    proxy = compose["services"]["proxy"]
    web_command = compose["services"]["web"]["command"]
    web_port = web_command[web_command.index("--bind") + 1].rsplit(":", 1)[1]
    assert proxy["image"].startswith("nginx:")
    assert proxy["depends_on"]["web"]["condition"] == "service_healthy"
    assert proxy_config["proxy_pass"] == [f"http://web:{web_port}"]
    # Users reach the hub at the proxy's published port.
    public_url = re.fullmatch(r"\$\{HUB_PUBLIC_URL:-(.+)\}", compose["x-hub-env"]["HUB_PUBLIC_URL"])
    public_port = str(urlsplit(public_url[1]).port)
    [published] = proxy["ports"]
    assert published.split(":")[0] == public_port
    assert proxy_config["listen"] == [published.split(":")[1]]
    # Requests and responses are buffered; a request is timed out while it trickles.
    assert proxy_config["proxy_request_buffering"] == ["on"]
    assert proxy_config["proxy_buffering"] == ["on"]
    for timeout in ("client_header_timeout", "client_body_timeout", "send_timeout"):
        assert nginx_quantity(proxy_config[timeout][0], NGINX_SECONDS) <= 60, timeout
    # A request gunicorn may take long over is not cut before gunicorn's own timeout.
    gunicorn_timeout = int(web_command[web_command.index("--timeout") + 1])
    for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
        assert nginx_quantity(proxy_config[timeout][0], NGINX_SECONDS) >= gunicorn_timeout


def test_proxy_body_limit_matches_the_hub_upload_limit(compose, proxy_config):
    limit = int(compose["x-hub-env"]["HUB_MAX_UPLOAD_BYTES"])
    [body_limit] = proxy_config["client_max_body_size"]
    assert nginx_quantity(body_limit, NGINX_UNITS) == limit + MULTIPART_OVERHEAD_BYTES


def test_proxy_tells_gunicorn_the_scheme_and_gunicorn_listens(compose, proxy_config):
    headers = dict(value.split(None, 1) for value in proxy_config["proxy_set_header"])
    assert headers["X-Forwarded-Proto"] == "$scheme"
    # gunicorn also reads these two as "https": the proxy clears what clients send.
    assert headers["X-Forwarded-Protocol"] == headers["X-Forwarded-Ssl"] == '""'
    assert headers["Host"] == "$http_host"
    command = compose["services"]["web"]["command"]
    assert command[command.index("--forwarded-allow-ips") + 1] == "*"


def test_gpu_worker_runs_the_hub_worker_command_on_the_gpu_queue(compose):
    worker = compose["services"]["worker"]
    command = worker["command"]
    assert command[:4] == ["celery", "-A", "hubsite", "worker"]
    assert command[command.index("--queues") + 1] == "gpu"
    # Same flags as the worker `manage.py runhub` starts (prefetch 1, one task at a time…).
    expected = worker_command("gpu")
    for flag in ("--concurrency", "--prefetch-multiplier"):
        assert command[command.index(flag) + 1] == expected[expected.index(flag) + 1]
    assert {"--without-gossip", "--without-mingle", "--without-heartbeat"} <= set(command)
    [device] = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    # The GPU image takes PyPI's torch (CUDA build), not the CPU index.
    assert "cpu" not in worker["build"]["args"]["TORCH_INDEX_URL"]


def test_default_queue_has_a_worker(compose):
    command = compose["services"]["worker-light"]["command"]
    assert command[command.index("--queues") + 1] == "default"
    assert set(q.name for q in settings.CELERY_TASK_QUEUES) == {"default", "gpu"}


def test_model_cache_is_a_shared_volume_where_the_settings_look(compose):
    for name in ("worker", "init"):
        service = compose["services"][name]
        cache = service["environment"]["MODEL_CACHE_DIR"]
        volume = next(v for v in service["volumes"] if v.endswith(":" + cache))
        assert volume.split(":")[0] in compose["volumes"]


def test_readme_configuration_table_documents_every_variable():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)`", readme, flags=re.MULTILINE))
    missing = env_vars_read_by_settings() - documented
    assert not missing, f"README configuration table lacks {sorted(missing)}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make run" in readme
    assert re.search(r"^exec make test$", (ROOT / ".ci" / "run").read_text(), re.MULTILINE)


def test_beat_runs_the_hub_schedule(compose):
    command = compose["services"]["beat"]["command"]
    assert command[:4] == ["celery", "-A", "hubsite", "beat"]
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "hubsite.tasks.sweep_jobs" in tasks


@pytest.fixture
def running_proxy(tmp_path):
    """deploy/nginx.conf run by a real nginx on a free loopback port; yields its URL.

    Only what cannot work outside compose changes: the port, the upstream (nothing
    answers there; the requests sent never reach it) and the writable paths.
    """
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None:
        skip_or_fail("nginx is not installed")
    port = free_port()
    config = (ROOT / "deploy" / "nginx.conf").read_text()
    config = config.replace("listen 8000;", f"listen 127.0.0.1:{port};")
    config = config.replace("proxy_pass http://web:8000;", "proxy_pass http://127.0.0.1:9;")
    writable = "".join(
        f"    {kind}_temp_path {tmp_path / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = config.replace("http {\n", "http {\n" + writable + "    access_log off;\n", 1)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\n" + config
    )
    process = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise TimeoutError(f"nginx did not start: {process.stderr.read()}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


def announce_body(url: str, path: str, length: int) -> tuple[int, str, bytes]:
    host, port = urlsplit(url).hostname, urlsplit(url).port
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.putrequest("POST", path)
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


@pytest.mark.slow
def test_proxy_refuses_bodies_over_the_limit_in_json_for_the_api_and_a_page_elsewhere(
    compose, proxy_config, running_proxy
):
    limit = int(compose["x-hub-env"]["HUB_MAX_UPLOAD_BYTES"])
    too_long = nginx_quantity(proxy_config["client_max_body_size"][0], NGINX_UNITS) + 1
    expected = str(UploadTooLarge(limit).detail)

    api = announce_body(running_proxy, "/api/v1/modules/", too_long)
    page = announce_body(running_proxy, "/modules/new/", too_long)

    assert api[:2] == (413, "application/json")
    assert json.loads(api[2]) == {"detail": expected}
    assert page[:2] == (413, "text/html; charset=utf-8")
    assert expected.encode() in page[2]
