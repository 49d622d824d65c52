"""Migrations that fill module rows, run on the test database from the state before them."""

import pytest
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.modules.hostile_cards import SELF_REFERENCE, alias_bomb, oversized_metadata

BEFORE_CARD_DATA = [("modules", "0007_import_cancel")]
CARD_DATA = [("modules", "0008_card_data")]


def migrate(targets):
    """Migrate to ``targets``; the app registry of that state, for its historical models."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def migrations_restored(transactional_db):
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_card_data_is_filled_from_stored_cards_and_refused_cards_get_none(migrations_restored):
    apps = migrate(BEFORE_CARD_DATA)
    owner = apps.get_model(settings.AUTH_USER_MODEL).objects.create(username="ada")
    base = apps.get_model("modules", "BaseModel").objects.create(
        identifier="acme/tiny-llama", family="llama", task_type="CAUSAL_LM", hidden_size=64,
        num_layers=2, parameter_count=1, linear_shapes={}, weights_location="acme/tiny-llama",
    )  # fmt: skip
    cards = {
        "plain": "---\nlicense: mit\ntags: [qa]\nwhen: 2024-05-06\n---\n# Plain\n",
        "laughs": alias_bomb(),
        "loop": SELF_REFERENCE,
        "long": oversized_metadata(70_000),
        "broken": "---\ntags: [a\n---\n",
        "no-front-matter": "# Only Markdown\n",
        "empty": "",
    }
    Module = apps.get_model("modules", "Module")
    for name, card in cards.items():
        Module.objects.create(
            owner=owner, name=name, base_model=base, card=card, r=4, lora_alpha=8,
            task_type="CAUSAL_LM", parameter_count=1, total_size=1,
        )  # fmt: skip

    apps = migrate(CARD_DATA)

    rows = apps.get_model("modules", "Module").objects.values_list("name", "card", "card_data")
    assert {name: data for name, _, data in rows} == {
        "plain": {"license": "mit", "tags": ["qa"], "when": "2024-05-06"},
        "laughs": {}, "loop": {}, "long": {}, "broken": {}, "no-front-matter": {}, "empty": {},
    }  # fmt: skip
    # The cards themselves are kept as they were.
    assert {name: card for name, card, _ in rows} == cards


BEFORE_COMPOSABLE = [("modules", "0012_name_part_index")]
COMPOSABLE = [("modules", "0013_module_composable")]


def test_composable_is_decided_from_each_stored_config_by_the_engine_rule(migrations_restored):
    apps = migrate(BEFORE_COMPOSABLE)
    owner = apps.get_model(settings.AUTH_USER_MODEL).objects.create(username="ada")
    base = apps.get_model("modules", "BaseModel").objects.create(
        identifier="acme/tiny-llama", family="llama", task_type="CAUSAL_LM", hidden_size=64,
        num_layers=2, parameter_count=1, linear_shapes={}, weights_location="acme/tiny-llama",
    )  # fmt: skip
    plain = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}
    configs = {
        "plain": plain,
        "rslora-patterned": {**plain, "use_rslora": True, "rank_pattern": {"q_proj": 2}},
        "saves-head": {**plain, "modules_to_save": ["lm_head"]},
        "conv1d": {**plain, "fan_in_fan_out": True},
        "biased": {**plain, "bias": "all"},
    }
    Module = apps.get_model("modules", "Module")
    for name, config in configs.items():
        Module.objects.create(
            owner=owner, name=name, base_model=base, r=4, lora_alpha=8, adapter_config=config,
            task_type="CAUSAL_LM", parameter_count=1, total_size=1,
        )  # fmt: skip

    apps = migrate(COMPOSABLE)

    rows = apps.get_model("modules", "Module").objects.values_list(
        "name", "composable", "composable_reason"
    )
    decided = {name: (ok, reason.split(":")[0]) for name, ok, reason in rows}
    assert decided == {
        "plain": (True, ""), "rslora-patterned": (True, ""),
        "saves-head": (False, "modules_to_save is set"),
        "conv1d": (False, "fan_in_fan_out is set"), "biased": (False, "bias is 'all'"),
    }  # fmt: skip


BEFORE_REVISIONS = [("modules", "0016_listed_names_in_downloads_index")]
REVISIONS = [("modules", "0017_module_revisions")]


def test_every_module_gets_one_initial_commit_named_by_its_content(migrations_restored):
    from modules.services.revisions import module_commit_sha

    apps = migrate(BEFORE_REVISIONS)
    owner = apps.get_model(settings.AUTH_USER_MODEL).objects.create(username="ada")
    base = apps.get_model("modules", "BaseModel").objects.create(
        identifier="acme/tiny-llama", family="llama", task_type="CAUSAL_LM", hidden_size=64,
        num_layers=2, parameter_count=1, linear_shapes={}, weights_location="acme/tiny-llama",
    )  # fmt: skip
    Module = apps.get_model("modules", "Module")
    ModuleFile = apps.get_model("modules", "ModuleFile")
    for number in range(3):
        module = Module.objects.create(
            owner=owner, name=f"m{number}", base_model=base, r=4, lora_alpha=8,
            task_type="CAUSAL_LM", parameter_count=1, total_size=2,
        )  # fmt: skip
        for filename in ("adapter_config.json", "adapter_model.safetensors"):
            sha = f"{number}{filename[8]}".ljust(64, "0")
            ModuleFile.objects.create(
                module=module, filename=filename, size=1, sha256=sha, storage_path=f"blobs/{sha}"
            )

    apps = migrate(REVISIONS)

    Module = apps.get_model("modules", "Module")
    for module in Module.objects.all():
        files = list(apps.get_model("modules", "ModuleFile").objects.filter(module=module))
        [commit] = apps.get_model("modules", "ModuleCommit").objects.filter(module=module)
        # The id the Hub protocol gave the module before: cached clients stay valid.
        assert module.revision == commit.commit_id == module_commit_sha(files)
        assert commit.author_id == owner.pk and commit.created_at == module.updated_at
        recorded = commit.files.values_list("filename", "sha256", "storage_path")
        assert sorted(recorded) == sorted((f.filename, f.sha256, f.storage_path) for f in files)
