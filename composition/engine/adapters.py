"""LoRA adapters in PEFT format: load straight from the files, check, save.

Adapters are read with safetensors (or PyTorch's restricted ``weights_only``
loader for legacy ``.bin`` files), never through a full ``PeftModel``: only
their tensors are needed, keyed by the module they adapt.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from composition.engine.composable import composability
from composition.engine.patterns import key_matches
from composition.engine.types import MERGES, AdapterRef, EngineError, IncompatibleModulesError

ADAPTER_CONFIG = "adapter_config.json"
SAFETENSORS_WEIGHTS = "adapter_model.safetensors"
PICKLE_WEIGHTS = "adapter_model.bin"
# PEFT saves keys as base_model.model.<module path>.lora_A.weight.
PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True)
class LoraAdapter:
    name: str
    config: dict[str, Any]
    # Module path in the base model (e.g. "model.layers.0.self_attn.q_proj")
    # to its (A, B) pair: A is r × in, B is out × r.
    layers: dict[str, tuple[torch.Tensor, torch.Tensor]]

    @property
    def rank(self) -> int:
        return int(self.config["r"])

    @property
    def alpha(self) -> float:
        return float(self.config.get("lora_alpha", self.rank))

    @property
    def scaling(self) -> float:
        if self.config.get("use_rslora"):
            return self.alpha / math.sqrt(self.rank)
        return self.alpha / self.rank

    def layer_scaling(self, path: str) -> float:
        """The scaling of one layer: its rank is its A's rows, its alpha may be patterned."""
        rank = int(self.layers[path][0].shape[0])
        alpha = self.alpha
        for key, value in (self.config.get("alpha_pattern") or {}).items():
            if key_matches(key, path):
                alpha = float(value)
                break
        if self.config.get("use_rslora"):
            return alpha / math.sqrt(rank)
        return alpha / rank

    @property
    def parameter_count(self) -> int:
        return sum(a.numel() + b.numel() for a, b in self.layers.values())


def load_adapter(ref: AdapterRef) -> LoraAdapter:
    folder = Path(ref.path)
    config_path = folder / ADAPTER_CONFIG
    if not config_path.is_file():
        raise EngineError(f"{ref.name}: no {ADAPTER_CONFIG} in {folder}")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise EngineError(f"{ref.name}: {ADAPTER_CONFIG} is not valid JSON ({exc})") from exc
    _check_supported(ref.name, config)
    return LoraAdapter(
        name=ref.name, config=config, layers=_pair_layers(ref.name, _read_tensors(ref.name, folder))
    )


def _check_supported(name: str, config: dict[str, Any]) -> None:
    ok, reason = composability(config)
    if not ok:
        raise EngineError(f"{name} cannot be composed: {reason}")


def _read_tensors(name: str, folder: Path) -> dict[str, torch.Tensor]:
    if (folder / SAFETENSORS_WEIGHTS).is_file():
        return load_file(folder / SAFETENSORS_WEIGHTS)
    if (folder / PICKLE_WEIGHTS).is_file():
        try:
            tensors: dict[str, torch.Tensor] = torch.load(
                folder / PICKLE_WEIGHTS, map_location="cpu", weights_only=True
            )
            return tensors
        except Exception as exc:
            raise EngineError(
                f"{name}: {PICKLE_WEIGHTS} refused by the safe loader ({exc})"
            ) from exc
    raise EngineError(f"{name}: neither {SAFETENSORS_WEIGHTS} nor {PICKLE_WEIGHTS} in {folder}")


def _pair_layers(
    name: str, tensors: dict[str, torch.Tensor]
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    a_parts: dict[str, torch.Tensor] = {}
    b_parts: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        path = key.removeprefix(PEFT_PREFIX).replace(".default.", ".")
        for marker, parts in ((".lora_A.weight", a_parts), (".lora_B.weight", b_parts)):
            if path.endswith(marker):
                parts[path.removesuffix(marker)] = tensor.float()
                break
        else:
            raise EngineError(f"{name}: unexpected tensor {key!r} (only lora_A/lora_B weights)")
    if set(a_parts) != set(b_parts):
        lonely = sorted(set(a_parts) ^ set(b_parts))
        raise EngineError(f"{name}: lora_A and lora_B do not pair up at {lonely[:3]}")
    if not a_parts:
        raise EngineError(f"{name}: no LoRA tensors found")
    layers = {}
    for path in sorted(a_parts):
        a, b = a_parts[path], b_parts[path]
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise EngineError(
                f"{name}: {path} has A {tuple(a.shape)} and B {tuple(b.shape)}; "
                "expected A r×in and B out×r"
            )
        layers[path] = (a, b)
    return layers


LORAHUB, EXACT = MERGES


def check_compatible(adapters: list[LoraAdapter], merge: str = LORAHUB) -> None:
    """Refuse modules that cannot be merged with the first one, saying why.

    The exact merge needs the same base model, task and adapted layers; the
    LoraHub merge averages A and B separately, so it also needs equal ranks
    and scalings, layer by layer.
    """
    if not adapters:
        raise IncompatibleModulesError("no modules to compose")
    if merge not in MERGES:
        raise IncompatibleModulesError(f"unknown merge {merge!r}; use one of {', '.join(MERGES)}")
    first = adapters[0]
    for other in adapters[1:]:
        mismatch = _first_mismatch(first, other)
        if mismatch is None and merge == LORAHUB:
            mismatch = lorahub_mismatch(first, other)
            if mismatch:
                mismatch += (
                    "; the LoraHub merge averages A and B separately, which needs equal "
                    'ranks and scalings: use the exact merge (merge "exact") for such modules'
                )
        if mismatch:
            raise IncompatibleModulesError(
                f"{other.name} cannot be composed with {first.name}: {mismatch}"
            )


def _first_mismatch(first: LoraAdapter, other: LoraAdapter) -> str | None:
    base_a = first.config.get("base_model_name_or_path")
    base_b = other.config.get("base_model_name_or_path")
    if base_a and base_b and base_a != base_b:
        return f"base model {base_b}, not {base_a}"
    if first.config.get("task_type") != other.config.get("task_type"):
        return f"task type {other.config.get('task_type')}, not {first.config.get('task_type')}"
    if set(first.layers) != set(other.layers):
        missing = sorted(set(first.layers) - set(other.layers))
        extra = sorted(set(other.layers) - set(first.layers))
        return f"different target modules (missing {missing[:2]}, extra {extra[:2]})"
    for path, (a, b) in first.layers.items():
        a2, b2 = other.layers[path]
        if a.shape[1] != a2.shape[1] or b.shape[0] != b2.shape[0]:
            return f"{path} maps {a2.shape[1]}→{b2.shape[0]}; expected {a.shape[1]}→{b.shape[0]}"
    return None


def lorahub_mismatch(first: LoraAdapter, other: LoraAdapter) -> str | None:
    """Why A and B of ``other`` cannot be averaged with those of ``first`` (None: they can)."""
    if first.rank != other.rank:
        return f"rank {other.rank}, not {first.rank}"
    for path, (a, _) in first.layers.items():
        rank, other_rank = a.shape[0], other.layers[path][0].shape[0]
        if rank != other_rank:
            return f"{path} has rank {other_rank}, not {rank}"
        scaling, other_scaling = first.layer_scaling(path), other.layer_scaling(path)
        if not math.isclose(scaling, other_scaling):
            return f"scaling {_describe_scaling(other)} {other_scaling:g}, not {scaling:g}"
    return None


def _describe_scaling(adapter: LoraAdapter) -> str:
    return "(lora_alpha/√r, rslora)" if adapter.config.get("use_rslora") else "(lora_alpha/r)"


def save_adapter(
    out_dir: str | Path,
    config: dict[str, Any],
    layers: dict[str, tuple[torch.Tensor, torch.Tensor]],
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a PEFT folder that ``PeftModel.from_pretrained`` loads."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for path, (a, b) in layers.items():
        tensors[f"{PEFT_PREFIX}{path}.lora_A.weight"] = a.detach().to("cpu", dtype).contiguous()
        tensors[f"{PEFT_PREFIX}{path}.lora_B.weight"] = b.detach().to("cpu", dtype).contiguous()
    save_file(tensors, out_dir / SAFETENSORS_WEIGHTS, metadata={"format": "pt"})
    (out_dir / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return out_dir


class AdapterCache:
    """Loaded adapters, least recently used evicted first.

    Keyed by the weights' sha256 when known (the registry always knows it),
    so the same module stored in two places is loaded once.
    """

    def __init__(self, max_adapters: int = 256):
        self.max_adapters = max_adapters
        self._adapters: OrderedDict[str, LoraAdapter] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, ref: AdapterRef) -> LoraAdapter:
        key = ref.sha256 or _file_identity(Path(ref.path))
        with self._lock:
            if key in self._adapters:
                self._adapters.move_to_end(key)
                cached = self._adapters[key]
                return (
                    cached
                    if cached.name == ref.name
                    else LoraAdapter(ref.name, cached.config, cached.layers)
                )
        adapter = load_adapter(ref)
        with self._lock:
            self._adapters[key] = adapter
            while len(self._adapters) > self.max_adapters:
                self._adapters.popitem(last=False)
        return adapter


def _file_identity(folder: Path) -> str:
    for filename in (SAFETENSORS_WEIGHTS, PICKLE_WEIGHTS):
        path = folder / filename
        if path.is_file():
            stat = path.stat()
            return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return str(folder.resolve())


adapter_cache = AdapterCache()
