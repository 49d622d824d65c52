"""``adapter_model.bin``: pickled weights, converted to safetensors with PyTorch's
restricted loader (imported only when a pickle is converted)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from modules.validation.common import PICKLED_WEIGHTS, AdapterInvalid


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
