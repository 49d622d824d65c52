"""Stored blobs are whole or absent, and a damaged one is never trusted again.

The live test kills a real gunicorn worker with SIGKILL in the middle of the
copy of an upload into storage, then uploads the same weights again and
downloads them: the bytes served must be the bytes uploaded.
"""

import contextlib
import hashlib
import logging
import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from hubsite.storages import STAGING_SUFFIX
from modules.services import module_import_folder
from modules.storage import blob_path
from modules.validation import ADAPTER_CONFIG, MODEL_CARD, SAFETENSORS_WEIGHTS
from tests.hub_server import running_hub_process
from tests.modules.adapters import widen_adapter

# About 235 MB of weights: a copy that lasts long enough to be interrupted.
WIDE_RANK = 131_072


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def upload(hub: str, token: str, folder: Path, name: str) -> requests.Response:
    files = [
        ("files", (filename, (folder / filename).read_bytes()))
        for filename in (ADAPTER_CONFIG, SAFETENSORS_WEIGHTS, MODEL_CARD)
        if (folder / filename).exists()
    ]
    return requests.post(
        f"{hub}/api/v1/modules/",
        data={"name": name, "base_model": "acme/tiny-llama"},
        files=files,
        headers={"Authorization": f"Bearer {token}"},
        timeout=300,
    )


def kill_worker_while_copying(master_pid: int, blob_dir: Path, sha256: str, size: int) -> int:
    """SIGKILL the web worker once part of the blob ``sha256`` is on disk; returns bytes seen.

    The worker is stopped (SIGSTOP) the moment a file of that content shows up
    in its blob folder, so that what it wrote can be measured before it dies.
    """
    worker = psutil.Process(master_pid).children()[0]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            entries = [entry for entry in os.scandir(blob_dir) if sha256 in entry.name]
        except FileNotFoundError:
            entries = []
        if entries:
            worker.send_signal(signal.SIGSTOP)
            written = max(entry.stat().st_size for entry in entries)
            worker.send_signal(signal.SIGKILL)
            assert written < size, "the copy finished before the worker could be killed"
            return written
        time.sleep(0.0005)
    raise TimeoutError("the upload never reached the copy into storage")


@pytest.mark.slow
def test_a_worker_killed_mid_copy_leaves_no_bad_blob_and_the_reupload_is_byte_exact(
    transactional_db, user, base_model, make_adapter, isolated_files, tmp_path, settings
):
    folder = widen_adapter(make_adapter(), WIDE_RANK)
    weights = folder / SAFETENSORS_WEIGHTS
    sha256, size = sha256_of(weights), weights.stat().st_size
    address = isolated_files / blob_path(sha256)
    token = Token.objects.create(user=user).key

    with running_hub_process(
        media_root=isolated_files, log=tmp_path / "hub.log", production=True
    ) as (hub, master):
        interrupted = threading.Thread(target=_upload_ignoring_reset, args=(hub, token, folder))
        interrupted.start()
        written = kill_worker_while_copying(master.pid, address.parent, sha256, size)
        interrupted.join(timeout=60)

        left_at_address = address.stat().st_size if address.exists() else None
        response = _retry_until_served(lambda: upload(hub, token, folder, "wide"))
        assert response.status_code == 201, response.text
        served = hashlib.sha256()
        with requests.get(
            f"{hub}/ada/wide/resolve/main/{SAFETENSORS_WEIGHTS}", stream=True, timeout=120
        ) as download:
            download.raise_for_status()
            for chunk in download.iter_content(1024 * 1024):
                served.update(chunk)

    assert 0 <= written < size
    assert served.hexdigest() == sha256, f"served other bytes; {left_at_address=} of {size}"
    assert left_at_address in (None, size), "a fragment sat at the address after the crash"
    assert sha256_of(address) == sha256
    # What the killed worker left behind is removed by the clean-up.
    assert debris(settings, isolated_files) != []
    call_command("remove_debris", "--max-age", "0")
    assert debris(settings, isolated_files) == []


def debris(settings, media: Path) -> list[Path]:
    uploads = list(Path(settings.FILE_UPLOAD_TEMP_DIR).iterdir())
    return uploads + list(media.rglob(f"*{STAGING_SUFFIX}"))


def _upload_ignoring_reset(hub: str, token: str, folder: Path) -> None:
    # The worker serving it is killed: the connection breaks.
    with contextlib.suppress(requests.ConnectionError):
        upload(hub, token, folder, "wide")


def _retry_until_served(send, attempts: int = 60):
    """The master starts a new worker after the kill; wait until one answers."""
    for _ in range(attempts):
        try:
            return send()
        except requests.ConnectionError:
            time.sleep(0.5)
    return send()


# --- A damaged blob found at upload ------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: bytes(len(data)), id="same-size-other-bytes"),
    ],
)
def test_a_damaged_blob_is_replaced_by_the_next_upload_and_logged(
    user, base_model, adapter_dir, isolated_files, caplog, damage
):
    weights = adapter_dir / SAFETENSORS_WEIGHTS
    sha256 = sha256_of(weights)
    address = isolated_files / blob_path(sha256)
    address.parent.mkdir(parents=True)
    address.write_bytes(damage(weights.read_bytes()))

    with caplog.at_level(logging.ERROR, logger="modules.storage"):
        module = module_import_folder(
            owner=user, name="repaired", folder=adapter_dir, base_model=base_model
        )

    assert address.read_bytes() == weights.read_bytes()
    assert module.files.get(filename=SAFETENSORS_WEIGHTS).sha256 == sha256
    assert any("damaged" in record.getMessage() for record in caplog.records)
    assert not [p for p in address.parent.iterdir() if p != address], "staging files left"
