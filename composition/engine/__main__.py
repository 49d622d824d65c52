"""Command line: ``python -m composition.engine compose|train …``.

Progress goes to stderr, the result as JSON to stdout (and beside the adapter).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from composition.engine.types import (
    CAUSAL_LM,
    MERGES,
    SEQ_2_SEQ_LM,
    AdapterRef,
    CompositionSettings,
    EngineError,
    ModelRef,
    TrainingSettings,
)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        summary = args.run(args)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m composition.engine")
    commands = parser.add_subparsers(required=True)

    compose = commands.add_parser("compose", help="compose LoRA modules from a few examples")
    _base_arguments(compose)
    compose.add_argument("--modules", nargs="+", type=Path, required=True, help="PEFT folders")
    compose.add_argument(
        "--examples", type=Path, required=True, help="JSONL/CSV/TSV with input, target"
    )
    compose.add_argument("--heldout", type=Path, help="examples to evaluate the result on")
    compose.add_argument("--out", type=Path, required=True, help="folder for the composed adapter")
    defaults = CompositionSettings()
    compose.add_argument("--steps", type=int, default=defaults.steps)
    compose.add_argument("--l1", type=float, default=defaults.l1)
    compose.add_argument("--bound", type=float, default=defaults.bound)
    compose.add_argument("--optimizer", default=defaults.optimizer)
    compose.add_argument("--population", type=int, default=defaults.population)
    compose.add_argument("--seed", type=int, default=defaults.seed)
    compose.add_argument(
        "--preselect",
        type=int,
        metavar="K",
        help="compose only the K modules with the lowest loss alone on the examples",
    )
    compose.add_argument(
        "--preselect-method",
        choices=["loss", "retrieval"],
        default=defaults.preselect_method,
        help="rank candidates for --preselect by their loss alone (one forward pass each) or "
        "by their fingerprint against the examples (one forward pass in all)",
    )
    compose.add_argument(
        "--strategy",
        choices=["compose", "auto"],
        default=defaults.strategy,
        help="auto: validation on the examples picks the search's weights, the best single "
        "module, the uniform average or the base model",
    )
    compose.add_argument("--validation-folds", type=int, default=defaults.validation_folds)
    compose.add_argument(
        "--early-stop",
        type=int,
        metavar="STEPS",
        help="stop the search after STEPS evaluations without a lower cross-validated loss",
    )
    compose.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    compose.add_argument(
        "--merge",
        choices=MERGES,
        default=defaults.merge,
        help="lorahub: A = Σ wᵢAᵢ, B = Σ wᵢBᵢ (the paper's); exact: ΔW = Σ wᵢ·sᵢ·BᵢAᵢ, "
        "which also composes modules of different ranks, alphas and rslora",
    )
    compose.add_argument(
        "--weight-groups",
        type=int,
        default=defaults.weight_groups,
        metavar="G",
        help="weights per module: one per group of layers (the model's blocks split evenly)",
    )
    compose.set_defaults(run=_compose)

    train = commands.add_parser("train", help="train a LoRA module on examples")
    _base_arguments(train)
    train.add_argument("--data", type=Path, required=True, help="JSONL/CSV/TSV with input, target")
    train.add_argument("--out", type=Path, required=True)
    recipe = TrainingSettings()
    train.add_argument("--steps", type=int, default=recipe.steps)
    train.add_argument("--rank", type=int, default=recipe.rank)
    train.add_argument("--alpha", type=int, default=recipe.alpha)
    train.add_argument("--batch-size", type=int, default=recipe.batch_size)
    train.add_argument("--learning-rate", type=float, default=recipe.learning_rate)
    train.add_argument("--max-length", type=int, default=recipe.max_length)
    train.add_argument("--seed", type=int, default=recipe.seed)
    train.set_defaults(run=_train)
    return parser


def _base_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", type=Path, required=True, help="folder of the base model")
    parser.add_argument(
        "--base-id", help="Hub id of the base model (default: read from the folder)"
    )
    parser.add_argument(
        "--task-type", choices=[CAUSAL_LM, SEQ_2_SEQ_LM], help="default: from config"
    )
    parser.add_argument("--device", default="auto")


def _model_ref(args: argparse.Namespace) -> ModelRef:
    from composition.engine.base_models import read_base_model_spec

    if not (args.base / "config.json").is_file():
        raise EngineError(f"{args.base}: no config.json (not a model folder)")
    identifier = args.base_id or _recorded_identifier(args.base)
    task_type = args.task_type or read_base_model_spec(args.base).task_type
    return ModelRef(identifier, args.base, task_type)


def _recorded_identifier(folder: Path) -> str:
    source = folder / "source.json"
    if source.is_file():
        return str(json.loads(source.read_text())["identifier"])
    config = json.loads((folder / "config.json").read_text())
    return str(config.get("_name_or_path") or folder)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _compose(args: argparse.Namespace) -> dict[str, Any]:
    from composition.engine.compose import CompositionRequest, compose
    from composition.engine.examples import read_examples

    request = CompositionRequest(
        base=_model_ref(args),
        modules=tuple(AdapterRef(folder.name, folder) for folder in args.modules),
        examples=tuple(read_examples(args.examples)),
        heldout=tuple(read_examples(args.heldout)) if args.heldout else (),
        settings=CompositionSettings(
            steps=args.steps,
            l1=args.l1,
            bound=args.bound,
            optimizer=args.optimizer,
            population=args.population,
            seed=args.seed,
            preselect=args.preselect,
            preselect_method=args.preselect_method,
            strategy=args.strategy,
            validation_folds=args.validation_folds,
            early_stop=args.early_stop,
            max_new_tokens=args.max_new_tokens,
            device=args.device,
            merge=args.merge,
            weight_groups=args.weight_groups,
        ),
    )
    result = compose(
        request,
        out_dir=args.out,
        on_step=lambda r: _progress(
            f"step {r.step}/{r.total}  objective {r.loss:.4f}  best {r.best_loss:.4f}"
        ),
    )
    summary: dict[str, Any] = {
        "adapter": str(result.adapter_dir),
        "weights": dict(zip(result.module_names, result.module_weights(), strict=True)),
        "best_objective": result.best_objective,
        "best_loss": result.best_loss,
        "objective_history": list(result.objective_history),
        "accuracy": result.accuracy,
        "predictions": [asdict(p) for p in result.predictions],
        "timings": asdict(result.timings),
    }
    if result.weight_groups > 1:
        g = result.weight_groups
        summary["group_weights"] = {
            name: list(result.weights[i * g : (i + 1) * g])
            for i, name in enumerate(result.module_names)
        }
    if result.preselection:
        summary["preselection"] = {score.name: score.loss for score in result.preselection}
    if result.retrieval:
        summary["retrieval"] = {score.name: score.score for score in result.retrieval}
    if result.strategy:
        summary["strategy"] = {
            "chosen": result.strategy.chosen,
            "reason": result.strategy.reason,
            "validation_loss": {s.strategy: s.validation_loss for s in result.strategy.scores},
        }
    (args.out / "composition.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _train(args: argparse.Namespace) -> dict[str, Any]:
    from composition.engine.examples import read_examples
    from composition.engine.training import train_lora

    settings = TrainingSettings(
        steps=args.steps,
        rank=args.rank,
        alpha=args.alpha,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        max_length=args.max_length,
        seed=args.seed,
        device=args.device,
    )
    result = train_lora(
        _model_ref(args),
        read_examples(args.data),
        args.out,
        settings,
        on_step=lambda s: _progress(f"step {s.step}/{s.total}  loss {s.loss:.4f}"),
    )
    return {
        "adapter": str(result.adapter_dir),
        "final_loss": result.final_loss,
        "examples": result.examples_used,
        "seconds": result.seconds,
    }


if __name__ == "__main__":
    sys.exit(main())
