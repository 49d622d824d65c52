"""Whether an adapter can be composed at all, decided from its config alone.

One rule for the whole hub: uploads and imports record its answer on the
module (so candidates are filtered before a job is queued), and the engine
applies it again when it loads an adapter. No torch here: web processes use it.

Ranks, alphas and rslora may differ between modules (the exact merge sums
``wᵢ·sᵢ·BᵢAᵢ``, each with its own scaling), and so may they between the layers
of one module (``rank_pattern``, ``alpha_pattern``): the scaling is resolved per
layer. What cannot be composed changes the model beyond a low-rank update of
its linear layers, or applies the update in a form the merge does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from composition.engine.patterns import config_pattern_problems

# Config keys that, when set, make an adapter more than ``B·A`` on linear layers.
UNSUPPORTED = {
    "use_dora": "DoRA adapters rescale the base weights, which no merge of A and B reproduces",
    "fan_in_fan_out": "fan_in_fan_out (Conv1D) adapters store their weights transposed",
    "modules_to_save": "modules_to_save replaces whole layers, which cannot be weighted",
    "lora_bias": "lora_bias adds a trained bias to B, which the merge does not carry",
    "trainable_token_indices": "trainable_token_indices retrains embedding rows",
    "layer_replication": "layer_replication changes the model's layers",
}


def composability(config: Mapping[str, Any]) -> tuple[bool, str]:
    """``(True, "")`` when the adapter can be composed, else ``(False, why)``."""
    peft_type = config.get("peft_type", "LORA")
    if peft_type != "LORA":
        return False, f"peft_type is {peft_type!r}; only LORA adapters are composed"
    if "r" not in config:
        return False, "the config has no rank 'r'"
    for key, why in UNSUPPORTED.items():
        if config.get(key):
            return False, f"{key} is set: {why}"
    bias = config.get("bias", "none")
    if bias not in (None, "none"):
        return False, f"bias is {bias!r}: adapters with trained biases cannot be weighted"
    problems = config_pattern_problems(config)
    if problems:
        return False, f"adapter_config.json {'; '.join(problems)}"
    return True, ""
