"""Memory of the web server while it receives a 1 GiB adapter upload.

    python benchmarks/registry_upload_memory.py [--gib 1.0]

Starts the hub's real web server (waitress, as ``manage.py runhub`` starts
it) on a loopback port with its own state folder (SQLite,
local storage), writes a valid LoRA adapter whose safetensors file is 1 GiB,
uploads it through the REST API as a streamed multipart request, and samples
the server's resident memory every 20 ms. Prints the server's RSS before the
upload, its peak during it, and the growth, which must stay under 100 MB.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hubsite.processes import web_command  # noqa: E402
from tests.servers import free_port, wait_for_http  # noqa: E402

MiB = 1024 * 1024
LIMIT_MB = 100
BASE_MODEL = "bench/wide-model"
HIDDEN = 8192
TARGETS = ("q_proj", "v_proj")


def write_adapter(folder: Path, *, rank: int, layers: int) -> Path:
    """A PEFT adapter folder whose weights are written in chunks, never held in memory."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank, "task_type": "CAUSAL_LM",
        "target_modules": list(TARGETS), "base_model_name_or_path": BASE_MODEL,
    }  # fmt: skip
    (folder / "adapter_config.json").write_text(json.dumps(config))
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for layer in range(layers):
        for target in TARGETS:
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{target}"
            for kind, shape in (("A", [rank, HIDDEN]), ("B", [HIDDEN, rank])):
                size = shape[0] * shape[1] * 4
                header[f"{prefix}.lora_{kind}.weight"] = {
                    "dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size],
                }  # fmt: skip
                offset += size
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    block = os.urandom(MiB)
    with (folder / "adapter_model.safetensors").open("wb") as sink:
        sink.write(len(encoded).to_bytes(8, "little") + encoded)
        remaining = offset
        while remaining:
            chunk = block[: min(MiB, remaining)]
            sink.write(chunk)
            remaining -= len(chunk)
    return folder


def multipart_parts(fields: dict[str, str], files: list[Path], boundary: str):
    """The request body as (bytes or file path) parts, and its total length."""
    parts: list[bytes | Path] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    for path in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        )
        parts.append(path)
        parts.append(b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    length = sum(p.stat().st_size if isinstance(p, Path) else len(p) for p in parts)
    return parts, length


def upload(port: int, token: str, name: str, folder: Path) -> tuple[int, dict, float]:
    boundary = "lorahub-benchmark-boundary"
    files = [folder / "adapter_config.json", folder / "adapter_model.safetensors"]
    parts, length = multipart_parts({"name": name, "base_model": BASE_MODEL}, files, boundary)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    connection.putrequest("POST", "/api/v1/modules/")
    connection.putheader("Authorization", f"Token {token}")
    connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    connection.putheader("Content-Length", str(length))
    connection.endheaders()
    for part in parts:
        if isinstance(part, Path):
            with part.open("rb") as stream:
                while chunk := stream.read(MiB):
                    connection.send(chunk)
        else:
            connection.send(part)
    response = connection.getresponse()
    body = json.loads(response.read() or b"{}")
    connection.close()
    return response.status, body, time.perf_counter() - started


def prepare_state(var_dir: Path, env: dict) -> str:
    """Migrate the state folder's database; create a user, its token and the base model."""
    script = f"""
import django; django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from modules.models import BaseModel
user = get_user_model().objects.create_user("bench", password="bench-pass-phrase")
BaseModel.objects.create(
    identifier="{BASE_MODEL}", family="llama", task_type="CAUSAL_LM", hidden_size={HIDDEN},
    num_layers=64, parameter_count=10**10, weights_location="{BASE_MODEL}",
    linear_shapes={{t: [[{HIDDEN}, {HIDDEN}]] for t in {list(TARGETS)!r}}},
)
print(Token.objects.create(user=user).key)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


class PeakSampler(threading.Thread):
    def __init__(self, process: psutil.Process, interval: float = 0.02):
        super().__init__(daemon=True)
        self.process, self.interval = process, interval
        self.peak = process.memory_info().rss
        self.running = True

    def run(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=1.0, help="size of the weights file")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lorahub-upload-bench-"))
    server = None
    try:
        var_dir = work / "var"
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STORAGE_BACKEND")},
            "DJANGO_SETTINGS_MODULE": "hubsite.settings",
            "HUB_VAR_DIR": str(var_dir),
            "CELERY_BROKER_URL": "filesystem://localhost/",
        }
        token = prepare_state(var_dir, env)
        # rank 256 over 32 layers of two 8192-wide projections is 1 GiB of F32.
        layers = max(1, round(32 * args.gib))
        print(f"Writing a {args.gib:g} GiB adapter …")
        big = write_adapter(work / "big", rank=256, layers=layers)
        small = write_adapter(work / "small", rank=1, layers=1)
        size = (big / "adapter_model.safetensors").stat().st_size

        port = free_port()
        server = subprocess.Popen(
            web_command(f"127.0.0.1:{port}"),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        web = psutil.Process(server.pid)

        # A small upload first, so the code an upload runs is loaded before measuring.
        status, body, _ = upload(port, token, "warm-up", small)
        assert status == 201, body
        time.sleep(0.5)
        baseline = web.memory_info().rss

        sampler = PeakSampler(web)
        sampler.start()
        status, body, elapsed = upload(port, token, "one-gib", big)
        sampler.running = False
        sampler.join()
        if status != 201:
            print(f"upload failed: HTTP {status} {body}")
            return 1

        growth = (sampler.peak - baseline) / MiB
        print()
        print(f"Upload of adapter_model.safetensors, {size / 2**30:.2f} GiB, through the "
              f"embedded web server on loopback")  # fmt: skip
        weights = next(f for f in body["files"] if f["filename"] == "adapter_model.safetensors")
        print(f"  HTTP {status}: {body['full_name']}, {body['parameter_count']:,} parameters, "
              f"sha256 {weights['sha256'][:16]}… in {elapsed:.1f} s "
              f"({size / MiB / elapsed:.0f} MiB/s)")  # fmt: skip
        print(f"  server RSS before {baseline / MiB:7.1f} MiB")
        print(f"  server RSS peak   {sampler.peak / MiB:7.1f} MiB")
        print(f"  growth            {growth:7.1f} MiB (limit {LIMIT_MB} MB)")
        ok = growth * MiB < LIMIT_MB * 1000 * 1000
        print(f"  {'under' if ok else 'OVER'} the limit")
        return 0 if ok else 1
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
