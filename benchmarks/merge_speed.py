"""Time of one search step by merge: LoraHub's against the exact merge's two forms.

A search step is one ``Objective`` call: merge the candidate weights into the
model, then one forward + loss pass over the examples. Same model, modules,
examples and weight vectors for every merge; the merges take turns over
``--rounds`` rounds (in reverse order every other round) and the median per
merge is kept, so the machine's drift does not pass for a difference. The
ratio is to the LoraHub merge measured in the same run.

    .venv/bin/python benchmarks/merge_speed.py [--modules 20] [--steps 10] [--rounds 3]
        [--examples 5] [--population 1] [--skip-t5]

SmolLM2-135M (causal, q_proj/v_proj, rank 16) and a t5-base-shaped model
(random weights, q/v) are timed; trained weights are not needed for timings.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.engine_speed import SMOLLM2, T5_SHAPES, bbh_examples  # noqa: E402
from composition.engine.adapters import load_adapter  # noqa: E402
from composition.engine.exact import DENSE, FACTORED, ExactLora  # noqa: E402
from composition.engine.loading import load_model  # noqa: E402
from composition.engine.lora import ComposedLora, MergedLora  # noqa: E402
from composition.engine.objective import Objective  # noqa: E402
from composition.engine.synthetic import build_loras, build_tiny_t5  # noqa: E402
from composition.engine.types import CAUSAL_LM, SEQ_2_SEQ_LM, AdapterRef, ModelRef  # noqa: E402

MERGES = ("lorahub", f"exact {FACTORED}", f"exact {DENSE}")


def make_merge(label: str, model, sources, loaded, population: int) -> MergedLora:
    args = (model, sources, loaded.device, loaded.dtype, population)
    if label == "lorahub":
        return ComposedLora(*args)
    return ExactLora(*args, form=label.split()[1])


@torch.inference_mode()
def step_seconds(base: ModelRef, folders: list[Path], args: argparse.Namespace) -> dict:
    """Median seconds per search step, and per merge alone (``set_weights``), by merge."""
    loaded = load_model(base, torch.device("cpu"), torch.float32)
    sources = [load_adapter(AdapterRef(f.name, f)) for f in folders]
    examples = bbh_examples(count=args.examples)
    rng = np.random.default_rng(0)
    candidates = rng.uniform(-1.5, 1.5, (args.steps, args.population, len(sources)))
    merges = {label: make_merge(label, loaded.model, sources, loaded, args.population)
              for label in MERGES}  # fmt: skip
    samples: dict[str, list[float]] = {label: [] for label in MERGES}
    merge_only: dict[str, list[float]] = {label: [] for label in MERGES}
    for round_number in range(args.rounds + 1):  # round 0 warms up
        order = MERGES if round_number % 2 == 0 else MERGES[::-1]
        for label in order:
            composed = merges[label]
            with composed:
                objective = Objective(loaded, composed, examples, base.task_type, l1=0.05)
                objective(candidates[0])
                started = time.perf_counter()
                for weights in candidates:
                    objective(weights)
                elapsed = time.perf_counter() - started
                started = time.perf_counter()
                for weights in candidates:
                    composed.set_weights(torch.tensor(weights))
                merged = time.perf_counter() - started
            if round_number:
                samples[label].append(elapsed / args.steps)
                merge_only[label].append(merged / args.steps)
    return {
        label: (statistics.median(samples[label]), statistics.median(merge_only[label]))
        for label in MERGES
    }


def print_table(name: str, figures: dict, args: argparse.Namespace) -> None:
    print(
        f"\n{name}: {args.modules} modules, {args.examples} examples, population "
        f"{args.population}, median of {args.rounds} rounds of {args.steps} steps"
    )
    print("  merge              ms / step   vs lorahub   merge alone ms")
    baseline = figures["lorahub"][0]
    for label, (step, merge) in figures.items():
        print(f"  {label:<18} {step * 1e3:9.1f}   {step / baseline:8.2f}×   {merge * 1e3:10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--examples", type=int, default=5)
    parser.add_argument("--population", type=int, default=1)
    parser.add_argument("--skip-t5", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch threads: {torch.get_num_threads()} (a shared machine: compare the ratios)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        seeds = list(range(args.modules))
        folders = [work / "smollm2" / f"m{i:02d}" for i in seeds]
        build_loras(SMOLLM2, folders, seeds=seeds, task_type=CAUSAL_LM,
                    targets=("q_proj", "v_proj"), rank=16, alpha=32, std=0.02,
                    base_id="HuggingFaceTB/SmolLM2-135M-Instruct")  # fmt: skip
        base = ModelRef("HuggingFaceTB/SmolLM2-135M-Instruct", SMOLLM2, CAUSAL_LM)
        print_table("SmolLM2-135M", step_seconds(base, folders, args), args)
        if not args.skip_t5:
            t5_dir = build_tiny_t5(work / "t5-base", vocab_size=32128, **T5_SHAPES["t5-base"])
            folders = [work / "t5" / f"m{i:02d}" for i in seeds]
            build_loras(t5_dir, folders, seeds=seeds, task_type=SEQ_2_SEQ_LM, targets=("q", "v"),
                        rank=16, alpha=32, std=0.02, base_id="t5-base")  # fmt: skip
            t5 = ModelRef("t5-base", t5_dir, SEQ_2_SEQ_LM)
            print_table("t5-base shape", step_seconds(t5, folders, args), args)


if __name__ == "__main__":
    main()
