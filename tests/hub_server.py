"""A real hub web process on loopback and on the test database.

Clients such as huggingface_hub talk to it over HTTP exactly as they would
to a deployed hub. It shares the test database (committed rows only: use
transactional tests) and reads module files from ``media_root``.
"""

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from hubsite.processes import production_web_command, web_command
from tests.servers import free_port, wait_for_http
from tests.workers import test_database_url


@contextlib.contextmanager
def running_hub(
    *, media_root: Path, log: Path, env: dict | None = None, ready_headers: dict | None = None
) -> Iterator[str]:
    """Start the embedded web server on a free port; yields the hub's URL (no trailing slash).

    ``ready_headers`` go with the requests that wait for it to answer (a hub
    configured for HTTPS answers plain requests with a redirect).
    """
    with running_hub_process(
        media_root=media_root, log=log, env=env, ready_headers=ready_headers
    ) as (url, _):
        yield url


@contextlib.contextmanager
def running_hub_process(
    *,
    media_root: Path,
    log: Path,
    env: dict | None = None,
    ready_headers: dict | None = None,
    production: bool = False,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Like ``running_hub``, also yielding the server process (to signal it or its workers).

    ``production`` runs gunicorn with one worker as docker-compose does (behind
    its proxy there) instead of the embedded server.
    """
    port = free_port()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hubsite.settings",
        "DATABASE_URL": test_database_url(),
        "MEDIA_ROOT": str(media_root),
        "HUB_UPLOAD_TEMP_DIR": str(settings.FILE_UPLOAD_TEMP_DIR),
        "STORAGE_BACKEND": "local",
        **(env or {}),
    }
    with log.open("w") as log_file:
        process = subprocess.Popen(
            _server_command(f"127.0.0.1:{port}", production),
            cwd=settings.BASE_DIR,
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_for_http(url + "/api/models?limit=1", timeout=90, headers=ready_headers)
            except TimeoutError as exc:
                raise TimeoutError(f"{exc}; hub log:\n{log.read_text()[-3000:]}") from exc
            yield url, process
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _server_command(bind: str, production: bool) -> list[str]:
    if not production:
        return web_command(bind)
    gunicorn = production_web_command(bind, workers=1)
    return [sys.executable, "-m", *gunicorn]
