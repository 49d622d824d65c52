"""Command lines of the hub's long-running processes.

One definition serves ``manage.py runhub``, the tests that start real web
servers and workers, and the check that docker-compose.yml runs the same
commands.
"""

import sys


def web_command(bind: str, threads: int | None = None) -> list[str]:
    """The embedded web server (waitress, hubsite/webserver.py) that runhub starts.

    It reads requests whole before a thread handles them, so slow clients
    cannot hold its threads; ``threads`` defaults to HUB_WEB_THREADS.
    """
    return [
        sys.executable, "-m", "hubsite.webserver",
        "--bind", bind,
        *(["--threads", str(threads)] if threads else []),
    ]  # fmt: skip


ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'


def production_web_command(bind: str, workers: int = 4) -> list[str]:
    """gunicorn, as docker-compose.yml runs it behind the buffering proxy.

    gunicorn gives each connection a thread while it reads the request, so it
    must only ever face the proxy (deploy/nginx.conf), which takes requests
    in whole first. The proxy is the only client, so its X-Forwarded-Proto
    is trusted from any address.
    """
    return [
        "gunicorn", "hubsite.wsgi",
        "--bind", bind,
        "--workers", str(workers),
        "--threads", "4",
        # A request reaches gunicorn whole, but a large upload is still
        # checked and stored for a while, and a download streams for minutes.
        "--timeout", "300",
        "--forwarded-allow-ips", "*",
        "--access-logfile", "-",
        # The stock line plus the time the request took in the worker, in ms:
        # tells a slow query from a request that waited for a free thread.
        "--access-logformat", ACCESS_LOG_FORMAT,
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
