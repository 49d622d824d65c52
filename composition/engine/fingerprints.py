"""Module fingerprints: per adapted layer, the top right-singular directions of s·BA.

Computed once per module (at upload, import, or by the backfill command) and
stored as a few float16 values per input feature and layer; candidate
retrieval (``composition.engine.retrieval``) scores them against the examples.
numpy only, and one layer's tensors in memory at a time, so that the web
process computing it at upload stays light whatever the adapter's size.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from composition.engine.types import EngineError

if TYPE_CHECKING:
    from composition.engine.adapters import LoraAdapter

FINGERPRINT_VERSION = 1
# Directions kept per layer: the top one carries most of a trained LoRA's energy.
DEFAULT_DIRECTIONS = 1
_HEADER_LENGTH = struct.Struct("<I")
# PEFT saves keys as base_model.model.<module path>.lora_A.weight.
_PEFT_PREFIX = "base_model.model."
_FLOAT_DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8"}

# (layer path, input features) of every adapted layer, in path order.
Layout = tuple[tuple[str, int], ...]
Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Fingerprint:
    """Per adapted layer: k unit directions in its input space and their singular values."""

    layers: Layout
    directions_per_layer: int
    # layers × k, float16.
    strengths: npt.NDArray[np.float16]
    # Every layer's k × in_features directions, flattened in layer order, float16.
    directions: npt.NDArray[np.float16]

    def to_bytes(self) -> bytes:
        header = json.dumps(
            {
                "version": FINGERPRINT_VERSION,
                "k": self.directions_per_layer,
                "layers": [list(layer) for layer in self.layers],
            }
        ).encode()
        return (
            _HEADER_LENGTH.pack(len(header))
            + header
            + self.strengths.astype("<f2").tobytes()
            + self.directions.astype("<f2").tobytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint:
        try:
            (length,) = _HEADER_LENGTH.unpack_from(data)
            header = json.loads(data[_HEADER_LENGTH.size : _HEADER_LENGTH.size + length])
            k = int(header["k"])
            layers = tuple((str(path), int(size)) for path, size in header["layers"])
        except (struct.error, ValueError, KeyError, TypeError) as exc:
            raise EngineError(f"unreadable module fingerprint ({exc})") from exc
        if header.get("version") != FINGERPRINT_VERSION:
            raise EngineError(f"fingerprint version {header.get('version')} is not supported")
        payload = np.frombuffer(data, dtype="<f2", offset=_HEADER_LENGTH.size + length)
        strength_count = len(layers) * k
        if payload.size != strength_count + k * sum(size for _, size in layers):
            raise EngineError("module fingerprint has the wrong size for its layers")
        return cls(
            layers=layers,
            directions_per_layer=k,
            strengths=payload[:strength_count].reshape(len(layers), k),
            directions=payload[strength_count:],
        )


def top_right_singular(a: Matrix, b: Matrix, k: int) -> tuple[Matrix, Matrix]:
    """Top-k singular values and right-singular vectors (k × in) of B·A, from r×r work.

    With Aᵀ = QR, BA = (B Rᵀ) Qᵀ: the SVD of the small out × r matrix B Rᵀ = U S Wᵀ
    gives BA = U S (QW)ᵀ, so the right-singular vectors are the rows of (QW)ᵀ.
    A rank below k leaves zero directions beyond it.
    """
    q, r = np.linalg.qr(a.T)
    _, values, wt = np.linalg.svd(b @ r.T, full_matrices=False)
    vectors = (q @ wt.T).T
    kept = min(k, values.shape[0])
    out_values = np.zeros(k)
    out_vectors = np.zeros((k, a.shape[1]))
    out_values[:kept] = values[:kept]
    out_vectors[:kept] = vectors[:kept]
    return out_values, out_vectors


def fingerprint_layers(
    layers: Iterator[tuple[str, Matrix, Matrix]], scaling: float, k: int = DEFAULT_DIRECTIONS
) -> Fingerprint:
    """The fingerprint of (path, A, B) triples given in path order."""
    if k < 1:
        raise EngineError("a fingerprint needs at least one direction per layer")
    layout, strengths, flat = [], [], []
    for path, a, b in layers:
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise EngineError(f"{path}: A {a.shape} and B {b.shape} are not a LoRA pair")
        values, vectors = top_right_singular(a.astype(np.float64), b.astype(np.float64), k)
        layout.append((path, int(a.shape[1])))
        strengths.append(values * scaling)
        flat.append(vectors.reshape(-1))
    if not layout:
        raise EngineError("no LoRA layers to fingerprint")
    return Fingerprint(
        layers=tuple(layout),
        directions_per_layer=k,
        strengths=np.stack(strengths).astype(np.float16),
        directions=np.concatenate(flat).astype(np.float16),
    )


def fingerprint_adapter(adapter: LoraAdapter, k: int = DEFAULT_DIRECTIONS) -> Fingerprint:
    """The fingerprint of a loaded adapter."""
    pairs = (
        (path, a.double().numpy(), b.double().numpy())
        for path, (a, b) in sorted(adapter.layers.items())
    )
    return fingerprint_layers(pairs, adapter.scaling, k)


def lora_scaling(config: dict[str, Any]) -> float:
    rank = int(config["r"])
    alpha = float(config.get("lora_alpha", rank))
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def fingerprint_safetensors(
    weights: Path, config: dict[str, Any], k: int = DEFAULT_DIRECTIONS
) -> Fingerprint:
    """The fingerprint of a PEFT ``adapter_model.safetensors``, one layer in memory at a time.

    Reads float16, bfloat16, float32 and float64 tensors through a memory map.
    """
    header, data_start = _read_header(weights)
    pairs: dict[str, dict[str, dict[str, Any]]] = {}
    for key, entry in header.items():
        path = key.removeprefix(_PEFT_PREFIX).replace(".default.", ".")
        for marker in (".lora_A.weight", ".lora_B.weight"):
            if path.endswith(marker):
                pairs.setdefault(path.removesuffix(marker), {})[marker[6]] = entry
                break
        else:
            raise EngineError(f"unexpected tensor {key!r} (only lora_A/lora_B weights)")
    if any(len(pair) != 2 for pair in pairs.values()):
        raise EngineError("lora_A and lora_B tensors do not pair up")
    mapped = np.memmap(weights, dtype=np.uint8, mode="r")
    layers = (
        (
            path,
            _tensor(mapped, data_start, pairs[path]["A"]),
            _tensor(mapped, data_start, pairs[path]["B"]),
        )
        for path in sorted(pairs)
    )
    return fingerprint_layers(layers, lora_scaling(config), k)


def _read_header(weights: Path) -> tuple[dict[str, Any], int]:
    with weights.open("rb") as stream:
        prefix = stream.read(8)
        if len(prefix) < 8:
            raise EngineError(f"{weights.name} is not a safetensors file")
        size = int.from_bytes(prefix, "little")
        try:
            header = json.loads(stream.read(size))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EngineError(f"{weights.name} has an unreadable header ({exc})") from exc
    if not isinstance(header, dict):
        raise EngineError(f"{weights.name} has an unreadable header")
    header.pop("__metadata__", None)
    return header, 8 + size


def _tensor(mapped: npt.NDArray[np.uint8], start: int, entry: dict[str, Any]) -> Matrix:
    begin, end = (start + offset for offset in entry["data_offsets"])
    raw = mapped[begin:end]
    shape = tuple(entry["shape"])
    if entry["dtype"] == "BF16":
        # bfloat16 is the top half of a float32.
        bits = raw.view("<u2").astype(np.uint32) << 16
        return bits.view("<f4").reshape(shape).astype(np.float64)
    if entry["dtype"] not in _FLOAT_DTYPES:
        raise EngineError(f"cannot fingerprint {entry['dtype']} tensors")
    return raw.view(_FLOAT_DTYPES[entry["dtype"]]).reshape(shape).astype(np.float64)
