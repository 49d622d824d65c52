"""Which layers LoRA adapts by default, per model family (no heavy imports)."""

from __future__ import annotations

# The attention projections LoRA usually adapts, by model family.
DEFAULT_TARGET_MODULES = {
    "t5": ("q", "v"),
    "mt5": ("q", "v"),
    "bart": ("q_proj", "v_proj"),
    "gpt2": ("c_attn",),
}
FALLBACK_TARGET_MODULES = ("q_proj", "v_proj")


def default_target_modules(family: str) -> tuple[str, ...]:
    return DEFAULT_TARGET_MODULES.get(family, FALLBACK_TARGET_MODULES)
