"""``python -m composition.engine`` on the real embedded SmolLM2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from composition.engine.examples import read_examples
from composition.engine.generate import generate
from composition.engine.loading import load_model
from composition.engine.types import ModelRef

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
# Where `make run` converts the embedded model (the hub's MODEL_CACHE_DIR setting).
MODEL_CACHE_DIR = Path(
    os.environ.get("MODEL_CACHE_DIR", Path(os.environ.get("HUB_VAR_DIR", ROOT / "var")) / "models")
)
SMOLLM2 = MODEL_CACHE_DIR / "HuggingFaceTB--SmolLM2-135M-Instruct"
TASK = ROOT / "data" / "upstream" / "anachronisms.jsonl"


def engine(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "composition.engine", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    rows = TASK.read_text().splitlines()
    folder = tmp_path_factory.mktemp("shots")
    (folder / "train.jsonl").write_text("\n".join(rows[:16]) + "\n")
    (folder / "shots.jsonl").write_text("\n".join(rows[20:25]) + "\n")
    (folder / "heldout.jsonl").write_text("\n".join(rows[30:33]) + "\n")
    return folder


@pytest.fixture(scope="module")
def two_modules(shots, tmp_path_factory):
    folder = tmp_path_factory.mktemp("modules")
    for seed in (1, 2):
        result = engine(
            "train", "--base", SMOLLM2, "--data", shots / "train.jsonl",
            "--out", folder / f"m{seed}", "--steps", "2", "--batch-size", "4", "--seed", seed,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "step 2/2" in result.stderr
    return [folder / "m1", folder / "m2"]


def test_cli_composes_a_module_peft_loads_with_the_same_predictions(shots, two_modules, tmp_path):
    out = tmp_path / "composed"
    result = engine(
        "compose", "--base", SMOLLM2, "--modules", *two_modules,
        "--examples", shots / "shots.jsonl", "--heldout", shots / "heldout.jsonl",
        "--out", out, "--steps", "3", "--max-new-tokens", "8",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "step 3/3" in result.stderr
    summary = json.loads(result.stdout)
    assert set(summary["weights"]) == {"m1", "m2"}
    assert json.loads((out / "composition.json").read_text()) == summary

    from peft import PeftModel

    base = load_model(ModelRef("smollm2", SMOLLM2), torch.device("cpu"), torch.float32)
    model = PeftModel.from_pretrained(base.model, out)
    heldout = read_examples(shots / "heldout.jsonl")
    outputs = generate(
        model, base.tokenizer, [ex.input for ex in heldout], "CAUSAL_LM", torch.device("cpu"),
        max_new_tokens=8,
    )  # fmt: skip
    assert outputs == [p["output"] for p in summary["predictions"]]


def test_cli_reports_bad_input_without_a_traceback(shots, two_modules, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "x"}\n')

    result = engine(
        "compose",
        "--base",
        SMOLLM2,
        "--modules",
        *two_modules,
        "--examples",
        bad,
        "--out",
        tmp_path,
    )

    assert result.returncode == 2
    assert "error:" in result.stderr and "row 1: 'target' is missing or empty" in result.stderr
    assert "Traceback" not in result.stderr
