"""Exact match after the LoraHub paper's normalisation (no torch needed)."""


def normalize_answer(text: str) -> str:
    """Strip, lowercase, drop a final '.'."""
    text = text.strip().lower()
    if text.endswith("."):
        text = text[:-1].rstrip()
    return text


def exact_match(output: str, target: str) -> bool:
    return normalize_answer(output) == normalize_answer(target)
