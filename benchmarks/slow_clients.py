"""/healthz latency of the web server while slow clients hold connections.

    python benchmarks/slow_clients.py [--connections 64] [--server embedded|gunicorn]

Starts the web server as ``manage.py runhub`` does (``--server embedded``,
the default) or the former embedded command (``--server gunicorn``: gunicorn
with 2 workers of 4 threads, without the proxy production puts in front of
it) on a loopback port with its own state folder, then asks for /healthz
``--samples`` times one after another: first alone, then while
``--connections`` slow clients trickle a byte a second (half of them their
headers, half an upload's body; see tests/slow_clients.py). Prints p50 and
p99 of each set and how many requests got no answer within ``--timeout``
seconds. Loopback only; at most 512 connections and ``--max-seconds`` of
trickling.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hubsite.processes import production_web_command, web_command  # noqa: E402
from tests.servers import free_port, wait_for_http  # noqa: E402
from tests.slow_clients import MAX_CONNECTIONS, SlowClients  # noqa: E402

FORMER_EMBEDDED_WORKERS = 2


def prepare_state(env: dict) -> str:
    """Migrate the state folder's database; create a user and return its API token."""
    script = """
import django; django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
user = get_user_model().objects.create_user("bench", password="bench-pass-phrase")
print(Token.objects.create(user=user).key)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode:
        sys.exit(f"could not prepare the state folder:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def server_command(kind: str, bind: str) -> list[str]:
    if kind == "gunicorn":
        return [sys.executable, "-m", *production_web_command(bind, FORMER_EMBEDDED_WORKERS)]
    return web_command(bind)


def health_latencies(url: str, samples: int, timeout: float, deadline: float) -> list[float]:
    """Seconds each /healthz took; ``math.inf`` for one that got no answer in time."""
    latencies = []
    for _ in range(samples):
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=timeout) as response:
                response.read()
            latencies.append(time.perf_counter() - started)
        except OSError:
            latencies.append(math.inf)
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def describe(label: str, latencies: list[float], timeout: float) -> str:
    def shown(value: float) -> str:
        return f"> {timeout:.0f} s" if math.isinf(value) else f"{value * 1000:.0f} ms"

    unanswered = sum(math.isinf(value) for value in latencies)
    return (
        f"  {label:<28} p50 {shown(percentile(latencies, 0.5)):>9}   "
        f"p99 {shown(percentile(latencies, 0.99)):>9}   "
        f"unanswered {unanswered}/{len(latencies)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=64, help="slow clients (at most 512)")
    parser.add_argument("--server", choices=("embedded", "gunicorn"), default="embedded")
    parser.add_argument("--samples", type=int, default=20, help="/healthz requests per set")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds one request may take")
    parser.add_argument("--max-seconds", type=float, default=90.0, help="cap on the trickling")
    args = parser.parse_args()
    if not 0 < args.connections <= MAX_CONNECTIONS:
        parser.error(f"--connections must be between 1 and {MAX_CONNECTIONS}")

    work = Path(tempfile.mkdtemp(prefix="lorahub-slow-clients-"))
    server = None
    try:
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STORAGE_BACKEND")},
            "DJANGO_SETTINGS_MODULE": "hubsite.settings",
            "HUB_VAR_DIR": str(work / "var"),
            "CELERY_BROKER_URL": "filesystem://localhost/",
        }
        token = prepare_state(env)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            server_command(args.server, f"127.0.0.1:{port}"),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_http(url + "/healthz", timeout=60)

        deadline = time.monotonic() + args.max_seconds
        alone = health_latencies(url, args.samples, args.timeout, deadline)
        slow = SlowClients(port, args.connections, token=token, max_seconds=args.max_seconds)
        with slow:
            slow.wait_for_ticks(2)  # every connection is open and mid-request
            held = health_latencies(url, args.samples, args.timeout, deadline)

        print(f"\n/healthz of the {args.server} web server on loopback (busy machines skew it)")
        print(describe("alone", alone, args.timeout))
        print(describe(f"with {args.connections} slow clients", held, args.timeout))
        return 0
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
