"""Command lines of the hub's long-running processes.

One definition serves ``manage.py runhub``, the tests that start real workers,
and the check that docker-compose.yml runs the same commands.
"""

import sys


def web_command(bind: str, workers: int = 2) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "hubsite.wsgi",
        "--bind", bind,
        "--workers", str(workers),
        "--threads", "4",
        # Uploads of large adapters stream for minutes on slow links.
        "--timeout", "300",
        "--access-logfile", "-",
    ]  # fmt: skip


def worker_command(queues: str, hostname: str = "hub@%h") -> list[str]:
    # One task at a time, fetched one at a time: a composition holds a whole
    # accelerator, and a prefetched task would wait behind it for nothing.
    return [
        sys.executable, "-m", "celery", "-A", "hubsite", "worker",
        "--queues", queues,
        "--concurrency", "1",
        "--prefetch-multiplier", "1",
        "--hostname", hostname,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--loglevel", "INFO",
    ]  # fmt: skip


def beat_command(schedule: str, pidfile: str) -> list[str]:
    # The pidfile makes a second scheduler on the same folder refuse to start
    # while the first lives (a stale one, left by a killed process, is replaced).
    return [
        sys.executable, "-m", "celery", "-A", "hubsite", "beat",
        "--schedule", schedule,
        "--pidfile", pidfile,
        "--loglevel", "INFO",
    ]  # fmt: skip
