"""Run the whole hub in the foreground: the web server and one worker.

Both run as child processes in their own sessions, so Ctrl-C reaches only
this command, which then stops them in order (graceful first, forced after a
grace period) instead of leaving orphans behind.
"""

import json
import os
import signal
import subprocess
import time
import urllib.request

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from hubsite.processes import web_command, worker_command

GRACE_SECONDS = 10


class Command(BaseCommand):
    help = "Start the web server (waitress) and a Celery worker together; Ctrl-C stops both."

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

        processes = {
            "web": self._spawn(web_command(bind)),
            "worker": self._spawn(
                worker_command(queues, beat_schedule=settings.CELERY_BEAT_SCHEDULE_FILENAME)
            ),
        }
        url = f"http://{bind}"
        try:
            self._wait_until_healthy(url, processes)
            self.stdout.write(self.style.SUCCESS(f"\nThe hub is up at {url}  (Ctrl-C stops it)"))
            self._report_worker(queues.split(",")[0])
            self._supervise(processes)
        finally:
            self._stop(processes)

    def _request_stop(self, signum, frame):
        self._stopping = True

    def _spawn(self, command: list[str]) -> subprocess.Popen:
        return subprocess.Popen(command, cwd=settings.BASE_DIR, start_new_session=True)

    def _wait_until_healthy(self, url: str, processes: dict, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stopping:
            self._raise_if_exited(processes)
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

    def _supervise(self, processes: dict) -> None:
        while not self._stopping:
            self._raise_if_exited(processes)
            time.sleep(0.5)
        self.stdout.write("\nStopping the hub …")

    def _raise_if_exited(self, processes: dict) -> None:
        for name, process in processes.items():
            if process.poll() is not None:
                raise CommandError(f"the {name} process exited with code {process.returncode}")

    def _stop(self, processes: dict) -> None:
        running = [p for p in processes.values() if p.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                # A task still running holds the worker's warm shutdown: kill
                # it; with late acks its task goes back to the queue.
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.stdout.write("Stopped.")
