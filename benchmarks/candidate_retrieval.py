"""Choosing candidates among many modules: fingerprint retrieval against forward-pass preselection.

1. Speed, on the real SmolLM2-135M with 1,000 synthetic rank-16 q/v modules:
   the time to rank all of them by retrieval (fingerprints decoded from their
   stored bytes, one forward pass over the examples, scoring), against the
   single-module loss preselection (one forward pass per candidate), timed on
   a sample and extrapolated to 1,000. Also the fingerprint's cost at upload
   and its size.
2. Quality, on the trained starter modules and a few BBH tasks: keep k of them
   by retrieval, by loss alone, or at random, compose the kept ones, and
   compare the loss on the shots and on held-out examples of the task.

    .venv/bin/python benchmarks/candidate_retrieval.py [--modules 1000] [--sample 24]
        [--tasks 4] [--keep 10] [--steps 20] [--skip-quality]

Timings on a shared machine vary: compare the ratio, measured in one run.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from composition.engine.adapters import AdapterCache, LoraAdapter  # noqa: E402
from composition.engine.compose import CompositionRequest, compose  # noqa: E402
from composition.engine.fingerprints import Fingerprint, fingerprint_adapter  # noqa: E402
from composition.engine.loading import BaseModelCache  # noqa: E402
from composition.engine.lora import ComposedLora  # noqa: E402
from composition.engine.objective import Objective  # noqa: E402
from composition.engine.retrieval import retrieve  # noqa: E402
from composition.engine.selection import score_modules  # noqa: E402
from composition.engine.types import (  # noqa: E402
    CAUSAL_LM,
    AdapterRef,
    CompositionSettings,
    Example,
    ModelRef,
)

SMOLLM2 = ROOT / "var" / "models" / "HuggingFaceTB--SmolLM2-135M-Instruct"
BASE = ModelRef("HuggingFaceTB/SmolLM2-135M-Instruct", SMOLLM2, CAUSAL_LM)
STARTER = ROOT / "modules" / "starter"
TASKS = ("date_understanding", "boolean_expressions", "sports_understanding", "navigate")
SHOTS, HELDOUT = 5, 20


def task_examples(task: str) -> tuple[list[Example], list[Example]]:
    rows = (ROOT / "data" / "bbh" / f"{task}.jsonl").read_text().splitlines()
    examples = [Example(**json.loads(row)) for row in rows]
    return examples[:SHOTS], examples[SHOTS : SHOTS + HELDOUT]


def synthetic_adapter(template: LoraAdapter, seed: int) -> LoraAdapter:
    """``template``'s layout (starter modules: r = 16 on q_proj, v_proj), random weights."""
    generator = torch.Generator().manual_seed(seed)
    layers = {
        path: (
            torch.randn(a.shape, generator=generator) * 0.02,
            torch.randn(b.shape, generator=generator) * 0.02,
        )
        for path, (a, b) in template.layers.items()
    }
    return LoraAdapter(f"synthetic/{seed}", template.config, layers)


def bench_speed(count: int, sample: int) -> dict:
    models = BaseModelCache()
    loaded, _ = models.get(BASE, "cpu")
    template = AdapterCache().get(AdapterRef("template", next(iter(starter_modules()))))
    shots, _ = task_examples(TASKS[0])

    started = time.perf_counter()
    stored = [fingerprint_adapter(synthetic_adapter(template, i)).to_bytes() for i in range(count)]
    fingerprint_s = (time.perf_counter() - started) / count

    retrieval_runs = []
    for _ in range(3):
        started = time.perf_counter()
        named = [(f"synthetic/{i}", Fingerprint.from_bytes(data)) for i, data in enumerate(stored)]
        decoded = time.perf_counter()
        with loaded.lock:
            ranking = retrieve(loaded, BASE, named, shots)
        retrieval_runs.append(
            {
                "decode_s": decoded - started,
                "activations_s": ranking.activation_seconds,
                "score_s": ranking.score_seconds,
                "total_s": time.perf_counter() - started,
            }
        )
    retrieval = min(retrieval_runs, key=lambda run: run["total_s"])

    sources = [synthetic_adapter(template, count + i) for i in range(sample)]
    with loaded.lock, torch.inference_mode():
        score_modules(loaded, BASE, sources[:4], shots)  # warm-up
        started = time.perf_counter()
        score_modules(loaded, BASE, sources, shots)
        sample_s = time.perf_counter() - started
    # One pass for the base model's reference loss rides along with the sample.
    forward_s = sample_s / (sample + 1) * (count + 1)
    return {
        "modules": count,
        "fingerprint_bytes": len(stored[0]),
        "fingerprint_ms": fingerprint_s * 1000,
        "retrieval": retrieval,
        "sample": sample,
        "sample_s": sample_s,
        "forward_s": forward_s,
    }


def starter_modules() -> list[Path]:
    return sorted(p for p in STARTER.iterdir() if (p / "adapter_model.safetensors").exists())


def heldout_loss(loaded, result, adapters: AdapterCache, folders: dict, heldout) -> float:
    sources = [adapters.get(AdapterRef(name, folders[name])) for name in result.module_names]
    composed = ComposedLora(loaded.model, sources, loaded.device, loaded.dtype)
    with composed, torch.inference_mode():
        objective = Objective(loaded, composed, heldout, CAUSAL_LM)
        [evaluation] = objective(np.array([result.weights]))
    return evaluation.loss * len(heldout)  # mean loss per target token


def bench_quality(tasks: int, keep: int, steps: int) -> dict:
    models, adapters = BaseModelCache(), AdapterCache()
    loaded, _ = models.get(BASE, "cpu")
    folders = {p.name: p for p in starter_modules()}
    refs = tuple(AdapterRef(name, path) for name, path in folders.items())
    fingerprints = {ref.name: fingerprint_adapter(adapters.get(ref)) for ref in refs}
    methods = ("retrieval", "loss", "random")
    rows = []
    for task in TASKS[:tasks]:
        shots, heldout = task_examples(task)
        row: dict = {"task": task}
        for method in methods:
            if method == "random":
                candidates = tuple(random.Random(0).sample(list(refs), keep))
                settings = CompositionSettings(steps=steps, device="cpu")
            else:
                candidates = refs
                settings = CompositionSettings(
                    steps=steps, device="cpu", preselect=keep, preselect_method=method
                )
            request = CompositionRequest(
                BASE, candidates, tuple(shots), settings=settings, fingerprints=fingerprints
            )
            result = compose(request, models=models, adapters=adapters)
            row[method] = {
                "shots_loss": result.best_loss * len(shots),
                "heldout_loss": heldout_loss(loaded, result, adapters, folders, heldout),
                "select_s": result.timings.select_seconds,
            }
        rows.append(row)
    return {"keep": keep, "of": len(refs), "steps": steps, "rows": rows, "methods": methods}


def print_speed(figures: dict) -> None:
    r = figures["retrieval"]
    print(f"\nRanking {figures['modules']:,} modules on SmolLM2-135M (CPU, {SHOTS} shots)")
    print(
        f"  fingerprint: {figures['fingerprint_bytes'] / 1024:.1f} KiB per module (float16), "
        f"{figures['fingerprint_ms']:.1f} ms to compute at upload"
    )
    print(
        f"  retrieval:   {r['total_s']:.2f} s  (decode {r['decode_s']:.2f} s, "
        f"activations {r['activations_s']:.2f} s, scoring {r['score_s']:.2f} s)"
    )
    print(
        f"  forward-pass preselection: {figures['forward_s']:.1f} s  "
        f"(extrapolated from {figures['sample']} candidates in {figures['sample_s']:.2f} s)"
    )
    print(f"  ratio: retrieval is {figures['forward_s'] / r['total_s']:.0f}× faster")


def print_quality(figures: dict) -> None:
    print(
        f"\nKeeping {figures['keep']} of {figures['of']} starter modules, then composing "
        f"({figures['steps']} NGOpt steps): mean target-token loss, shots / held-out "
        f"({HELDOUT} examples); lower is better"
    )
    header = "  task".ljust(34) + "".join(m.rjust(22) for m in figures["methods"])
    print(header)
    for row in figures["rows"]:
        cells = "".join(
            f"{row[m]['shots_loss']:.3f} / {row[m]['heldout_loss']:.3f}".rjust(22)
            for m in figures["methods"]
        )
        print(f"  {row['task']}".ljust(34) + cells)
    for measure in ("shots_loss", "heldout_loss", "select_s"):
        means = "".join(
            f"{statistics.mean(row[m][measure] for row in figures['rows']):.3f}".rjust(22)
            for m in figures["methods"]
        )
        print(f"  mean {measure}".ljust(34) + means)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=24)
    parser.add_argument("--tasks", type=int, default=len(TASKS))
    parser.add_argument("--keep", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    if not args.skip_speed:
        print_speed(bench_speed(args.modules, args.sample))
    if not args.skip_quality:
        print_quality(bench_quality(args.tasks, args.keep, args.steps))


if __name__ == "__main__":
    main()
