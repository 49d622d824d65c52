"""Pushes through the Hub protocol, as huggingface_hub makes them without Xet.

    POST /api/models/{repo}/preupload/{rev}        how each file is sent: inline or LFS
    POST /{repo}.git/info/lfs/objects/batch        where to PUT each LFS file, and verify it
    PUT  /api/lfs-objects/{signed}                 one LFS file, staged for a commit
    POST /api/lfs-objects/{signed}/verify          the staged file is complete
    POST /api/models/{repo}/commit/{rev}           NDJSON: header, file, lfsFile, deletedFile

An LFS file waits in the upload folder (``FILE_UPLOAD_TEMP_DIR``) until the
commit that names it, which stores it, or refuses it and removes it; it is
never a blob of the registry before the commit is valid. The upload URL is
signed (the client sends no token with the PUT), for one user and one file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

from django.conf import settings
from django.core import signing
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from modules import services, storage, validation
from modules.hub_protocol.common import DEFAULT_REVISION, HubError, _git_blob_oid, hub_view
from modules.hub_protocol.writes import json_body, refusals_answered, writer
from modules.models import Module, ModuleCommitFile
from modules.services.common import work_root
from modules.uploads import UploadTooLarge

_SHA256 = re.compile(r"^[0-9a-f]{64}\Z")
_SIGNING_SALT = "hub-protocol-lfs-upload"
_UPLOAD_URL_MAX_AGE = 24 * 3600
XET_REFUSED = (
    "This hub takes large files through Git LFS, not Xet: set HF_HUB_DISABLE_XET=1 "
    "for huggingface_hub to push them."
)


def _on_main(revision: str, request) -> None:
    if request.GET.get("create_pr"):
        raise HubError(400, "This hub has no pull requests: push to main.")
    if revision not in (DEFAULT_REVISION, "refs/heads/main", "refs%2Fheads%2Fmain"):
        raise HubError(404, f"Invalid rev id: {revision} (pushes go to main)", "RevisionNotFound")


def _writable(request, owner: str, name: str):
    user = writer(request)
    with refusals_answered():
        return user, services.repository_for_write(user=user, owner=owner, name=name)


# --- Preupload -----------------------------------------------------------------------


@csrf_exempt
@require_POST
@hub_view
def preupload(request, owner: str, name: str, revision: str):
    """Large files go through LFS, the rest inline; ``oid`` lets the client skip unchanged ones."""
    _on_main(revision, request)
    _, repository = _writable(request, owner, name)
    current = services.repository_files(repository)
    answers = []
    for entry in json_body(request).get("files", []):
        path, size = str(entry.get("path", "")), entry.get("size") or 0
        if not isinstance(size, int):
            raise HubError(400, f"{path}: size must be a whole number of bytes.")
        mode = "lfs" if size >= settings.HUB_LFS_THRESHOLD_BYTES else "regular"
        stored = current.get(path)
        oid = None
        if stored is not None:
            oid = stored.sha256 if mode == "lfs" else _content_git_oid(stored)
        answers.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
    return JsonResponse({"files": answers, "commitOid": getattr(repository, "revision", None)})


def _content_git_oid(file) -> str | None:
    if file.size >= settings.HUB_LFS_THRESHOLD_BYTES:
        return None  # it changes mode, so it changed
    with storage.blob_open(file.storage_path) as stream:
        return _git_blob_oid(stream.read())


# --- LFS ---------------------------------------------------------------------------


def _staged_path(user_pk: int, sha256: str) -> Path:
    return Path(settings.FILE_UPLOAD_TEMP_DIR) / f"lfs-{user_pk}-{sha256}"


@csrf_exempt
@require_POST
@hub_view
def lfs_batch(request, owner: str, name: str):
    """The Git LFS batch API, basic transfer: a signed URL per file to upload."""
    user, repository = _writable(request, owner, name.removesuffix(".git"))
    body = json_body(request)
    if body.get("operation") != "upload":
        raise HubError(400, "Downloads are served by /resolve/, not by the LFS batch API.")
    objects = []
    for item in body.get("objects", []):
        oid, size = str(item.get("oid", "")), item.get("size")
        if not _SHA256.match(oid) or not isinstance(size, int) or size < 0:
            raise HubError(400, "Each LFS object needs its sha256 (oid) and size.")
        if size > settings.HUB_MAX_UPLOAD_BYTES:
            objects.append({"oid": oid, "size": size, "error": {"code": 413, "message": str(
                UploadTooLarge(settings.HUB_MAX_UPLOAD_BYTES).detail)}})  # fmt: skip
            continue
        if _history_file(repository, oid) is not None:
            # Already in this repository's history: nothing to send (the Hub's "present").
            objects.append({"oid": oid, "size": size})
            continue
        token = signing.dumps({"user": user.pk, "oid": oid, "size": size}, salt=_SIGNING_SALT)
        href = request.build_absolute_uri(f"/api/lfs-objects/{token}")
        objects.append(
            {
                "oid": oid,
                "size": size,
                "authenticated": True,
                "actions": {"upload": {"href": href}, "verify": {"href": href + "/verify"}},
            }
        )
    return JsonResponse({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})


def _signed_object(token: str) -> dict:
    try:
        return signing.loads(token, salt=_SIGNING_SALT, max_age=_UPLOAD_URL_MAX_AGE)
    except signing.BadSignature as exc:
        raise HubError(403, "This upload URL is not valid (or expired): push again.") from exc


@csrf_exempt
@require_http_methods(["PUT"])
@hub_view
def lfs_upload(request, token: str):
    """One LFS file, streamed to the upload folder and checked against its sha256 and size."""
    wanted = _signed_object(token)
    digest, received = hashlib.sha256(), 0
    handle, staging = tempfile.mkstemp(prefix="lfs-", dir=work_root())
    try:
        with os.fdopen(handle, "wb") as sink:
            while chunk := request.read(storage.CHUNK_BYTES):
                received += len(chunk)
                if received > wanted["size"]:
                    raise HubError(
                        400, f"The file is larger than the {wanted['size']} bytes announced."
                    )
                digest.update(chunk)
                sink.write(chunk)
        if received != wanted["size"] or digest.hexdigest() != wanted["oid"]:
            raise HubError(400, "The file received does not match the sha256 and size announced.")
        os.replace(staging, _staged_path(wanted["user"], wanted["oid"]))
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return JsonResponse({})


@csrf_exempt
@require_POST
@hub_view
def lfs_verify(request, token: str):
    wanted = _signed_object(token)
    staged = _staged_path(wanted["user"], wanted["oid"])
    if not staged.is_file() or staged.stat().st_size != wanted["size"]:
        raise HubError(404, f"The LFS object {wanted['oid']} was not received.")
    return JsonResponse({"message": "verified"})


@csrf_exempt
@hub_view
def xet_token(request, owner: str, name: str, **_):
    raise HubError(400, XET_REFUSED)


# --- Commits ------------------------------------------------------------------------


class _CommitReader:
    """The NDJSON body of a commit, read line by line: inline files go to ``work``."""

    def __init__(self, user, repository, work: Path):
        self.user, self.repository, self.work = user, repository, work
        self.header: dict = {}
        self.additions: dict[str, validation.LocalFile] = {}
        self.deletions: set[str] = set()
        self.staged: list[Path] = []
        self.inline_bytes = 0

    def read(self, request) -> None:
        # A line holds at most one inline file, base64 (4/3 of its size) in JSON.
        limit = settings.HUB_LFS_THRESHOLD_BYTES * 4 // 3 + 64 * 1024
        while line := request.readline(limit + 1):
            if len(line) > limit:
                raise HubError(413, "An inline file is too large: send it through LFS.")
            if line.strip():
                self._item(line)

    def _item(self, line: bytes) -> None:
        try:
            item = json.loads(line)
            key, value = item["key"], item["value"]
        except (ValueError, KeyError, TypeError) as exc:
            raise HubError(
                400, "Each line of a commit is a JSON object with key and value."
            ) from exc
        if key == "header":
            self.header = value
        elif key == "file":
            self._inline(str(value.get("path", "")), value.get("content", ""))
        elif key == "lfsFile":
            self._lfs(str(value.get("path", "")), str(value.get("oid", "")))
        elif key == "deletedFile":
            self.deletions.add(str(value.get("path", "")))
        else:
            raise HubError(400, f"This hub does not take {key} in a commit: a module is flat.")

    def _inline(self, path: str, content: str) -> None:
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise HubError(400, f"{path}: the content is not base64.") from exc
        self.inline_bytes += len(data)
        if self.inline_bytes > settings.HUB_MAX_UPLOAD_BYTES:
            raise HubError(413, str(UploadTooLarge(settings.HUB_MAX_UPLOAD_BYTES).detail))
        local = self.work / f"{len(self.additions)}-{hashlib.sha256(path.encode()).hexdigest()}"
        local.write_bytes(data)
        self.additions[path] = validation.hash_file(local)

    def _lfs(self, path: str, oid: str) -> None:
        if not _SHA256.match(oid):
            raise HubError(400, f"{path}: an LFS file needs its sha256 as oid.")
        staged = _staged_path(self.user.pk, oid)
        if staged.is_file():
            self.staged.append(staged)
            self.additions[path] = validation.hash_file(staged)
            return
        known = _known_blob(self.repository, oid)
        if known is None:
            raise HubError(400, f"{path}: the LFS object {oid} was not uploaded.")
        self.additions[path] = known


def _history_file(repository, oid: str) -> ModuleCommitFile | None:
    """A file of this repository's history with that content: pushing it needs no upload."""
    if not isinstance(repository, Module):
        return None
    return ModuleCommitFile.objects.filter(commit__module=repository, sha256=oid).first()


def _known_blob(repository, oid: str) -> validation.LocalFile | None:
    file = _history_file(repository, oid)
    if file is None:
        return None
    path = storage.blob_local_path(name=file.storage_path, sha256=oid)
    return validation.LocalFile(path=path, size=file.size, sha256=oid)


@csrf_exempt
@require_POST
@hub_view
def commit(request, owner: str, name: str, revision: str):
    """``create_commit`` (and ``upload_file``, ``upload_folder``, ``delete_file``…)."""
    _on_main(revision, request)
    user, repository = _writable(request, owner, name)
    with tempfile.TemporaryDirectory(prefix="commit-", dir=work_root()) as work:
        reader = _CommitReader(user, repository, Path(work))
        try:
            reader.read(request)
            header = reader.header
            changes = services.PushedChanges(
                additions=reader.additions,
                deletions=frozenset(reader.deletions),
                message=str(header.get("summary") or "Push through the Hub protocol"),
                description=str(header.get("description") or ""),
                parent=header.get("parentCommit"),
            )
            with refusals_answered():
                pushed = services.repository_push(user=user, repository=repository, changes=changes)
        finally:
            for staged in reader.staged:
                staged.unlink(missing_ok=True)
    url = request.build_absolute_uri(f"/{owner}/{name}/commit/{pushed.commit_id}")
    return JsonResponse(
        {"success": True, "commitOid": pushed.commit_id, "commitUrl": url, "pullRequestUrl": None}
    )
