"""What every check shares: the adapter's file names, the typed results and
``AdapterInvalid``, the failure that lists one ``Problem`` per broken rule."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composition.engine import patterns

ADAPTER_CONFIG = "adapter_config.json"
SAFETENSORS_WEIGHTS = "adapter_model.safetensors"
PICKLED_WEIGHTS = "adapter_model.bin"
MODEL_CARD = "README.md"
ADAPTER_FILES = (ADAPTER_CONFIG, SAFETENSORS_WEIGHTS, PICKLED_WEIGHTS, MODEL_CARD)

MAX_REPORTED_PROBLEMS = 20
CHUNK_BYTES = 1024 * 1024


# --- Results and failures ---------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One failed rule: the file it concerns and what is wrong, in words."""

    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


class AdapterInvalid(ValueError):
    """The files are not a usable LoRA adapter; ``problems`` says why."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, file: str, message: str) -> AdapterInvalid:
        return cls([Problem(file, message)])

    def messages(self) -> list[str]:
        """The problems as sentences, the list capped so a page stays readable."""
        shown = [str(p) for p in self.problems[:MAX_REPORTED_PROBLEMS]]
        hidden = len(self.problems) - len(shown)
        if hidden:
            shown.append(f"… and {hidden} more problems of the same kind")
        return shown


@dataclass(frozen=True)
class LocalFile:
    """A file on local disk with its size and sha256, hashed once."""

    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class LoraConfigInfo:
    """The fields of ``adapter_config.json`` the hub reads, and the raw JSON."""

    r: int
    lora_alpha: float
    # A list of module names, or one regular expression (PEFT allows both),
    # checked by composition.engine.patterns.
    target_modules: tuple[str, ...] | str
    task_type: str | None
    base_model_name_or_path: str | None
    rank_pattern: dict[str, int]
    raw: dict[str, Any]

    def rank_for(self, module_path: str) -> int:
        for pattern, rank in self.rank_pattern.items():
            if patterns.key_matches(pattern, module_path):
                return rank
        return self.r

    def targets(self, module_path: str) -> bool:
        if isinstance(self.target_modules, str):
            if self.target_modules == patterns.ALL_LINEAR:
                return True
            return patterns.name_matches(self.target_modules, module_path)
        return any(
            module_path == target or module_path.endswith("." + target)
            for target in self.target_modules
        )


@dataclass(frozen=True)
class BaseModelShape:
    """What an adapter is checked against: the dimensions of its base model."""

    identifier: str
    task_type: str
    num_layers: int
    # Leaf module name to the (in_features, out_features) pairs it takes.
    linear_shapes: Mapping[str, list[tuple[int, int]]]

    @classmethod
    def from_json(
        cls, *, identifier: str, task_type: str, num_layers: int, linear_shapes: Mapping
    ) -> BaseModelShape:
        shapes = {
            name: [(int(i), int(o)) for i, o in pairs] for name, pairs in linear_shapes.items()
        }
        return cls(identifier, task_type, num_layers, shapes)


@dataclass(frozen=True)
class AdapterSummary:
    """What validation found: the figures the registry shows and indexes."""

    config: LoraConfigInfo
    task_type: str | None
    # Leaf names of the adapted modules (q_proj, v…), sorted.
    target_modules: tuple[str, ...]
    adapted_module_count: int
    parameter_count: int
    dtypes: tuple[str, ...]
    tensors: tuple[TensorInfo, ...] = field(repr=False)


# --- Files ------------------------------------------------------------------


def hash_file(path: Path) -> LocalFile:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return LocalFile(path=path, size=size, sha256=digest.hexdigest())
