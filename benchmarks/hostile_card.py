"""What one hostile model card costs the Hub-protocol endpoints.

    python benchmarks/hostile_card.py [--levels 7] [--modules 20] [--repeat 3]

Starts the hub's real web server (gunicorn, one worker) on a loopback port
with its own state folder (SQLite), registers ``--modules`` ordinary module
rows and one whose README.md is a YAML alias bomb ("billion laughs": each
level is a list of nine aliases to the level below, so ``--levels 7`` is a
card of about 500 bytes that stands for 4.8 million strings). The rows are
written directly, as rows stored before the hub refused such cards would
be. It then times ``GET /api/models`` (what ``HfApi.list_models`` sends),
the same with ``full=true``, and the hostile module's ``/api/models/{id}``,
printing the seconds, the size of each answer and the worker's peak memory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.registry_upload_memory import PeakSampler  # noqa: E402
from hubsite.processes import web_command  # noqa: E402
from tests.servers import free_port, wait_for_http  # noqa: E402

MiB = 1024 * 1024


def alias_bomb(levels: int, width: int = 9, leaf: str = "lol" * 4) -> str:
    """A README whose front matter nests ``levels`` lists of ``width`` aliases each."""
    lines = ["---", "license: mit", f"l0: &l0 [{', '.join([leaf] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join([*lines, "---", "", "# Nothing to see", ""])


def prepare_state(env: dict, card: str, modules: int) -> None:
    """Migrate the state folder's database and write the module rows directly."""
    script = f"""
import django; django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from modules.models import BaseModel, Module, ModuleFile
user = get_user_model().objects.create_user("bench", password="bench-pass-phrase")
base = BaseModel.objects.create(
    identifier="bench/tiny", family="llama", task_type="CAUSAL_LM", hidden_size=64,
    num_layers=2, parameter_count=10**6, weights_location="bench/tiny",
    linear_shapes={{"q_proj": [[64, 64]]}},
)
cards = {{f"plain-{{i}}": "---\\nlicense: mit\\n---\\n# Plain\\n" for i in range({modules})}}
cards["hostile"] = {card!r}
for name, card in cards.items():
    module = Module.objects.create(
        owner=user, name=name, base_model=base, card=card, r=4, lora_alpha=8,
        target_modules=["q_proj"], task_type="CAUSAL_LM", adapter_config={{}},
        parameter_count=512, total_size=len(card), license="mit",
        download_count=10 if name == "hostile" else 0,
    )
    ModuleFile.objects.create(
        module=module, filename="README.md", size=len(card), sha256=f"{{module.pk:064d}}",
        storage_path=f"blobs/none/{{module.pk}}",
    )
"""
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True)


def timed_get(url: str, worker: psutil.Process) -> tuple[float, int, int, float]:
    """Seconds, HTTP status, bytes of the answer and the worker's peak RSS while answering."""
    sampler = PeakSampler(worker)
    sampler.start()
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=600) as response:
            status, size = response.status, len(response.read())
    except urllib.error.HTTPError as error:
        status, size = error.code, len(error.read())
    elapsed = time.perf_counter() - started
    sampler.running = False
    sampler.join()
    return elapsed, status, size, sampler.peak / MiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", type=int, default=7, help="nesting levels of the bomb")
    parser.add_argument("--modules", type=int, default=20, help="ordinary modules beside it")
    parser.add_argument("--repeat", type=int, default=3, help="requests per endpoint")
    args = parser.parse_args()

    card = alias_bomb(args.levels)
    work = Path(tempfile.mkdtemp(prefix="lorahub-card-bench-"))
    server = None
    try:
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STORAGE_BACKEND")},
            "DJANGO_SETTINGS_MODULE": "hubsite.settings",
            "HUB_VAR_DIR": str(work / "var"),
            "CELERY_BROKER_URL": "filesystem://localhost/",
        }
        prepare_state(env, card, args.modules)
        port = free_port()
        server = subprocess.Popen(
            web_command(f"127.0.0.1:{port}", workers=1),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/healthz", timeout=60)
        [worker] = psutil.Process(server.pid).children()

        print(f"Hostile README.md: {len(card.encode())} bytes, {args.levels} levels of 9 aliases;")
        print(f"{args.modules} ordinary modules beside it; gunicorn, 1 worker, on loopback\n")
        print(f"{'request':<40} {'status':>6} {'seconds':>8} {'bytes':>12} {'peak RSS MiB':>13}")
        for path in ("/api/models", "/api/models?full=true", "/api/models/bench/hostile"):
            for _ in range(args.repeat):
                elapsed, status, size, peak = timed_get(url + path, worker)
                print(f"{path:<40} {status:>6} {elapsed:>8.2f} {size:>12,} {peak:>13.0f}")
        return 0
    finally:
        if server is not None:
            os.killpg(server.pid, 15)
            server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
