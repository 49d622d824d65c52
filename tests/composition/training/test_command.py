"""manage.py train_module: trains in-process, registers the module, refuses bad input."""

import pytest
from django.core.management import CommandError, call_command

from composition.models import TrainingJob
from modules.models import Module
from tests.composition.training.conftest import TINY_SETTINGS

pytestmark = pytest.mark.django_db

OPTIONS = {**TINY_SETTINGS, "batch_size": 2}


def train(**options):
    call_command("train_module", **{"base": "tiny/llama", **OPTIONS, **options})


def work_folders(settings):
    root = settings.JOB_WORK_DIR
    return {p.name for p in root.glob("train-module-*")} if root.exists() else set()


def test_trains_and_registers_a_private_module_with_a_training_card(
    tiny_base, user, data_file, capsys, settings
):
    before = work_folders(settings)

    train(data=data_file, name="ada/tiny-skill", steps=4, report_every=2)

    out = capsys.readouterr().out
    assert "step 2/4" in out and "step 4/4" in out
    assert "Registered ada/tiny-skill (private)" in out
    module = Module.objects.get(owner=user, name="tiny-skill")
    assert module.base_model == tiny_base and not module.is_public
    assert (module.r, module.lora_alpha, sorted(module.target_modules)) == (
        4,
        8,
        ["q_proj", "v_proj"],
    )
    assert "trained" in set(module.tags.values_list("slug", flat=True))
    assert "`train.jsonl` (3 examples; 4 steps × batch 2 = 8 examples seen)" in module.card
    assert "rank 4, alpha 8, dropout 0.1, targets q_proj, v_proj" in module.card
    assert "Final training loss (mean of the last 10 steps):" in module.card
    assert "seed 0" in module.card
    # The command trains in its own process: it leaves no job row and no work folder.
    assert not TrainingJob.objects.exists()
    assert work_folders(settings) == before


def test_public_flag_and_explicit_targets(tiny_base, user, data_file):
    train(data=data_file, name="ada/q-only", targets="q_proj", public=True)

    module = Module.objects.get(owner=user, name="q-only")
    assert module.is_public and module.target_modules == ["q_proj"]


def test_csv_data_is_read_too(tiny_base, user, tmp_path):
    data = tmp_path / "rows.csv"
    data.write_text("input,target\none plus two,three\nthe answer is not true,false\n")

    train(data=data, name="ada/from-csv")

    assert "`rows.csv` (2 examples" in Module.objects.get(name="from-csv").card


def test_same_seed_gives_the_same_weights(tiny_base, user, data_file):
    train(data=data_file, name="ada/first")

    with pytest.raises(CommandError, match="already on the hub as ada/first"):
        train(data=data_file, name="ada/second")
    assert not Module.objects.filter(name="second").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"base": "nobody/nothing"}, "unknown base model 'nobody/nothing'; registered: tiny/llama"),
        ({"name": "nobody/skill"}, "unknown owner 'nobody'"),
        ({"name": "skill"}, "--name must be owner/name"),
        ({"name": "ada/a/b"}, "--name must be owner/name"),
        ({"name": "ada/-bad name"}, "name: Use 1 to 96 letters"),
        ({"steps": 0}, "steps: Use a value from 1 to 10000."),
        ({"rank": 0}, "rank: Use a value from 1 to 256."),
        ({"lr": 0.0}, "learning_rate: Use a value from 1e-07 to 1."),
        ({"dropout": 1.0}, "dropout: Use a value from 0 to 0.99."),
        ({"targets": "q_proj,o_nowhere"}, "target_modules: tiny/llama has no layers named"),
    ],
)
def test_bad_options_are_refused_before_training(
    tiny_base, user, data_file, options, message, settings
):
    before = work_folders(settings)

    with pytest.raises(CommandError) as raised:
        train(**{"data": data_file, "name": "ada/skill", **options})

    assert message in str(raised.value)
    assert not Module.objects.exists()
    assert work_folders(settings) == before


def test_a_name_already_taken_is_refused(tiny_base, user, data_file, module):
    with pytest.raises(CommandError, match="You already have a module named ada/tiny-adapter"):
        train(data=data_file, name="ada/tiny-adapter")


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("missing.jsonl", None, "cannot be read"),
        ("bad.jsonl", '{"input": "x", "target": "y"}\nnot json\n', "row 2: not valid JSON"),
        ("empty.jsonl", "\n\n", "no examples"),
        ("half.jsonl", '{"input": "x"}\n', "row 1: 'target' is missing or empty"),
        ("cols.csv", "question,answer\nx,y\n", "must name the columns 'input' and 'target'"),
        ("data.parquet", "x", "use a .jsonl, .csv or .tsv file"),
        ("latin.jsonl", b'{"input": "caf\xe9", "target": "x"}\n', "cannot be read"),
    ],
)
def test_unreadable_or_malformed_data_is_refused(
    tiny_base, user, tmp_path, filename, content, message
):
    path = tmp_path / filename
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)

    with pytest.raises(CommandError, match=message):
        train(data=path, name="ada/skill")
    assert not Module.objects.exists()


def test_progress_lines_come_every_few_steps(tiny_base, user, data_file, capsys):
    train(data=data_file, name="ada/steps", steps=40, report_every=0)

    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    # About 20 lines: every 2nd step of 40, plus the first.
    assert lines[0].startswith("step 1/40") and lines[-1].startswith("step 40/40")
    assert 15 <= len(lines) <= 25
