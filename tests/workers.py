"""Start real Celery worker processes for integration tests (no eager mode)."""

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.db import connection
from kombu import Connection

from hubsite.brokers import filesystem_broker_options
from hubsite.processes import worker_command

REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/15")


def test_database_url() -> str:
    """URL of the database the tests run on, for a worker process to share."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    host = f"{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}"
    return f"postgres://{db['USER']}{password}@{host}/{db['NAME']}"


def broker_connection(url: str, broker_dir: Path) -> Connection:
    options = filesystem_broker_options(broker_dir) if url.startswith("filesystem") else {}
    return Connection(url, transport_options=options)


def redis_reachable(url: str = REDIS_TEST_URL) -> bool:
    try:
        with Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception:
        return False
    return True


@contextlib.contextmanager
def running_worker(*, broker_url: str, broker_dir: Path, queues: str, log: Path) -> Iterator[None]:
    """A worker process on the test database and the given broker."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hubsite.settings",
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": broker_url,
        "HUB_BROKER_DIR": str(broker_dir),
        # The worker must find the files the test process stored.
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    with log.open("w") as log_file:
        process = subprocess.Popen(
            worker_command(queues, hostname="test@%h"),
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
