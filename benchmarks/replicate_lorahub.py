"""Replicate the LoraHub paper's Table 1 on a folder of tasks, resumably.

    .venv/bin/python benchmarks/replicate_lorahub.py data/bbh [--tasks …] [--methods …]
        [--seeds 5] [--eval-count 100] [--shots 5] [--base-model PATH_OR_ID]
        [--modules DIR] [--dtype auto] [--cache docs/replication/runs]
        [--report docs/replication] [--report-only]

Any folder of ``<task>.jsonl`` files (``{"input": …, "target": …}`` per line) works.
Each (task, method, seed) run is cached under ``--cache``; a second invocation
computes only what is missing, then renders ``--report`` from the cache. The
logic lives in ``benchmarks/replication/``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.replication.plan import (  # noqa: E402
    MethodSpec,
    ReplicationSetup,
    baseline_methods,
    default_methods,
    read_tasks,
    strategy_methods,
)
from benchmarks.replication.report import write_report  # noqa: E402
from benchmarks.replication.runs import run_replication  # noqa: E402
from composition.engine.types import AdapterRef, EngineError, ModelRef  # noqa: E402

DEFAULT_BASE = ROOT / "var" / "models" / "HuggingFaceTB--SmolLM2-135M-Instruct"
DEFAULT_MODULES = ROOT / "modules" / "starter"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    _quiet_libraries()
    try:
        setup = _setup(args)
        results = run_replication(setup, args.cache, progress=_say, compute=not args.report_only)
        readme = write_report(setup, results, args.report, _command(argv), plot=not args.no_plot)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _say(f"{len(results)} runs in the report: {readme}")
    return 0


def _parser() -> argparse.ArgumentParser:
    methods = [m.name for m in all_methods()]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task_folder", type=Path, help="folder of <task>.jsonl files")
    parser.add_argument(
        "--base-model",
        default=str(DEFAULT_BASE),
        help="base model: a local folder, or a Hub id already in var/models/",
    )
    parser.add_argument(
        "--modules", type=Path, default=DEFAULT_MODULES, help="folder of PEFT adapter folders"
    )
    parser.add_argument("--tasks", nargs="+", help="task names (default: every file)")
    parser.add_argument("--methods", nargs="+", choices=methods, default=methods)
    parser.add_argument("--seeds", type=int, default=5, help="seeds per composition method")
    parser.add_argument("--eval-count", type=int, default=100, help="evaluation examples per task")
    parser.add_argument("--shots", type=int, default=5, help="few-shot examples per task")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument(
        "--dtype",
        choices=["auto", "float32", "bfloat16"],
        default="auto",
        help="precision of every method (auto: fp32 on a CPU, bf16 on a GPU)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=ROOT / "docs" / "replication" / "runs",
        help="one JSON file per (task, method, seed); kept with the report so it can be checked",
    )
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "replication")
    parser.add_argument(
        "--report-only", action="store_true", help="render the report from the cache only"
    )
    parser.add_argument("--no-plot", action="store_true", help="skip accuracy.png")
    return parser


def _setup(args) -> ReplicationSetup:
    return ReplicationSetup(
        base=_base_model(args.base_model),
        modules=_modules(args.modules),
        tasks=read_tasks(args.task_folder, args.tasks),
        methods=with_reused(all_methods(args.max_new_tokens), args.methods),
        seeds=args.seeds,
        shots=args.shots,
        eval_count=args.eval_count,
        dtype=args.dtype,
    )


def all_methods(max_new_tokens: int = 32) -> tuple[MethodSpec, ...]:
    return (
        default_methods(max_new_tokens)
        + strategy_methods(max_new_tokens)
        + baseline_methods(max_new_tokens)
    )


def with_reused(methods: tuple[MethodSpec, ...], names: list[str]) -> tuple[MethodSpec, ...]:
    """The named methods and those whose runs they reuse, in the order of ``methods``."""
    by_name = {m.name: m for m in methods}
    wanted = set()
    for name in names:
        while name and name not in wanted:
            wanted.add(name)
            name = by_name[name].reuses
    return tuple(m for m in methods if m.name in wanted)


def _base_model(value: str) -> ModelRef:
    from composition.engine.base_models import read_base_model_spec

    folder = Path(value)
    if not folder.is_dir():
        # A Hub id: the folder the hub converts or downloads it to.
        folder = ROOT / "var" / "models" / value.replace("/", "--")
    if not (folder / "config.json").is_file():
        raise EngineError(f"{value}: no model folder with a config.json (looked in {folder})")
    identifier = value if not Path(value).is_dir() else _identifier(folder)
    return ModelRef(identifier, folder, read_base_model_spec(folder).task_type)


def _identifier(folder: Path) -> str:
    import json

    source = folder / "source.json"
    if source.is_file():
        return json.loads(source.read_text())["identifier"]
    return folder.name.replace("--", "/")


def _modules(folder: Path) -> tuple[AdapterRef, ...]:
    if not folder.is_dir():
        raise EngineError(f"{folder}: not a folder of adapter folders")
    # Folders still being written end in .partial.
    return tuple(
        AdapterRef(path.name, path)
        for path in sorted(folder.iterdir())
        if path.is_dir()
        and not path.name.endswith(".partial")
        and (path / "adapter_config.json").is_file()
    )


def _command(argv: list[str]) -> str:
    """The invocation that computes and renders all of it (paths relative to the repository)."""
    words = [".venv/bin/python", "benchmarks/replicate_lorahub.py"]
    for word in argv:
        if word == "--report-only":
            continue
        path = Path(word)
        if path.is_absolute() and path.is_relative_to(ROOT):
            word = str(path.relative_to(ROOT))
        words.append(word)
    return shlex.join(words)


def _quiet_libraries() -> None:
    """Keep the progress lines readable over hours of runs."""
    import warnings

    # Cobyla (NGOpt's choice at 40-80 steps) warns about its own defaults on every run.
    warnings.filterwarnings("ignore", message="COBYLA", category=UserWarning)
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
