"""The header of ``adapter_model.safetensors``: its tensor table, read without
loading any tensor."""

from __future__ import annotations

import json
import math
from pathlib import Path

from modules.validation.common import SAFETENSORS_WEIGHTS, AdapterInvalid, Problem, TensorInfo

# Bytes per element of every dtype the safetensors format defines.
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
# The safetensors format itself refuses headers above 100 MB.
MAX_HEADER_BYTES = 100_000_000


def read_safetensors_header(path: Path, file: str = SAFETENSORS_WEIGHTS) -> list[TensorInfo]:
    """Read the tensor table of a safetensors file without loading any tensor.

    The format is an 8-byte little-endian header length, a JSON header that
    maps names to dtype, shape and byte offsets, then the packed data. The
    offsets must tile the data exactly, as the format requires.
    """
    file_size = path.stat().st_size
    with path.open("rb") as stream:
        prefix = stream.read(8)
        if len(prefix) < 8:
            raise AdapterInvalid.single(
                file, f"is {file_size} bytes long, too short to be a safetensors file"
            )
        header_size = int.from_bytes(prefix, "little")
        if header_size > MAX_HEADER_BYTES or 8 + header_size > file_size:
            raise AdapterInvalid.single(
                file,
                f"is not a safetensors file: its first 8 bytes announce a header of "
                f"{header_size} bytes in a file of {file_size} bytes",
            )
        raw_header = stream.read(header_size)
    try:
        header = json.loads(raw_header)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterInvalid.single(file, f"has a header that is not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise AdapterInvalid.single(file, "has a header that is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict):
        raise AdapterInvalid.single(file, 'has a "__metadata__" entry that is not an object')

    problems: list[Problem] = []
    tensors: list[TensorInfo] = []
    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        tensor, span, problem = _read_header_entry(name, entry)
        if problem:
            problems.append(Problem(file, problem))
        else:
            tensors.append(tensor)
            spans.append((*span, name))
    if problems:
        raise AdapterInvalid(problems)
    _check_spans_tile_the_data(spans, file_size - 8 - header_size, file)
    if not tensors:
        raise AdapterInvalid.single(file, "holds no tensors")
    return tensors


def _read_header_entry(name: str, entry: object):
    if not isinstance(entry, dict):
        return None, None, f"tensor {name!r}: its header entry is not an object"
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_SIZES:
        return None, None, f"tensor {name!r}: unknown dtype {dtype!r}"
    if not (isinstance(shape, list) and all(_is_natural(n) for n in shape)):
        return None, None, f"tensor {name!r}: shape must be a list of sizes, found {shape!r}"
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_natural, offsets))):
        return None, None, f"tensor {name!r}: data_offsets must be [begin, end], found {offsets!r}"
    begin, end = offsets
    expected_bytes = math.prod(shape) * DTYPE_SIZES[dtype]
    if end - begin != expected_bytes:
        return (
            None,
            None,
            f"tensor {name!r}: {dtype} {shape} needs {expected_bytes} bytes, "
            f"its offsets [{begin}, {end}] span {end - begin}",
        )
    return TensorInfo(name, dtype, tuple(shape)), (begin, end), None


def _is_natural(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_spans_tile_the_data(spans: list[tuple[int, int, str]], data_size: int, file: str):
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise AdapterInvalid.single(
                file,
                f"tensor {name!r}: data starts at byte {begin}, expected {position} "
                "(tensors overlap or leave a gap)",
            )
        position = end
    if position != data_size:
        raise AdapterInvalid.single(
            file,
            f"the tensors take {position} bytes but the file holds {data_size} bytes of data "
            "(truncated or padded)",
        )
