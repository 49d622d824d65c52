"""Real PEFT adapters for tests, and ways to damage copies of them.

Adapters are built by PEFT itself on a tiny randomly initialised Llama whose
linear layers match the ``base_model`` fixture (q_proj 64 → 64, v_proj 64 → 32,
2 layers), then saved with ``save_pretrained``. Malformed cases start from
such a folder and break exactly one thing.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

# Shapes of the base_model fixture ("acme/tiny-llama").
TINY_LLAMA = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 128,
}
# SmolLM2-135M's attention shapes (q_proj 576 → 576, v_proj 576 → 192) in one layer.
SMOLLM2_LIKE = {
    "hidden_size": 576,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "vocab_size": 64,
}


def build_peft_adapter(
    folder: Path,
    *,
    seed: int = 0,
    r: int = 4,
    target_modules: tuple[str, ...] = ("q_proj", "v_proj"),
    safe_serialization: bool = True,
    **llama_overrides,
) -> Path:
    """Save a LoRA adapter of a random tiny Llama with PEFT into ``folder``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(**{**TINY_LLAMA, **llama_overrides})
    model = LlamaForCausalLM(config)
    lora = LoraConfig(
        r=r,
        lora_alpha=2 * r,
        target_modules=list(target_modules),
        task_type="CAUSAL_LM",
        # Random B as well as A, so every seed gives different weights.
        init_lora_weights=False,
    )
    peft_model = get_peft_model(model, lora)
    peft_model.save_pretrained(folder, safe_serialization=safe_serialization)
    return folder


def copy_adapter(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def edit_config(folder: Path, **changes) -> Path:
    """Change keys of adapter_config.json (None deletes a key)."""
    path = folder / "adapter_config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(json.dumps(config))
    return folder


def rewrite_header(path: Path, change: Callable[[dict], None]) -> None:
    """Edit the JSON header of a safetensors file in place, keeping its data bytes."""
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    change(header)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + raw[8 + size :])


def drop_tensor(path: Path, name_fragment: str) -> None:
    """Save the file again without the first tensor whose name contains the fragment."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    victim = next(name for name in tensors if name_fragment in name)
    del tensors[victim]
    save_file(tensors, str(path), metadata={"format": "pt"})


def zip_folder(folder: Path, archive: Path, *, prefix: str = "adapter/") -> Path:
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(folder.iterdir()):
            zf.write(file, prefix + file.name)
    return archive


def stored_files(media: Path) -> list[str]:
    """Every file under a media folder, relative to it."""
    if not media.exists():
        return []
    return sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file())


def widen_adapter(folder: Path, r: int, *, seed: int = 0) -> Path:
    """Give an adapter folder a much larger rank, with random weights of that rank.

    A wide adapter is a large file (r × 1792 bytes on the tiny Llama) that is
    still valid for the ``base_model`` fixture: what a copy takes long enough
    to be caught in the middle of.
    """
    import torch
    from safetensors.torch import load_file, save_file

    path = folder / "adapter_model.safetensors"
    generator = torch.Generator().manual_seed(seed)
    widened = {}
    for name, tensor in load_file(str(path)).items():
        rows, columns = tensor.shape
        shape = (r, columns) if "lora_A" in name else (rows, r)
        widened[name] = torch.randn(shape, generator=generator)
    save_file(widened, str(path), metadata={"format": "pt"})
    return edit_config(folder, r=r, lora_alpha=2 * r)
