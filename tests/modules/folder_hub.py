"""A small Hub-protocol server over a folder, on loopback, for import tests.

``<root>/<owner>/<name>/`` folders are served as repositories at one
revision, with what huggingface_hub needs to list, describe and download
them: ``/api/models?author=``, ``/api/models/{repo}[/revision/{rev}]`` and
``HEAD``/``GET /{repo}/resolve/{rev}/{file}``. Unlike the hub it serves any
file a folder holds, so it can stand for an endpoint that still has
``adapter_model.bin`` pickles, as the LoraHub paper's modules on the
Hugging Face Hub do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

INFO = re.compile(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?$")
RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Repository:
    def __init__(self, folder: Path):
        self.folder = folder
        self.files = sorted(p for p in folder.iterdir() if p.is_file())
        digest = hashlib.sha1()
        for path in self.files:
            digest.update(path.name.encode() + b"\0" + _sha256(path).encode())
        self.sha = digest.hexdigest()

    def info(self) -> dict:
        siblings = []
        for path in self.files:
            sibling = {"rfilename": path.name, "size": path.stat().st_size}
            if path.suffix in (".bin", ".safetensors"):
                sibling["lfs"] = {
                    "size": path.stat().st_size,
                    "sha256": _sha256(path),
                    "pointerSize": 130,
                }
            siblings.append(sibling)
        repo_id = f"{self.folder.parent.name}/{self.folder.name}"
        return {"id": repo_id, "modelId": repo_id, "sha": self.sha, "siblings": siblings}


class _Handler(BaseHTTPRequestHandler):
    root: Path
    # Seconds each file download takes: a slow remote, for work long enough to interrupt.
    download_seconds: float = 0.0

    def log_message(self, format, *args):  # the test output is no place for an access log
        pass

    def do_GET(self):
        self._answer(body=True)

    def do_HEAD(self):
        self._answer(body=False)

    def _answer(self, *, body: bool):
        url = urlsplit(self.path)
        path = unquote(url.path)
        if path == "/api/models":
            author = parse_qs(url.query).get("author", [""])[0]
            folders = sorted((self.root / author).iterdir()) if author else []
            return self._json([{"id": f"{author}/{f.name}"} for f in folders if f.is_dir()], body)
        if match := INFO.match(path):
            repo = self._repository(match[1])
            if repo is None:
                return self._error(401, "RepoNotFound", body)
            if match[2] not in (None, "main", repo.sha):
                return self._error(404, "RevisionNotFound", body)
            return self._json(repo.info(), body)
        if match := RESOLVE.match(path):
            repo = self._repository(match[1])
            if repo is None:
                return self._error(401, "RepoNotFound", body)
            if match[2] not in ("main", repo.sha):
                return self._error(404, "RevisionNotFound", body)
            file = repo.folder / match[3]
            if file not in repo.files:
                return self._error(404, "EntryNotFound", body, {"X-Repo-Commit": repo.sha})
            data = file.read_bytes()
            if body:
                time.sleep(self.download_seconds)
            headers = {
                "X-Repo-Commit": repo.sha,
                "ETag": f'"{_sha256(file)}"',
                "X-Linked-Size": str(len(data)),
            }
            return self._send(200, data, "application/octet-stream", body, headers)
        return self._error(404, "", body)

    def _repository(self, repo_id: str) -> _Repository | None:
        folder = self.root / repo_id
        return _Repository(folder) if folder.is_dir() else None

    def _json(self, value, body: bool):
        self._send(200, json.dumps(value).encode(), "application/json", body)

    def _error(self, status: int, code: str, body: bool, headers: dict | None = None):
        headers = {**(headers or {}), **({"X-Error-Code": code} if code else {})}
        self._send(status, json.dumps({"error": code}).encode(), "application/json", body, headers)

    def _send(self, status: int, data: bytes, content_type: str, body: bool, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(data)


@contextlib.contextmanager
def folder_hub(root: Path, *, download_seconds: float = 0.0) -> Iterator[str]:
    """Serve ``root`` on a free loopback port from a thread; yields the endpoint URL."""
    handler = type(
        "FolderHubHandler", (_Handler,), {"root": root, "download_seconds": download_seconds}
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
