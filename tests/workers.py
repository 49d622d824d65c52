"""Start real Celery worker processes for integration tests (no eager mode)."""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
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


def broker_reset(url: str, broker_dir: Path) -> None:
    """Empty the test queues, and on Redis forget tasks a killed worker left unacknowledged.

    Redis keeps those to hand them to the next worker once the visibility timeout
    has passed: they would reach a later test's worker with ids of its own rows.
    """
    with broker_connection(url, broker_dir) as conn:
        channel = conn.default_channel
        for queue in ("default", "gpu"):
            channel.queue_purge(queue)
        if url.startswith("redis"):
            channel.client.delete(channel.unacked_key, channel.unacked_index_key)


@contextlib.contextmanager
def running_worker(
    *,
    broker_url: str,
    broker_dir: Path,
    queues: str,
    log: Path,
    hostname: str = "test@%h",
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen]:
    """A worker process on the test database and the given broker.

    It leads its own process group (its pool processes are in it), which
    ``kill_worker`` ends at once like a machine that lost power.
    """
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hubsite.settings",
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": broker_url,
        "HUB_BROKER_DIR": str(broker_dir),
        # The worker must find the files the test process stored.
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        **(env or {}),
    }
    with log.open("w") as log_file:
        process = subprocess.Popen(
            worker_command(queues, hostname=hostname),
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def kill_worker(process: subprocess.Popen) -> None:
    """SIGKILL the worker and its pool processes together: nothing gets to clean up."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    # The pool processes are not our children: wait until the kernel has ended them.
    deadline = time.monotonic() + 30
    while any(p.group == process.pid for p in _live_processes()) and time.monotonic() < deadline:
        time.sleep(0.05)


def pool_processes(process: subprocess.Popen) -> list[int]:
    """Process ids of the worker's pool (its child processes)."""
    return [p.pid for p in _live_processes() if p.parent == process.pid]


@dataclass(frozen=True)
class _Process:
    pid: int
    parent: int
    group: int


def _live_processes() -> Iterator[_Process]:
    """Processes from /proc, less the zombies."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # The command name may hold spaces and brackets: the fields after it are fixed.
        state, parent, group = text.rsplit(")", 1)[1].split()[:3]
        if state != "Z":
            yield _Process(int(stat.parent.name), int(parent), int(group))
