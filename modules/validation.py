"""Checks of uploaded PEFT LoRA adapters, in plain Python (no Django).

Everything here reads files from a local folder and either returns typed
summaries or raises ``AdapterInvalid`` with one ``Problem`` per failed rule,
each naming the file, and the tensor where there is one, with what was
expected and what was found. Weights are never loaded to check them: the
safetensors header says everything the rules need. The one exception is the
conversion of a pickled ``adapter_model.bin``, done only with PyTorch's
restricted ``weights_only`` loader.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import stat
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from composition.engine import patterns

ADAPTER_CONFIG = "adapter_config.json"
SAFETENSORS_WEIGHTS = "adapter_model.safetensors"
PICKLED_WEIGHTS = "adapter_model.bin"
MODEL_CARD = "README.md"
ADAPTER_FILES = (ADAPTER_CONFIG, SAFETENSORS_WEIGHTS, PICKLED_WEIGHTS, MODEL_CARD)

SUPPORTED_TASK_TYPES = ("CAUSAL_LM", "SEQ_2_SEQ_LM")
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
# Bytes per element of every dtype the safetensors format defines.
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
# The safetensors format itself refuses headers above 100 MB.
MAX_HEADER_BYTES = 100_000_000
MAX_CONFIG_BYTES = 1_000_000
# Patterns in adapter configs are regular expressions; which ones are accepted,
# and the bound on the module paths they are matched against, are decided in
# composition.engine.patterns, shared with the engine.
MAX_MODULE_PATH_LENGTH = patterns.MAX_MODULE_PATH_LENGTH
MAX_REPORTED_PROBLEMS = 20
CHUNK_BYTES = 1024 * 1024

# PEFT saves each LoRA pair as <prefix><module path>.lora_A.weight / .lora_B.weight.
LORA_TENSOR = re.compile(r"^(?P<module>.+)\.lora_(?P<kind>[AB])\.weight\Z")
PEFT_PREFIX = "base_model.model."
# Path components that precede the index of a transformer block, by family
# (llama and most decoders: layers; t5: block; gpt2: h).
LAYER_CONTAINERS = ("layers", "block", "blocks", "h")


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


# --- adapter_config.json ----------------------------------------------------


def read_lora_config(path: Path) -> LoraConfigInfo:
    """Parse ``adapter_config.json`` as a PEFT LoRA config, or say what is wrong."""
    file = ADAPTER_CONFIG
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise AdapterInvalid.single(file, f"is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        raw = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterInvalid.single(file, f"is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise AdapterInvalid.single(file, "must hold a JSON object")

    problems: list[Problem] = []

    def fail(message: str) -> None:
        problems.append(Problem(file, message))

    peft_type = raw.get("peft_type")
    if peft_type != "LORA":
        fail(f'"peft_type" must be "LORA", found {peft_type!r}')
    r = raw.get("r")
    if not _is_positive_int(r):
        fail(f'"r" (the rank) must be a positive integer, found {r!r}')
    alpha = raw.get("lora_alpha")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or alpha <= 0:
        fail(f'"lora_alpha" must be a positive number, found {alpha!r}')
    target_modules = _read_target_modules(raw.get("target_modules"), fail)
    task_type = raw.get("task_type")
    if task_type is not None and task_type not in SUPPORTED_TASK_TYPES:
        fail(
            f'"task_type" {task_type!r} is not supported; the hub hosts '
            f"{' and '.join(SUPPORTED_TASK_TYPES)} adapters"
        )
    if raw.get("use_dora"):
        fail('"use_dora" is true: DoRA adapters are not supported, only plain LoRA')
    rank_pattern = _read_pattern_map(
        raw, "rank_pattern", "rank", _is_positive_int, "ranks are positive integers", fail
    )
    _read_pattern_map(
        raw, "alpha_pattern", "alpha", _is_positive_number, "alphas are positive numbers", fail
    )
    for problem in patterns.config_pattern_problems(raw):
        fail(problem)
    base_name = raw.get("base_model_name_or_path")
    if base_name is not None and not isinstance(base_name, str):
        fail(f'"base_model_name_or_path" must be a string, found {base_name!r}')

    if problems:
        raise AdapterInvalid(problems)
    return LoraConfigInfo(
        r=r,
        lora_alpha=float(alpha),
        target_modules=target_modules,
        task_type=task_type,
        base_model_name_or_path=base_name or None,
        rank_pattern=rank_pattern,
        raw=raw,
    )


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_positive_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _read_target_modules(value: object, fail) -> tuple[str, ...] | str:
    # A string is a regular expression; config_pattern_problems says whether it is safe.
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value and all(isinstance(item, str) and item for item in value):
        return tuple(value)
    fail(f'"target_modules" must be a non-empty list of module names, found {value!r}')
    return ()


def _read_pattern_map(raw: dict, name: str, what: str, valid, rule: str, fail) -> dict:
    """``rank_pattern`` or ``alpha_pattern``, pattern to value; config_pattern_problems
    checks the patterns."""
    value = raw.get(name) or {}
    if not isinstance(value, dict):
        fail(f'"{name}" must be an object of pattern to {what}, found {value!r}')
        return {}
    for pattern, number in value.items():
        if not valid(number):
            fail(f'"{name}" gives {pattern!r} the {what} {number!r}; {rule}')
    return value


# --- adapter_model.safetensors header ---------------------------------------


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


# --- LoRA tensors against the config and the base model ---------------------


def check_lora_tensors(
    config: LoraConfigInfo,
    tensors: list[TensorInfo],
    base: BaseModelShape | None = None,
    file: str = SAFETENSORS_WEIGHTS,
) -> AdapterSummary:
    """Check that the tensors are the LoRA pairs the config describes.

    Every tensor must be the ``lora_A`` (r by in) or ``lora_B`` (out by r)
    weight of a module that ``target_modules`` selects, in a floating-point
    dtype; every A has its B; every listed target has tensors. With a base
    model, in/out must be those of its layer of the same name.
    """
    problems: list[Problem] = []

    def fail(message: str) -> None:
        problems.append(Problem(file, message))

    pairs: dict[str, dict[str, TensorInfo]] = {}
    for tensor in tensors:
        if tensor.dtype not in FLOAT_DTYPES:
            fail(
                f"tensor {tensor.name!r} has dtype {tensor.dtype}; "
                f"expected a floating-point dtype ({', '.join(FLOAT_DTYPES)})"
            )
        match = LORA_TENSOR.match(tensor.name)
        if not match:
            fail(
                f"tensor {tensor.name!r} is not a LoRA weight; expected names ending in "
                "'.lora_A.weight' or '.lora_B.weight'"
            )
            continue
        module_path = match["module"].removeprefix(PEFT_PREFIX)
        if len(module_path) > MAX_MODULE_PATH_LENGTH:
            # Patterns are matched in time bounded per character of the path.
            fail(
                f"tensor {tensor.name[:MAX_MODULE_PATH_LENGTH]!r}… adapts a module path of "
                f"{len(module_path)} characters; at most {MAX_MODULE_PATH_LENGTH} are accepted"
            )
            continue
        if not config.targets(module_path):
            fail(
                f"tensor {tensor.name!r} adapts {module_path!r}, which target_modules "
                f"{_describe_targets(config.target_modules)} does not select"
            )
            continue
        pairs.setdefault(module_path, {})[match["kind"]] = tensor

    task_type = config.task_type
    if base is not None:
        task_type = task_type or base.task_type
        if config.task_type and config.task_type != base.task_type:
            problems.append(
                Problem(
                    ADAPTER_CONFIG,
                    f'"task_type" is {config.task_type} but {base.identifier} is a '
                    f"{base.task_type} model",
                )
            )

    for module_path, pair in sorted(pairs.items()):
        _check_pair(module_path, pair, config, base, fail)
    _check_every_target_has_tensors(config, pairs, fail)

    if problems:
        raise AdapterInvalid(problems)
    return AdapterSummary(
        config=config,
        task_type=task_type,
        target_modules=tuple(sorted({path.rsplit(".", 1)[-1] for path in pairs})),
        adapted_module_count=len(pairs),
        parameter_count=sum(t.numel for t in tensors),
        dtypes=tuple(sorted({t.dtype for t in tensors})),
        tensors=tuple(tensors),
    )


def _describe_targets(targets: tuple[str, ...] | str) -> str:
    return repr(targets) if isinstance(targets, str) else repr(list(targets))


def _check_pair(module_path, pair, config, base, fail) -> None:
    leaf = module_path.rsplit(".", 1)[-1]
    for kind in ("A", "B"):
        if kind not in pair:
            other = "B" if kind == "A" else "A"
            fail(f"tensor {pair[other].name!r} has no matching lora_{kind} weight")
            return
    lora_a, lora_b = pair["A"], pair["B"]
    rank = config.rank_for(module_path)
    if len(lora_a.shape) != 2 or lora_a.shape[0] != rank:
        fail(
            f"tensor {lora_a.name!r} has shape {list(lora_a.shape)}; "
            f"expected [{rank}, in_features] (lora_A is r × in, r = {rank})"
        )
        return
    if len(lora_b.shape) != 2 or lora_b.shape[1] != rank:
        fail(
            f"tensor {lora_b.name!r} has shape {list(lora_b.shape)}; "
            f"expected [out_features, {rank}] (lora_B is out × r, r = {rank})"
        )
        return
    if base is None:
        return
    _check_layer_index(module_path, lora_a.name, base, fail)
    shapes = base.linear_shapes.get(leaf)
    if not shapes:
        fail(
            f"tensor {lora_a.name!r} adapts {leaf!r}, but {base.identifier} has no linear layer "
            f"of that name (it has {', '.join(sorted(base.linear_shapes)) or 'none'})"
        )
        return
    in_features, out_features = lora_a.shape[1], lora_b.shape[0]
    if (in_features, out_features) in shapes:
        return
    expected = " or ".join(f"{i} → {o}" for i, o in shapes)
    if in_features not in {i for i, _ in shapes}:
        fail(
            f"tensor {lora_a.name!r} has shape {list(lora_a.shape)}; expected "
            f"[{rank}, {shapes[0][0]}] ({leaf} of {base.identifier} is {expected})"
        )
    else:
        fail(
            f"tensor {lora_b.name!r} has shape {list(lora_b.shape)}; expected "
            f"[{shapes[0][1]}, {rank}] ({leaf} of {base.identifier} is {expected})"
        )


def _check_layer_index(module_path: str, tensor_name: str, base: BaseModelShape, fail) -> None:
    parts = module_path.split(".")
    for container, index in itertools.pairwise(parts):
        if container in LAYER_CONTAINERS and index.isdigit() and int(index) >= base.num_layers:
            fail(
                f"tensor {tensor_name!r} adapts layer {index}, but {base.identifier} has "
                f"{base.num_layers} layers (0 to {base.num_layers - 1})"
            )
            return


def _check_every_target_has_tensors(config: LoraConfigInfo, pairs: Mapping, fail) -> None:
    if isinstance(config.target_modules, str):
        if not pairs:
            fail(f"no tensor adapts a module that target_modules {config.target_modules!r} selects")
        return
    for target in config.target_modules:
        if not any(path == target or path.endswith("." + target) for path in pairs):
            fail(
                f"target module {target!r} is listed in {ADAPTER_CONFIG} but no "
                "lora_A/lora_B tensor adapts it"
            )


def validate_adapter(
    config_path: Path, weights_path: Path, base: BaseModelShape | None = None
) -> AdapterSummary:
    """All the checks of a config and safetensors pair, problems of both files together."""
    problems: list[Problem] = []
    config = tensors = None
    try:
        config = read_lora_config(config_path)
    except AdapterInvalid as exc:
        problems += exc.problems
    try:
        tensors = read_safetensors_header(weights_path)
    except AdapterInvalid as exc:
        problems += exc.problems
    if problems:
        raise AdapterInvalid(problems)
    return check_lora_tensors(config, tensors, base)


# --- .zip archives ----------------------------------------------------------


# What problems call an archive whose own name is not known: its path is a
# temporary file of the server's, which means nothing to the person uploading.
UNNAMED_ARCHIVE = "the uploaded .zip"


def extract_adapter_zip(
    archive: Path,
    destination: Path,
    *,
    max_uncompressed_bytes: int,
    max_entries: int = 1000,
    name: str = UNNAMED_ARCHIVE,
) -> dict[str, LocalFile]:
    """Extract the adapter files of a zip into ``destination``, hashing them.

    Every entry is checked before anything is written: no absolute path, no
    ``..``, no link, no encryption, and a bounded total size. The adapter files
    may sit at the root or in one folder; other files (tokenizers, training
    logs…) are not part of a module and are left in the archive. Problems
    name the archive ``name``, the file's name as its owner knows it.
    """
    file = name
    try:
        with zipfile.ZipFile(archive) as zf:
            entries = zf.infolist()
            _check_zip_entries(entries, file, max_uncompressed_bytes, max_entries)
            wanted = _adapter_entries(entries, file)
            return {
                name: _extract_entry(zf, entry, destination / name, file, max_uncompressed_bytes)
                for name, entry in wanted.items()
            }
    except zipfile.BadZipFile as exc:
        raise AdapterInvalid.single(file, f"is not a readable zip archive ({exc})") from exc
    except (zlib.error, NotImplementedError, EOFError) as exc:
        raise AdapterInvalid.single(file, f"is a corrupt zip archive ({exc})") from exc


def _check_zip_entries(entries, file: str, max_bytes: int, max_entries: int) -> None:
    if len(entries) > max_entries:
        raise AdapterInvalid.single(file, f"has {len(entries)} entries; at most {max_entries}")
    problems = []
    for entry in entries:
        name = entry.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            problems.append(Problem(file, f"entry {name!r} has an absolute path"))
        elif ".." in parts:
            problems.append(Problem(file, f"entry {name!r} points outside the archive ('..')"))
        if stat.S_ISLNK(entry.external_attr >> 16):
            problems.append(Problem(file, f"entry {name!r} is a symbolic link"))
        if entry.flag_bits & 0x1:
            problems.append(Problem(file, f"entry {name!r} is encrypted"))
    total = sum(entry.file_size for entry in entries)
    if total > max_bytes:
        problems.append(
            Problem(file, f"expands to {total} bytes, over the limit of {max_bytes} bytes")
        )
    if problems:
        raise AdapterInvalid(problems)


def _adapter_entries(entries, file: str) -> dict[str, zipfile.ZipInfo]:
    configs = [e for e in entries if PurePosixPath(e.filename).name == ADAPTER_CONFIG]
    if not configs:
        raise AdapterInvalid.single(file, f"holds no {ADAPTER_CONFIG}")
    if len(configs) > 1:
        names = ", ".join(repr(e.filename) for e in configs)
        raise AdapterInvalid.single(
            file, f"holds more than one adapter ({names}); upload one adapter folder per module"
        )
    folder = PurePosixPath(configs[0].filename).parent
    return {
        PurePosixPath(e.filename).name: e
        for e in entries
        if not e.is_dir()
        and PurePosixPath(e.filename).parent == folder
        and PurePosixPath(e.filename).name in ADAPTER_FILES
    }


def _extract_entry(zf, entry, target: Path, file: str, max_bytes: int) -> LocalFile:
    # The sizes in the archive's directory can lie; the bytes actually
    # inflated are counted as well, so a crafted entry cannot exceed the limit.
    digest = hashlib.sha256()
    written = 0
    with zf.open(entry) as source, target.open("wb") as sink:
        while chunk := source.read(CHUNK_BYTES):
            written += len(chunk)
            if written > max_bytes or written > entry.file_size:
                raise AdapterInvalid.single(
                    file, f"entry {entry.filename!r} inflates beyond its declared size"
                )
            digest.update(chunk)
            sink.write(chunk)
    return LocalFile(path=target, size=written, sha256=digest.hexdigest())


# --- adapter_model.bin ------------------------------------------------------


def convert_pickled_weights(source: Path, target: Path) -> None:
    """Write the tensors of a pickled ``adapter_model.bin`` as safetensors.

    Only PyTorch's ``weights_only`` loader reads the pickle: it rebuilds plain
    tensors and containers and refuses any other object, so nothing in the
    file can run code. Whatever it refuses is rejected.
    """
    import torch
    from safetensors.torch import save_file

    file = PICKLED_WEIGHTS
    try:
        # The zip-based format (PyTorch ≥ 1.6) can be memory-mapped; the
        # legacy format cannot, and is small enough for LoRA weights anyway.
        state = torch.load(
            source, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(source)
        )
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AdapterInvalid.single(
            file,
            "was refused by PyTorch's safe loader (weights_only=True), which accepts only "
            f"tensors: {reason[:300]}",
        ) from exc
    if not isinstance(state, dict) or not state:
        raise AdapterInvalid.single(file, "must hold a non-empty mapping of names to tensors")
    tensors = {}
    seen_storage: set[int] = set()
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise AdapterInvalid.single(
                file, f"entry {name!r} is a {type(value).__name__}, not a tensor"
            )
        # safetensors refuses tensors that share memory; copy the rare shared ones.
        pointer = value.untyped_storage().data_ptr()
        tensor = value.contiguous() if pointer not in seen_storage else value.clone()
        seen_storage.add(pointer)
        tensors[name] = tensor
    save_file(tensors, str(target), metadata={"format": "pt"})
