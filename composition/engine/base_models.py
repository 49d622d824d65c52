"""Base models: read their shape from a config, and turn a GGUF file into a
safetensors folder that transformers and PEFT load directly.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CAUSAL_LM = "CAUSAL_LM"
SEQ_2_SEQ_LM = "SEQ_2_SEQ_LM"
# Written last into a converted folder: a folder without it is an interrupted
# conversion and is redone rather than trusted.
COMPLETE_MARKER = ".complete"


@dataclass(frozen=True)
class LinearShape:
    """Input and output features of a linear layer a LoRA module can target."""

    in_features: int
    out_features: int


@dataclass(frozen=True)
class BaseModelSpec:
    """What the hub needs to know about a base model to check adapters for it."""

    identifier: str
    family: str
    task_type: str
    hidden_size: int
    num_layers: int
    parameter_count: int
    # Leaf module name (``q_proj``, ``v``…) to the distinct shapes it takes in
    # the model; most names have one shape, a few (T5's ``o``) could have more.
    linear_shapes: dict[str, list[LinearShape]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "identifier": self.identifier,
            "family": self.family,
            "task_type": self.task_type,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "parameter_count": self.parameter_count,
            "linear_shapes": {
                name: [[s.in_features, s.out_features] for s in shapes]
                for name, shapes in self.linear_shapes.items()
            },
        }


def read_base_model_spec(model_dir: str | Path, identifier: str | None = None) -> BaseModelSpec:
    """Describe the model whose ``config.json`` is in ``model_dir``.

    The model is built on the meta device, so no weights are read or
    allocated: the linear layers found there are exactly those PEFT can target.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    config = AutoConfig.from_pretrained(model_dir)
    is_seq2seq = bool(getattr(config, "is_encoder_decoder", False))
    auto_class = AutoModelForSeq2SeqLM if is_seq2seq else AutoModelForCausalLM
    with torch.device("meta"):
        model = auto_class.from_config(config)

    shapes: dict[str, list[LinearShape]] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head"):
            leaf = name.rsplit(".", 1)[-1]
            shape = LinearShape(module.in_features, module.out_features)
            if shape not in shapes.setdefault(leaf, []):
                shapes[leaf].append(shape)

    return BaseModelSpec(
        identifier=identifier or getattr(config, "name_or_path", "") or str(model_dir),
        family=config.model_type,
        task_type=SEQ_2_SEQ_LM if is_seq2seq else CAUSAL_LM,
        hidden_size=_first_attr(config, "hidden_size", "d_model"),
        num_layers=_first_attr(config, "num_hidden_layers", "num_layers"),
        parameter_count=sum(p.numel() for p in model.parameters()),
        linear_shapes=shapes,
    )


def materialize_gguf(gguf_path: str | Path, out_dir: str | Path, identifier: str) -> Path:
    """Convert a GGUF file once into a safetensors model folder and return it.

    Quantised GGUF weights are dequantised to float32. A completed folder is
    reused as it is, so calling this again costs nothing.
    """
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if (out_dir / COMPLETE_MARKER).exists():
        return out_dir
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf_path}")

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # Once dequantised the weights are plain tensors; dropping the GGUF
    # quantisation record lets transformers save them as safetensors.
    del model.config.quantization_config
    model.hf_quantizer = None
    model.config.name_or_path = identifier

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Convert into a sibling temporary folder and rename it into place, so a
    # crash never leaves a half-written model where workers look for one.
    staging = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "source.json").write_text(
            json.dumps({"identifier": identifier, "converted_from": gguf_path.name})
        )
        (staging / COMPLETE_MARKER).touch()
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _first_attr(config: object, *names: str) -> int:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return int(value)
    raise ValueError(f"config has none of {names}")
