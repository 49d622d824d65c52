"""The LoRA tensors against the adapter's config and, when known, its base model."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from pathlib import Path

from composition.engine import patterns
from modules.validation.common import (
    ADAPTER_CONFIG,
    SAFETENSORS_WEIGHTS,
    AdapterInvalid,
    AdapterSummary,
    BaseModelShape,
    LoraConfigInfo,
    Problem,
    TensorInfo,
)
from modules.validation.config import read_lora_config
from modules.validation.header import read_safetensors_header

FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
# Patterns in adapter configs are regular expressions; which ones are accepted,
# and the bound on the module paths they are matched against, are decided in
# composition.engine.patterns, shared with the engine.
MAX_MODULE_PATH_LENGTH = patterns.MAX_MODULE_PATH_LENGTH

# PEFT saves each LoRA pair as <prefix><module path>.lora_A.weight / .lora_B.weight.
LORA_TENSOR = re.compile(r"^(?P<module>.+)\.lora_(?P<kind>[AB])\.weight\Z")
PEFT_PREFIX = "base_model.model."
# Path components that precede the index of a transformer block, by family
# (llama and most decoders: layers; t5: block; gpt2: h).
LAYER_CONTAINERS = ("layers", "block", "blocks", "h")


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
