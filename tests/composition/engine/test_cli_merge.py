"""``python -m composition.engine compose --merge``: modules of mixed ranks on a tiny model."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow  # each run starts a Python with torch


@pytest.fixture(scope="module")
def mixed(tiny_llama, make_modules, tmp_path_factory):
    """Two module folders (the CLI names modules by folder): rank 4 and rank 8."""
    [rank4] = make_modules(tiny_llama, rank=4, alpha=8, prefix="cli-rank4")
    [rank8] = make_modules(tiny_llama, rank=8, alpha=8, prefix="cli-rank8")
    root = tmp_path_factory.mktemp("cli-modules")
    for name, ref in (("rank4", rank4), ("rank8", rank8)):
        shutil.copytree(ref.path, root / name)
    return [root / "rank4", root / "rank8"]


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-examples") / "shots.jsonl"
    path.write_text('{"input": "one plus two", "target": "three"}\n')
    return path


def compose(tiny_llama, modules, examples, out, *options):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "composition.engine",
            "compose",
            "--base",
            tiny_llama.path,
            "--base-id",
            "tiny/base",
            "--modules",
            *modules,
            "--examples",
            examples,
            "--out",
            out,
            "--steps",
            "2",
            "--device",
            "cpu",
            *options,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_lorahub_merge_refuses_mixed_ranks_and_names_the_exact_merge(
    tiny_llama, mixed, examples, tmp_path
):
    result = compose(tiny_llama, mixed, examples, tmp_path)

    assert result.returncode == 2
    assert "rank 8, not 4" in result.stderr and 'merge "exact"' in result.stderr
    assert "Traceback" not in result.stderr


def test_exact_merge_composes_mixed_ranks_with_weights_per_group(
    tiny_llama, mixed, examples, tmp_path
):
    result = compose(
        tiny_llama, mixed, examples, tmp_path, "--merge", "exact", "--weight-groups", "2"
    )

    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (12, 12)  # rank 4 + 8, scaling 1
    summary = json.loads(result.stdout)
    assert set(summary["weights"]) == {"rank4", "rank8"}
    assert [len(w) for w in summary["group_weights"].values()] == [2, 2]
