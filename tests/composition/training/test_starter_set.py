"""``manage.py train_starter_set`` on the real embedded SmolLM2, two steps a module."""

import json

import pytest
from django.core.management import CommandError, call_command

from composition.engine.adapters import load_adapter
from composition.engine.types import AdapterRef
from composition.management.commands.train_starter_set import RECIPE

pytestmark = pytest.mark.slow

# The shortest upstream tasks, so two real steps stay cheap.
SHORT_TASKS = ["linguistic_mappings_past_tense", "qa_wikidata"]


def read_module(folder):
    return load_adapter(AdapterRef(folder.name, folder))


def train_set(out, *tasks, steps=2):
    call_command("train_starter_set", "--only", *tasks, "--steps", str(steps), "--out", str(out))


def test_trains_one_module_per_task_with_card_and_settings(smollm2_base_model, tmp_path, capsys):
    train_set(tmp_path, SHORT_TASKS[0], steps=10)

    folder = tmp_path / SHORT_TASKS[0]
    adapter = read_module(folder)
    assert sorted(adapter.config["target_modules"]) == ["q_proj", "v_proj"]
    assert adapter.rank == RECIPE.rank
    recorded = json.loads((folder / "training.json").read_text())
    assert recorded["settings"]["steps"] == 10
    assert len(recorded["loss_history"]) == 10
    card = (folder / "README.md").read_text()
    assert f"lorahub/{SHORT_TASKS[0]}" in card
    assert "data/upstream/linguistic_mappings_past_tense.jsonl" in card
    assert not list(tmp_path.glob("*.partial"))
    out = capsys.readouterr().out
    assert "0 of 1 trained; 1 to go" in out
    assert "step 10/10" in out
    assert f"[1/1] {SHORT_TASKS[0]}: done" in out


def test_a_second_run_skips_finished_modules_and_redoes_half_written_ones(
    smollm2_base_model, tmp_path, capsys
):
    train_set(tmp_path, SHORT_TASKS[0])
    finished = (tmp_path / SHORT_TASKS[0] / "adapter_model.safetensors").read_bytes()
    # A run stopped mid-module leaves only its staging folder behind.
    stale = tmp_path / f"{SHORT_TASKS[1]}.partial"
    stale.mkdir()
    (stale / "adapter_model.safetensors").write_bytes(b"half written")
    (stale / "leftover.bin").write_bytes(b"from the stopped run")
    capsys.readouterr()

    train_set(tmp_path, *SHORT_TASKS)

    out = capsys.readouterr().out
    assert "1 of 2 trained; 1 to go" in out
    assert f"{SHORT_TASKS[0]}: done" not in out
    assert (tmp_path / SHORT_TASKS[0] / "adapter_model.safetensors").read_bytes() == finished
    assert read_module(tmp_path / SHORT_TASKS[1]).rank == RECIPE.rank
    assert not stale.exists()
    assert not (tmp_path / SHORT_TASKS[1] / "leftover.bin").exists()


def test_unknown_task_names_are_refused_before_any_training(tmp_path):
    with pytest.raises(CommandError, match="unknown tasks: no_such_task"):
        train_set(tmp_path, SHORT_TASKS[0], "no_such_task")
    assert not any(tmp_path.iterdir())
