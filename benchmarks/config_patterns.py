r"""What a hostile ``target_modules`` pattern costs, with and without the hub's rule.

1. Python's ``re.fullmatch`` (what PEFT and the hub used to run) of
   ``(?:.|.){k}.*X`` against one Llama module name, for growing k: the time
   doubles with each step, so k = 23 (the 14-character pattern of the attack)
   is extrapolated from the largest k measured.
2. The rule of ``composition.engine.patterns``: the time to refuse that
   pattern, and the worst times to check patterns of the longest length.
3. The slowest accepted patterns of a sample against adversarial 256-character
   names, the hub's bound on module paths.

    .venv/bin/python benchmarks/config_patterns.py [--largest-k 20]

Figures vary with the machine and its load; they show orders of magnitude.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from composition.engine.patterns import (
    FULL_NAME,
    MAX_MODULE_PATH_LENGTH,
    PATTERN_KEY,
    pattern_problem,
)

NAME = "model.layers.0.self_attn.q_proj"
ATTACK_REPEATS = 23
LONGEST_PATTERNS = {
    "256 dots": "." * 256,
    "84 nested groups": "(" * 84 + "a" + ")" * 84,
    "(?:.|.) × 36": "(?:.|.)" * 36,
    "64 classes [^.]": "[^.]" * 64,
}
ACCEPTED = [
    r".*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
    r"^(?!.*lm_head).*proj$",
    r"model\.layers\.\d+\.self_attn\.(q|v)_proj",
    ".*" + "a" * 120 + "b",
    r"(a|aa)(a|aa)(a|aa)(a|aa).*\.[^.]+",
]
NAMES = [
    "a" * (MAX_MODULE_PATH_LENGTH - 1) + "X",
    "a." * (MAX_MODULE_PATH_LENGTH // 2),
    "1" * MAX_MODULE_PATH_LENGTH,
    ("aaa." * MAX_MODULE_PATH_LENGTH)[: MAX_MODULE_PATH_LENGTH - 1] + "\n",
]


def seconds(action, repeat: int = 1) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        action()
    return (time.perf_counter() - started) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--largest-k", type=int, default=20)
    largest = parser.parse_args().largest_k

    print(f"1. re.fullmatch((?:.|.){{k}}.*X, {NAME!r}), one name")
    last = 0.0
    for k in range(largest - 4, largest + 1):
        compiled = re.compile(rf"(?:.|.){{{k}}}.*X")
        last = seconds(lambda compiled=compiled: compiled.fullmatch(NAME))
        print(f"   k = {k}: {last:.3f} s")
    extrapolated = last * 2 ** (ATTACK_REPEATS - largest)
    print(f"   k = {ATTACK_REPEATS} (extrapolated): {extrapolated:.1f} s per module name")

    attack = rf"(?:.|.){{{ATTACK_REPEATS}}}.*X"
    refused = seconds(lambda: pattern_problem(attack), repeat=100)
    print(f"2. the rule refuses {attack!r} in {refused * 1e6:.0f} µs")
    for label, pattern in LONGEST_PATTERNS.items():
        taken = seconds(lambda p=pattern: pattern_problem(p, PATTERN_KEY), repeat=10)
        print(f"   checking {label} as a rank_pattern key: {taken * 1e3:.1f} ms")

    print(f"3. accepted patterns against adversarial {MAX_MODULE_PATH_LENGTH}-character names")
    for pattern in ACCEPTED:
        assert pattern_problem(pattern, FULL_NAME) is None, pattern
        compiled = re.compile(pattern)
        worst = max(seconds(lambda c=compiled, n=name: c.fullmatch(n), repeat=20) for name in NAMES)
        print(f"   {pattern[:60]!r}: at most {worst * 1e6:.0f} µs per name")


if __name__ == "__main__":
    main()
