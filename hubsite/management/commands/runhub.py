"""Run the whole hub in the foreground: the web server, one worker and the scheduler.

Each runs as a child process leading its own process group, so Ctrl-C reaches
only this command, which then stops them in order (graceful first, forced
after a grace period). A child that dies is restarted once everything it left
in its group is gone, so a killed worker never leaves its pool or a second
scheduler behind; a child that keeps dying stops the whole hub. Children also
get SIGTERM from the kernel if this command itself is killed, so nothing is
orphaned then either.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from hubsite.processes import beat_command, web_command, worker_command

GRACE_SECONDS = 10
# A child that dies this many times within the window stops the hub.
CRASHES_ALLOWED = 3
CRASH_WINDOW_SECONDS = 60
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen | None = None
    crashes: list[float] = field(default_factory=list)


class Command(BaseCommand):
    help = (
        "Start the web server (waitress), a Celery worker and the scheduler together, "
        "restart any that dies; Ctrl-C stops them all."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--bind",
            default=os.environ.get("HUB_BIND", "127.0.0.1:8000"),
            help="host:port of the web server (default: HUB_BIND or 127.0.0.1:8000)",
        )
        parser.add_argument("--queues", default="gpu,default", help="queues the worker consumes")

    def handle(self, *args, bind, queues, **options):
        self._stopping = False
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGTERM, self._request_stop)

        # Processes orphaned inside a child's group become ours to reap and count.
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        call_command("remove_debris", stdout=self.stdout)
        children = [
            Child("web", web_command(bind)),
            Child("worker", worker_command(queues)),
            Child(
                "scheduler",
                beat_command(
                    settings.CELERY_BEAT_SCHEDULE_FILENAME, str(settings.VAR_DIR / "celerybeat.pid")
                ),
            ),
        ]
        url = f"http://{bind}"
        try:
            for child in children:
                self._start(child)
            self._wait_until_healthy(url, children)
            self.stdout.write(self.style.SUCCESS(f"\nThe hub is up at {url}  (Ctrl-C stops it)"))
            self._report_worker(queues.split(",")[0])
            self._supervise(children)
        finally:
            self._stop(children)

    def _request_stop(self, signum, frame):
        self._stopping = True

    def _start(self, child: Child) -> None:
        child.process = subprocess.Popen(
            child.command,
            cwd=settings.BASE_DIR,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def _wait_until_healthy(self, url: str, children: list[Child], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stopping:
            for child in children:
                if child.process.poll() is not None:
                    raise CommandError(
                        f"the {child.name} process exited with code {child.process.returncode}"
                    )
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
                    if json.load(response)["status"] == "ok":
                        return
            except OSError:
                pass
            time.sleep(0.5)
        if not self._stopping:
            raise CommandError(f"the web server did not become healthy at {url} in {timeout} s")

    def _report_worker(self, queue: str) -> None:
        try:
            call_command("check_worker", queue=queue, timeout=60, stdout=self.stdout)
        except CommandError as exc:
            self.stderr.write(f"warning: {exc}")

    def _supervise(self, children: list[Child]) -> None:
        while not self._stopping:
            for child in children:
                if child.process.poll() is not None and not self._stopping:
                    self._restart(child)
            time.sleep(0.5)
        self.stdout.write("\nStopping the hub …")

    def _restart(self, child: Child) -> None:
        code = child.process.returncode
        _end_group(child.process)
        now = time.monotonic()
        child.crashes = [t for t in child.crashes if now - t < CRASH_WINDOW_SECONDS] + [now]
        if len(child.crashes) >= CRASHES_ALLOWED:
            raise CommandError(
                f"the {child.name} process exited with code {code} "
                f"{len(child.crashes)} times in {CRASH_WINDOW_SECONDS} s; stopping the hub"
            )
        self.stderr.write(f"the {child.name} process exited with code {code}; restarting it")
        self._start(child)

    def _stop(self, children: list[Child]) -> None:
        started = [child.process for child in children if child.process is not None]
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for process in started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            # What is still running then (a task holding the worker's warm
            # shutdown; with late acks it goes back to the queue) is killed,
            # with anything else left in the group.
            _end_group(process)
        self.stdout.write("Stopped.")


def _end_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGKILL a child's whole process group and wait until none of it is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Members orphaned by the leader's death were handed to us (subreaper).
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-process.pid, os.WNOHANG)[0]:
                pass
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when this command dies."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _prctl(option: int, value: int) -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(option, value)
