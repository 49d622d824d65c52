"""The cache of runs: one JSON file per (task, method, seed), named by a fingerprint.

The fingerprint covers everything a run depends on (the split, the method's
settings, the base model, the precision and, for compositions, the module
set): changing any of those recomputes the affected runs, and adding tasks,
methods or seeds computes only what is new.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path

from benchmarks.replication.plan import (
    BEST_SINGLE,
    COMPOSE,
    RANK,
    ReplicationSetup,
    RunKey,
    RunResult,
    split_task,
)
from composition.engine.types import AdapterRef, CompositionSettings, ModelRef

# Bumped when a change in this package changes results: every cached run then recomputes.
CACHE_VERSION = 1

# The settings a run's fingerprint has always covered. A setting the engine gained since
# joins the fingerprint only when set away from its default: at its default it does what
# the engine did before it existed, so the runs cached before stay valid.
FINGERPRINTED_SETTINGS = frozenset(
    {
        "steps",
        "l1",
        "bound",
        "optimizer",
        "population",
        "batch_population",
        "seed",
        "preselect",
        "max_new_tokens",
        "device",
        "dtype",
    }
)


def settings_fingerprint(settings: CompositionSettings) -> dict[str, object]:
    defaults = CompositionSettings()
    kept = {}
    for name in (f.name for f in fields(settings)):
        value = getattr(settings, name)
        if name in FINGERPRINTED_SETTINGS or value != getattr(defaults, name):
            kept[name] = value
    return kept


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def base_fingerprint(base: ModelRef) -> str:
    """The identifier, the config and the name and size of every file of the model folder."""
    folder = Path(base.path)
    files = sorted(
        (str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file()
    )
    config = folder / "config.json"
    config_hash = _file_sha256(config) if config.is_file() else None
    return _digest([base.identifier, base.task_type, config_hash, files])


def modules_fingerprint(modules: Sequence[AdapterRef]) -> str:
    """Names and the hash of each module's files (config and weights)."""
    entries = []
    for ref in sorted(modules, key=lambda r: r.name):
        folder = Path(ref.path)
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.startswith("adapter"))
        entries.append([ref.name, ref.sha256, [(p.name, _file_sha256(p)) for p in files]])
    return _digest(entries)


class Fingerprints:
    """Per-run fingerprints; the costly parts (file hashes) computed once."""

    def __init__(self, setup: ReplicationSetup):
        self.setup = setup
        self._base = base_fingerprint(setup.base)
        self._modules: str | None = None
        self.splits = {
            task.name: split_task(task, setup.shots, setup.eval_count, setup.split_seed)
            for task in setup.tasks
        }
        self.methods = {method.name: method for method in setup.methods}

    def modules(self) -> str:
        if self._modules is None:
            self._modules = modules_fingerprint(self.setup.modules)
        return self._modules

    def run(self, task: str, method_name: str) -> str:
        method = self.methods[method_name]
        split = self.splits[task]
        parts: dict[str, object] = {
            "version": CACHE_VERSION,
            "base": self._base,
            "dtype": self.setup.dtype,
            "split": _digest([asdict(e) for e in (*split.shots, *split.evaluation)]),
            "method": [method.kind, method.sample, settings_fingerprint(method.settings)],
            # Zero-shot and ICL do not use modules: new modules leave them cached.
            "modules": self.modules() if method.kind in (COMPOSE, BEST_SINGLE) else None,
        }
        if method.kind == RANK and method.reuses:
            # The model it scores with is the one the reused run had.
            parts["answers"] = split.answers
            parts["reuses"] = self.run(task, method.reuses)
        return _digest(parts)[:16]


def cache_path(cache_dir: Path, key: RunKey, fingerprint: str) -> Path:
    return Path(cache_dir) / key.task / key.method / f"seed{key.seed}-{fingerprint}.json"


def load_cached(path: Path) -> RunResult | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return RunResult(
            **{
                **data,
                "outputs": tuple(data["outputs"]),
                "correct": tuple(data["correct"]),
                "modules": tuple(data["modules"]),
                "weights": tuple(data["weights"]),
                "answer_set": tuple(data.get("answer_set", ())),
            }
        )
    except (ValueError, KeyError, TypeError):
        # A file cut short by a crash: computed again.
        return None


def save_cached(path: Path, result: RunResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(asdict(result), indent=1) + "\n")
    # Renamed into place, so an interrupted write never looks like a result.
    partial.replace(path)
