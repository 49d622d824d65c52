"""The embedded web server: waitress in front of the hub's WSGI application.

    python -m hubsite.webserver --bind 127.0.0.1:8000 [--threads 8]

``manage.py runhub`` starts it (command line in hubsite/processes.py).
Waitress reads every request whole, headers and body, in one asynchronous
I/O thread before any request thread sees it, so a client that trickles its
request costs a socket and a buffer, not a thread: slow or stalled clients
cannot take the threads that answer everybody else. Bodies over a small
in-memory buffer spool to temporary files, which go to the upload folder
(``HUB_UPLOAD_TEMP_DIR``) rather than /tmp, which is memory on many systems;
a request longer than the upload limit is answered with 413 before its body
is read. That refusal and waitress's other ones (malformed requests) are
worded by the hub: JSON under /api/, a short page elsewhere. Production runs
gunicorn behind a buffering proxy instead (docker-compose.yml,
deploy/nginx.conf).
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import os
import resource
import signal
import sys
import tempfile
import time

KiB = 1024
# Memory a held request may take before it spools to disk: with the
# connection limit, this bounds what slow clients can make the server hold.
MAX_HEADER_BYTES = 64 * KiB
BODY_MEMORY_BYTES = 128 * KiB
# File descriptors one connection may use: its socket, a spooled request
# body and a spooled response.
FILES_PER_CONNECTION = 3

access_log = logging.getLogger("hubsite.access")


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hubsite.settings")
    from django.conf import settings

    parser = argparse.ArgumentParser(description="Serve the hub with waitress.")
    parser.add_argument("--bind", default="127.0.0.1:8000", help="host:port to listen on")
    parser.add_argument("--threads", type=int, default=None, help="default: HUB_WEB_THREADS")
    args = parser.parse_args(argv)

    from waitress import serve
    from waitress.channel import HTTPChannel

    from hubsite.wsgi import application
    from modules.uploads import MULTIPART_OVERHEAD_BYTES

    # Waitress answers the requests it refuses itself with the task class its
    # channels name; the hub's words them for API clients and people.
    HTTPChannel.error_task_class = hub_error_task_class(settings.HUB_MAX_UPLOAD_BYTES)

    tempfile.tempdir = str(settings.FILE_UPLOAD_TEMP_DIR)
    connection_limit = settings.HUB_WEB_CONNECTION_LIMIT
    raise_open_file_limit(connection_limit * FILES_PER_CONNECTION + 100)
    # SIGTERM (runhub's stop) ends the loop the way Ctrl-C does: the server
    # closes its sockets and gives running requests a few seconds.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    serve(
        with_access_log(without_head_bodies(application)),
        listen=args.bind,
        threads=args.threads or settings.HUB_WEB_THREADS,
        connection_limit=connection_limit,
        asyncore_use_poll=True,  # select() cannot watch descriptors past 1024
        max_request_header_size=MAX_HEADER_BYTES,
        inbuf_overflow=BODY_MEMORY_BYTES,
        # Waitress refuses a body of this length or more; the hub refuses one
        # longer than the upload limit plus the multipart overhead.
        max_request_body_size=settings.HUB_MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES + 1,
        ident="lorahub",
        **proxy_options(settings.HUB_PROXY_COUNT),
    )


def hub_error_task_class(upload_limit: int):
    """Waitress's error task, answering in JSON (``{"detail": …}``) under /api/.

    Waitress refuses a request whose body is over its limit before reading
    it, and with its own plain-text body, which API clients cannot parse.
    """
    from waitress.task import ErrorTask
    from waitress.utilities import RequestEntityTooLarge

    from modules.uploads import UploadTooLarge

    class HubErrorTask(ErrorTask):
        def execute(self):
            error = self.request.error
            if isinstance(error, RequestEntityTooLarge):
                message = str(UploadTooLarge(upload_limit).detail)
            else:
                message = f"{error.reason}: {error.body}"
            if (self.request.path or "").startswith("/api/"):
                content_type = "application/json"
                body = json.dumps({"detail": message})
            else:
                content_type = "text/html; charset=utf-8"
                body = ERROR_PAGE.format(
                    title=html.escape(error.reason), message=html.escape(message)
                )
            self.status = f"{error.code} {error.reason}"
            self.response_headers.append(("Content-Type", content_type))
            self.set_close_on_finish()
            encoded = body.encode()
            self.content_length = len(encoded)
            self.write(encoded)

    return HubErrorTask


ERROR_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · LoraHub Community</title></head>
<body><h1>{title}</h1><p>{message}</p><p><a href="/">LoraHub Community</a></p></body></html>
"""


def proxy_options(proxy_count: int) -> dict:
    """Behind reverse proxies (HUB_PROXY_COUNT), take the client's scheme and address from them.

    Waitress drops forwarding headers it was not told to trust: without this,
    a hub behind an https proxy never sees X-Forwarded-Proto and redirects
    every request to https again. Like gunicorn's --forwarded-allow-ips "*",
    trusting any peer is safe only because the proxy is its only client.
    """
    if not proxy_count:
        return {}
    return {
        "trusted_proxy": "*",
        "trusted_proxy_count": proxy_count,
        "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"},
        "clear_untrusted_proxy_headers": True,
    }


def without_head_bodies(app):
    """Answer HEAD with the headers of GET and no body.

    Waitress sends whatever body the application returns, and Django returns
    one for HEAD too (an error's JSON, say): a client reading the next answer
    on the same connection would take those bytes for it.
    """

    def head_app(environ, start_response):
        body = app(environ, start_response)
        if environ.get("REQUEST_METHOD") != "HEAD":
            return body
        # Django has called start_response already; closing the body ends
        # the request (its signals, open files) as sending it would.
        if hasattr(body, "close"):
            body.close()
        return []

    return head_app


def with_access_log(app):
    """Log one line per request when its response starts (method, path, status, time)."""

    def logged_app(environ, start_response):
        started = time.monotonic()

        def logging_start_response(status, headers, exc_info=None):
            access_log.info(
                '%s "%s %s" %s %.0f ms',
                environ.get("REMOTE_ADDR", "-"),
                environ.get("REQUEST_METHOD"),
                environ.get("PATH_INFO"),
                status.split(" ", 1)[0],
                (time.monotonic() - started) * 1000,
            )
            return start_response(status, headers, exc_info)

        return app(environ, logging_start_response)

    return logged_app


def raise_open_file_limit(wanted: int) -> None:
    """Lift the soft limit of open files towards ``wanted`` (never past the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


if __name__ == "__main__":
    main()
