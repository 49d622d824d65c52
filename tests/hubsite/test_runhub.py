"""``manage.py runhub`` supervises its children: a killed one is restarted, nothing is orphaned.

The hub runs as it does for a newcomer (web, worker, scheduler from one
command) on the test database with its own folders; processes are found in
/proc by the HUB_VAR_DIR they were started with.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from hubsite.processes import beat_command
from tests import workers
from tests.servers import free_port

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class HubProcess:
    pid: int
    parent: int
    command: str


def hub_processes(var_dir: Path) -> list[HubProcess]:
    """Live (not zombie) processes started with HUB_VAR_DIR=var_dir."""
    marker = f"HUB_VAR_DIR={var_dir}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            state, parent = (proc / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if state != "Z":
            found.append(HubProcess(int(proc.name), int(parent), command))
    return found


def descends_from(process: HubProcess, ancestor: int, processes: list[HubProcess]) -> bool:
    parents = {p.pid: p.parent for p in processes}
    pid = process.pid
    while pid in parents:
        if parents[pid] == ancestor:
            return True
        pid = parents[pid]
    return False


def wait_for(condition, timeout: float = 90, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.2)
    raise TimeoutError(f"waited {timeout} s for {what}")


@pytest.fixture
def hub_env(transactional_db, tmp_path):
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hubsite.settings",
        "DATABASE_URL": workers.test_database_url(),
        "HUB_VAR_DIR": str(var_dir),
        # Its own spool, so this hub's worker takes none of the other tests' tasks.
        "CELERY_BROKER_URL": "filesystem://localhost/",
        "HUB_BROKER_DIR": str(tmp_path / "broker"),
        "MODEL_CACHE_DIR": str(settings.MODEL_CACHE_DIR),
    }


@contextlib.contextmanager
def runhub(env: dict, log: Path):
    var_dir = Path(env["HUB_VAR_DIR"])
    command = [sys.executable, "manage.py", "runhub", "--bind", f"127.0.0.1:{free_port()}"]
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: "The hub is up" in log.read_text(), 120, "the hub to start")
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        for leftover in hub_processes(var_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover.pid, signal.SIGKILL)


def child(processes: list[HubProcess], parent: int, word: str) -> HubProcess | None:
    return next((p for p in processes if p.parent == parent and f" {word} " in p.command), None)


def test_a_killed_worker_is_restarted_with_one_scheduler_and_no_orphan(hub_env, tmp_path):
    var_dir = Path(hub_env["HUB_VAR_DIR"])
    log = tmp_path / "runhub.log"
    with runhub(hub_env, log) as hub:
        worker = child(hub_processes(var_dir), hub.pid, "worker")
        os.kill(worker.pid, signal.SIGKILL)

        def restarted():
            new = child(hub_processes(var_dir), hub.pid, "worker")
            return new if new and new.pid != worker.pid else None

        wait_for(restarted, what=f"a new worker; runhub log:\n{log.read_text()[-2000:]}")
        assert hub.poll() is None, log.read_text()[-2000:]
        processes = hub_processes(var_dir)
        orphans = [
            p for p in processes if p.pid != hub.pid and not descends_from(p, hub.pid, processes)
        ]
        assert orphans == []
        schedulers = [p for p in processes if " beat " in p.command]
        assert len(schedulers) == 1
        # A second scheduler on the same folder refuses to start.
        second = subprocess.run(
            beat_command(str(var_dir / "celerybeat-schedule"), str(var_dir / "celerybeat.pid")),
            cwd=settings.BASE_DIR,
            env=hub_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0 and "already exists" in second.stderr + second.stdout

        hub.send_signal(signal.SIGTERM)
        assert hub.wait(timeout=60) == 0
    assert "restarting it" in log.read_text()
    assert hub_processes(var_dir) == []


def test_a_killed_runhub_takes_its_children_with_it(hub_env, tmp_path):
    var_dir = Path(hub_env["HUB_VAR_DIR"])
    with runhub(hub_env, tmp_path / "runhub.log") as hub:
        assert len(hub_processes(var_dir)) >= 4  # runhub, gunicorn, worker, scheduler…
        hub.send_signal(signal.SIGKILL)
        hub.wait()

        wait_for(lambda: hub_processes(var_dir) == [], 60, "the children to stop")
