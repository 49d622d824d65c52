"""Cold and warm composition jobs through a running hub: API → broker → worker.

    .venv/bin/python benchmarks/job_timings.py --url http://127.0.0.1:8000 --token TOKEN
        [--modules 20] [--steps 40] [--task sports_understanding] [--jobs 2] [--fill-random]

Submits the same composition (``--modules`` modules of the embedded SmolLM2,
5 examples of a Big-Bench Hard task, ``--steps`` NGOpt steps, 20 held-out
examples) ``--jobs`` times in a row and prints what each job row recorded:
warm or cold start, seconds loading, optimising and evaluating, and the
wall time from submission to the end. Start the hub fresh before the run
(``make run``) so the first job finds the worker's model cache empty.

When the registry holds fewer compatible modules than asked for,
``--fill-random`` uploads random SmolLM2-shaped rank-16 modules (private, as
``<you>/timing-filler-NN``) to make up the number: timings do not depend on
trained weights. Without it, the run uses the modules there are.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_DIR = ROOT / "var" / "models" / "HuggingFaceTB--SmolLM2-135M-Instruct"
FINAL = {"succeeded", "failed", "cancelled"}


class Hub:
    def __init__(self, url: str, token: str):
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def get(self, path: str, **params) -> dict:
        response = self.session.get(f"{self.url}{path}", params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, **kwargs) -> dict:
        response = self.session.post(f"{self.url}{path}", timeout=120, **kwargs)
        if response.status_code >= 400:
            sys.exit(f"POST {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def modules(self) -> list[str]:
        names, page = [], 1
        while True:
            data = self.get("/api/v1/modules/", base_model=BASE_MODEL, page=page, sort="newest")
            names += [row["full_name"] for row in data["results"]]
            if not data.get("next"):
                return names
            page += 1


def task_examples(task: str) -> tuple[list[dict], list[dict]]:
    rows = [json.loads(line) for line in (ROOT / "data" / "bbh" / f"{task}.jsonl").open()]
    return rows[:5], rows[5:25]


def upload_random_modules(hub: Hub, count: int) -> list[str]:
    sys.path.insert(0, str(ROOT))
    from composition.engine.synthetic import build_loras

    with tempfile.TemporaryDirectory() as tmp:
        stamp = int(time.time())
        folders = [Path(tmp) / f"timing-filler-{stamp}-{i:02d}" for i in range(count)]
        build_loras(
            SMOLLM2_DIR, folders, seeds=list(range(100, 100 + count)), task_type="CAUSAL_LM",
            targets=("q_proj", "v_proj"), rank=16, alpha=32, base_id=BASE_MODEL, std=0.02,
        )  # fmt: skip
        names = []
        for folder in folders:
            files = [
                ("files", (name, (folder / name).read_bytes()))
                for name in ("adapter_config.json", "adapter_model.safetensors")
            ]
            data = {"name": folder.name, "base_model": BASE_MODEL, "visibility": "private"}
            created = hub.post("/api/v1/modules/", data=data, files=files)
            names.append(created["full_name"])
            print(f"  uploaded {created['full_name']}")
        return names


def run_job(hub: Hub, modules: list[str], steps: int, task: str) -> dict:
    examples, heldout = task_examples(task)
    payload = {
        "base_model": BASE_MODEL,
        "modules": modules,
        "examples": examples,
        "heldout": heldout,
        "steps": steps,
        "optimizer": "NGOpt",
        "seed": 0,
        "name": f"timing-{task}-{int(time.time())}",
    }
    started = time.perf_counter()
    job = hub.post("/api/v1/compositions/", json=payload)
    last_step = -1
    while job["status"] not in FINAL:
        time.sleep(1)
        job = hub.get(f"/api/v1/compositions/{job['id']}/")
        if job["current_step"] != last_step:
            last_step = job["current_step"]
            print(f"  job {job['id']}: {job['status']} step {last_step}/{steps}", end="\r")
    job["wall_seconds"] = time.perf_counter() - started
    print()
    if job["status"] != "succeeded":
        sys.exit(f"job {job['id']} ended {job['status']}: {job.get('error_message')}")
    return job


def queue_seconds(job: dict) -> float:
    created = datetime.fromisoformat(job["created_at"])
    started = datetime.fromisoformat(job["started_at"])
    return (started - created).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True)
    parser.add_argument("--modules", type=int, default=20)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--task", default="sports_understanding")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--fill-random", action="store_true")
    args = parser.parse_args()

    hub = Hub(args.url, args.token)
    modules = hub.modules()[: args.modules]
    missing = args.modules - len(modules)
    if missing > 0 and args.fill_random:
        print(f"{len(modules)} compatible modules; uploading {missing} random ones")
        modules += upload_random_modules(hub, missing)
    elif missing > 0:
        print(f"only {len(modules)} compatible modules; composing those")

    rows = []
    for number in range(1, args.jobs + 1):
        print(f"job {number}/{args.jobs}: {len(modules)} modules, {args.steps} steps")
        rows.append(run_job(hub, modules, args.steps, args.task))

    print(f"\n{len(modules)} modules, {args.steps} NGOpt steps, 5 examples, 20 held out")
    print("  job   start   queued s   load s   optimise s   evaluate s   wall s   s/step")
    for job in rows:
        t = job["timings"]
        start = "warm" if t["warm_start"] else "cold"
        print(
            f"  {job['id']:<5} {start:<6} {queue_seconds(job):8.1f}  {t['load_seconds']:7.1f}  "
            f"{t['optimize_seconds']:10.1f}  {t['evaluate_seconds']:10.1f}  "
            f"{job['wall_seconds']:7.1f}  {t['optimize_seconds'] / args.steps:6.2f}"
        )
    job = rows[-1]
    print(f"  held-out accuracy {job['accuracy']} (zero-shot {job['zero_shot_accuracy']})")


if __name__ == "__main__":
    main()
