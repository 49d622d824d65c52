"""Speed of the composition engine against the LoraHub reference and a lower bound.

One run, one machine, same inputs (20 modules, 5 examples, 40 steps):

1. the reference ``lorahub`` package end to end (load + 40 NGOpt steps) on
   randomly initialised T5 models with the t5-small and t5-base shapes;
2. this engine, cold (first job, nothing cached) and warm (base model cached);
3. the lower bound: 40 × one forward + loss pass of an already-merged model;
4. the same for SmolLM2-135M (causal; the reference cannot run it);
5. population mode: candidate evaluations per second at P = 1, 4, 8, 16;
6. quality at equal budget (40 evaluations): the final objective of NGOpt
   (the reference setting) against population CMA-ES, over 5 seeds, on
   SmolLM2 with up to 20 trained modules of the starter set.

On CPUs with bfloat16 matrix units (AMX), the engine is also timed with
``dtype="bfloat16"``: an opt-in trade of precision for speed, beside the
float32 default that the targets are about.

    .venv/bin/python benchmarks/engine_speed.py [--shapes t5-small t5-base] [--skip-smollm2]
        [--skip-quality] [--quality-seeds 5] [--population-only]

Timings do not depend on trained weights, so random ones are used; the
quality comparison needs real modules.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from composition.engine.adapters import AdapterCache  # noqa: E402
from composition.engine.compose import CompositionRequest, compose  # noqa: E402
from composition.engine.encoding import format_prompt  # noqa: E402
from composition.engine.loading import BaseModelCache, load_model  # noqa: E402
from composition.engine.synthetic import build_loras, build_tiny_t5  # noqa: E402
from composition.engine.types import (  # noqa: E402
    CAUSAL_LM,
    SEQ_2_SEQ_LM,
    AdapterRef,
    CompositionSettings,
    Example,
    ModelRef,
)

T5_SHAPES = {
    "t5-small": {"d_model": 512, "d_kv": 64, "d_ff": 2048, "num_layers": 6, "num_heads": 8},
    "t5-base": {"d_model": 768, "d_kv": 64, "d_ff": 3072, "num_layers": 12, "num_heads": 12},
    "flan-t5-large": {
        "d_model": 1024, "d_kv": 64, "d_ff": 2816, "num_layers": 24, "num_heads": 16,
        "feed_forward_proj": "gated-gelu",
    },
}  # fmt: skip
SMOLLM2 = ROOT / "var" / "models" / "HuggingFaceTB--SmolLM2-135M-Instruct"
STARTER = ROOT / "modules" / "starter"
MODULES, STEPS = 20, 40
POPULATIONS = (1, 4, 8, 16)
QUALITY_SETTINGS = {"NGOpt, P = 1": ("NGOpt", 1), "CMA, P = 8": ("CMA", 8)}


def cpu_has_bf16_units() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def bbh_examples(task: str = "date_understanding", count: int = 5) -> list[Example]:
    rows = (ROOT / "data" / "bbh" / f"{task}.jsonl").read_text().splitlines()[:count]
    return [Example(**json.loads(row)) for row in rows]


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def run_reference(base_dir: Path, modules: list[Path], examples: list[Example]) -> dict:
    import nevergrad as ng
    import numpy as np
    from lorahub import algorithm as lorahub

    def load():
        return lorahub.load_base_model_and_lora_modules([str(m) for m in modules], str(base_dir))

    (model, tokenizer, cache), load_s = timed(load)
    dataset = lorahub.load_dataset(
        [e.input for e in examples], [e.target for e in examples], tokenizer
    )

    def optimise():
        param = ng.p.Array(
            init=[0] * len(modules), upper=[1.5] * len(modules), lower=[-1.5] * len(modules)
        )
        param.random_state = np.random.RandomState(0)
        optimizer = ng.optimizers.NGOpt(parametrization=param, budget=STEPS)
        return optimizer.minimize(
            lambda w: lorahub.get_score(
                w, model, cache, dataset, None,
                lorahub.default_get_loss, lorahub.default_l1_regularization,
            )
        )  # fmt: skip

    _, optimise_s = timed(optimise)
    return {"load_s": load_s, "optimise_s": optimise_s, "total_s": load_s + optimise_s}


def run_engine(
    base: ModelRef, modules: list[Path], examples: list[Example], **settings
) -> tuple[dict, dict]:
    models, adapters = BaseModelCache(), AdapterCache()
    request = CompositionRequest(
        base,
        tuple(AdapterRef(m.name, m) for m in modules),
        tuple(examples),
        settings=CompositionSettings(steps=STEPS, **settings),
    )
    runs = []
    for _ in range(2):  # cold, then warm
        result, total = timed(lambda: compose(request, models=models, adapters=adapters))
        runs.append(
            {
                "total_s": total,
                "load_s": result.timings.load_seconds,
                "optimise_s": result.timings.optimize_seconds,
            }
        )
    return runs[0], runs[1]


@torch.inference_mode()
def lower_bound(base: ModelRef, examples: list[Example]) -> float:
    """40 × a plain forward + loss of a merged model on one padded batch of the examples."""
    loaded = load_model(base, torch.device("cpu"), torch.float32)
    model, tokenizer = loaded.model, loaded.tokenizer
    if base.task_type == SEQ_2_SEQ_LM:
        batch = tokenizer([e.input for e in examples], padding=True, return_tensors="pt")
        labels = tokenizer([e.target for e in examples], padding=True, return_tensors="pt")[
            "input_ids"
        ]
        labels[labels == tokenizer.pad_token_id] = -100
        batch["labels"] = labels
    else:
        texts = [
            format_prompt(tokenizer, e.input) + e.target + tokenizer.eos_token for e in examples
        ]
        tokenizer.padding_side = "right"
        batch = tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False)
        labels = batch["input_ids"].clone()
        labels[batch["attention_mask"] == 0] = -100
        for row, e in enumerate(examples):
            prompt_len = len(
                tokenizer(format_prompt(tokenizer, e.input), add_special_tokens=False)["input_ids"]
            )
            labels[row, :prompt_len] = -100
        batch["labels"] = labels
    for _ in range(2):
        model(**batch).loss.item()
    _, seconds = timed(lambda: [model(**batch).loss.item() for _ in range(STEPS)])
    return seconds


def bench_population(
    base: ModelRef, modules: list[Path], examples: list[Example], rounds: int = 3
) -> dict:
    """Evaluations per second by population size: the default, and always batched.

    Every setting shares one loaded model, and the settings take turns over
    ``rounds`` rounds, in reverse order every other round; the median per
    setting is kept. Loading the model anew per setting, or running one
    setting after another, measured the machine's drift (a few % over minutes
    here) as much as the population size.
    """
    models, adapters = BaseModelCache(), AdapterCache()
    settings = [(size, mode) for size in POPULATIONS for mode in ("default", "batched")]
    settings.remove((1, "batched"))
    samples: dict = {setting: [] for setting in settings}

    def rate(size: int, mode: str) -> float:
        request = CompositionRequest(
            base,
            tuple(AdapterRef(m.name, m) for m in modules),
            tuple(examples),
            settings=CompositionSettings(
                steps=STEPS,
                optimizer="CMA",
                population=size,
                batch_population=None if mode == "default" else True,
            ),
        )
        result = compose(request, models=models, adapters=adapters)
        return STEPS / result.timings.optimize_seconds

    rate(1, "default")  # warm-up: load the model and the adapters
    for round_number in range(rounds):
        for setting in settings if round_number % 2 == 0 else settings[::-1]:
            samples[setting].append(rate(*setting))
    rates: dict = {"default": {}, "batched": {}, "rounds": rounds}
    for (size, mode), values in samples.items():
        rates[mode][size] = statistics.median(values)
    rates["batched"][1] = rates["default"][1]
    return rates


def print_population(rates: dict) -> None:
    print(
        "\nPopulation mode on SmolLM2 (CMA), candidate evaluations per second "
        f"(median of {rates['rounds']} interleaved rounds):"
    )
    print("          default (batched on accelerators only)   always batched")
    base_rate = rates["default"][1]
    for size in POPULATIONS:
        default, batched = rates["default"][size], rates["batched"][size]
        print(
            f"  P = {size:2d}: {default:6.2f}/s ({default / base_rate:.2f}× P = 1)"
            f"{'':18}{batched:6.2f}/s ({batched / base_rate:.2f}×)"
        )


def make_modules(base_dir: Path, root: Path, task_type: str, targets, base_id: str) -> list[Path]:
    folders = [root / f"module-{i:02d}" for i in range(MODULES)]
    return build_loras(
        base_dir, folders, seeds=list(range(MODULES)), task_type=task_type,
        targets=targets, rank=16, alpha=32, base_id=base_id, std=0.02,
    )  # fmt: skip


def bench_t5(shape: str, workdir: Path, examples: list[Example]) -> dict:
    base_dir = build_tiny_t5(workdir / shape, vocab_size=32128, **T5_SHAPES[shape])
    modules = make_modules(base_dir, workdir / f"{shape}-modules", SEQ_2_SEQ_LM, ("q", "v"), shape)
    base = ModelRef(shape, base_dir, SEQ_2_SEQ_LM)
    reference = run_reference(base_dir, modules, examples)
    cold, warm = run_engine(base, modules, examples)
    figures = {
        "reference": reference,
        "cold": cold,
        "warm": warm,
        "bound_s": lower_bound(base, examples),
    }
    if cpu_has_bf16_units():
        figures["cold_bf16"], figures["warm_bf16"] = run_engine(
            base, modules, examples, dtype="bfloat16"
        )
    return figures


def bench_smollm2(workdir: Path, examples: list[Example]) -> dict:
    base_id = "HuggingFaceTB/SmolLM2-135M-Instruct"
    modules = make_modules(
        SMOLLM2, workdir / "smollm2-modules", CAUSAL_LM, ("q_proj", "v_proj"), base_id
    )
    base = ModelRef(base_id, SMOLLM2, CAUSAL_LM)
    cold, warm = run_engine(base, modules, examples)
    population = bench_population(base, modules, examples)
    figures = {
        "cold": cold, "warm": warm, "bound_s": lower_bound(base, examples),
        "population_evals_per_s": population, "modules": modules,
    }  # fmt: skip
    if cpu_has_bf16_units():
        figures["cold_bf16"], figures["warm_bf16"] = run_engine(
            base, modules, examples, dtype="bfloat16"
        )
    return figures


def starter_modules(limit: int = MODULES) -> list[Path]:
    folders = sorted(p for p in STARTER.iterdir() if (p / "README.md").exists())
    return folders[:limit]


def bench_quality(examples: list[Example], seeds: int) -> dict:
    """Final objective at 40 evaluations per optimiser and seed, on trained modules."""
    base = ModelRef("HuggingFaceTB/SmolLM2-135M-Instruct", SMOLLM2, CAUSAL_LM)
    modules = starter_modules()
    models, adapters = BaseModelCache(), AdapterCache()
    results: dict = {"modules": len(modules), "runs": {}}
    for label, (optimizer, population) in QUALITY_SETTINGS.items():
        objectives = []
        for seed in range(seeds):
            request = CompositionRequest(
                base,
                tuple(AdapterRef(m.name, m) for m in modules),
                tuple(examples),
                settings=CompositionSettings(
                    steps=STEPS, optimizer=optimizer, population=population, seed=seed
                ),
            )
            result = compose(request, models=models, adapters=adapters)
            objectives.append(result.best_objective)
        results["runs"][label] = objectives
    return results


def print_quality(figures: dict) -> None:
    print(
        f"\nQuality at equal budget ({STEPS} evaluations, {figures['modules']} starter modules, "
        "SmolLM2): final objective, lower is better"
    )
    print("  optimiser          mean     std     best    worst   per seed")
    for label, values in figures["runs"].items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        seeds = " ".join(f"{v:.4f}" for v in values)
        print(
            f"  {label:<16} {statistics.mean(values):7.4f} {spread:7.4f} "
            f"{min(values):7.4f} {max(values):7.4f}   {seeds}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shapes", nargs="*", default=["t5-small", "t5-base"], choices=list(T5_SHAPES)
    )
    parser.add_argument("--skip-smollm2", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--quality-seeds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--population-only", action="store_true", help="only the population figures (SmolLM2)"
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    examples = bbh_examples()
    if args.population_only:
        with tempfile.TemporaryDirectory() as tmp:
            base_id = "HuggingFaceTB/SmolLM2-135M-Instruct"
            modules = make_modules(
                SMOLLM2, Path(tmp) / "modules", CAUSAL_LM, ("q_proj", "v_proj"), base_id
            )
            base = ModelRef(base_id, SMOLLM2, CAUSAL_LM)
            print_population(bench_population(base, modules, examples))
        return
    figures: dict = {"threads": torch.get_num_threads(), "device": "cpu"}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for shape in args.shapes:
            figures[shape] = bench_t5(shape, workdir, examples)
            print_row(shape, figures[shape])
        if not args.skip_smollm2:
            smol = bench_smollm2(workdir, examples)
            smol.pop("modules")
            figures["smollm2"] = smol
            print_row("SmolLM2-135M", smol)
            print_population(smol["population_evals_per_s"])
        if not args.skip_quality and STARTER.is_dir() and len(starter_modules()) >= 2:
            figures["quality"] = bench_quality(examples, args.quality_seeds)
            print_quality(figures["quality"])
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))


def print_row(name: str, f: dict) -> None:
    bound = f["bound_s"]
    print(f"\n{name}  ({MODULES} modules, 5 examples, {STEPS} steps)")
    print("  run                      total s   load s   optimise s   optimise / bound")
    runs = [("reference lorahub", f["reference"])] if "reference" in f else []
    runs += [("engine cold", f["cold"]), ("engine warm", f["warm"])]
    if "cold_bf16" in f:
        runs += [("engine cold, bf16", f["cold_bf16"]), ("engine warm, bf16", f["warm_bf16"])]
    for label, r in runs:
        ratio = r["optimise_s"] / bound
        print(
            f"  {label:<24} {r['total_s']:7.1f}  {r['load_s']:7.1f}  "
            f"{r['optimise_s']:10.1f}  {ratio:8.2f}×"
        )
    print(f"  lower bound (40 passes)  {bound:7.1f}")
    if "reference" in f:
        speedup = f["reference"]["total_s"] / f["cold"]["total_s"]
        print(f"  cold engine vs reference, end to end: {speedup:.2f}× faster")
        if "cold_bf16" in f:
            speedup = f["reference"]["total_s"] / f["cold_bf16"]["total_s"]
            print(f"  cold engine in bf16 vs reference (fp32), end to end: {speedup:.2f}× faster")
    print(f"  warm engine total vs lower bound: {f['warm']['total_s'] / bound:.2f}×")


if __name__ == "__main__":
    main()
