"""Creating, changing and deleting modules through the services, with real files."""

import hashlib
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from modules import cards
from modules.models import Like, Module, ModuleFile, ModuleSource, Tag
from modules.services import (
    ModuleDuplicate,
    module_create,
    module_delete,
    module_import_folder,
    module_like,
    module_local_files,
    module_local_folder,
    module_record_download,
    module_unlike,
    module_update,
    module_upload,
)
from modules.storage import blob_path
from modules.validation import ADAPTER_CONFIG, MODEL_CARD, SAFETENSORS_WEIGHTS
from tests.modules.adapters import edit_config, stored_files, zip_folder


def sha256_of(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def uploads_of(folder, *names):
    return [SimpleUploadedFile(name, (folder / name).read_bytes()) for name in names]


# --- Registering ----------------------------------------------------------------


def test_folder_is_registered_with_its_config_figures_and_files(
    user, base_model, adapter_dir, isolated_files
):
    module = module_import_folder(
        owner=user, name="tiny-adapter", folder=adapter_dir, base_model=base_model
    )

    assert module.full_name == "ada/tiny-adapter"
    assert (module.r, module.lora_alpha, module.task_type) == (4, 8.0, "CAUSAL_LM")
    assert module.target_modules == ["q_proj", "v_proj"]
    assert module.parameter_count == 1792
    assert module.adapter_config["peft_type"] == "LORA"
    files = {f.filename: f for f in module.files.all()}
    assert set(files) == {ADAPTER_CONFIG, SAFETENSORS_WEIGHTS, MODEL_CARD}
    weights = files[SAFETENSORS_WEIGHTS]
    assert weights.sha256 == sha256_of(adapter_dir / SAFETENSORS_WEIGHTS)
    assert weights.storage_path == blob_path(weights.sha256)
    assert weights.storage_path.startswith(
        f"blobs/sha256/{weights.sha256[:2]}/{weights.sha256[2:4]}/"
    )
    assert (isolated_files / weights.storage_path).read_bytes() == (
        adapter_dir / SAFETENSORS_WEIGHTS
    ).read_bytes()
    assert module.total_size == sum(f.size for f in files.values())


def test_base_model_is_found_from_the_config(user, base_model, adapter_dir):
    edit_config(adapter_dir, base_model_name_or_path="acme/tiny-llama")

    module = module_import_folder(owner=user, name="detected", folder=adapter_dir)

    assert module.base_model == base_model


def test_unregistered_base_model_is_a_field_error_listing_the_registered_ones(
    user, base_model, adapter_dir
):
    edit_config(adapter_dir, base_model_name_or_path="acme/unknown-model")

    with pytest.raises(ValidationError) as raised:
        module_import_folder(owner=user, name="x", folder=adapter_dir)

    assert raised.value.message_dict["base_model"] == [
        "adapter_config.json names the base model 'acme/unknown-model', which is not "
        "registered on the hub; choose one of: acme/tiny-llama."
    ]


def test_uploaded_files_are_registered(user, base_model, adapter_dir):
    uploads = uploads_of(adapter_dir, ADAPTER_CONFIG, SAFETENSORS_WEIGHTS)

    module = module_upload(owner=user, name="uploaded", uploads=uploads, base_model=base_model)

    assert module.files.get(filename=SAFETENSORS_WEIGHTS).sha256 == sha256_of(
        adapter_dir / SAFETENSORS_WEIGHTS
    )


def test_zip_upload_is_registered(user, base_model, adapter_dir, tmp_path):
    archive = zip_folder(adapter_dir, tmp_path / "tiny.zip")

    module = module_upload(
        owner=user,
        name="zipped",
        uploads=[SimpleUploadedFile("tiny.zip", archive.read_bytes())],
        base_model=base_model,
    )

    assert module.parameter_count == 1792


def test_zip_cannot_come_with_other_files(user, base_model, adapter_dir, tmp_path):
    archive = zip_folder(adapter_dir, tmp_path / "tiny.zip")
    uploads = [
        SimpleUploadedFile("tiny.zip", archive.read_bytes()),
        *uploads_of(adapter_dir, ADAPTER_CONFIG),
    ]

    with pytest.raises(ValidationError) as raised:
        module_upload(owner=user, name="x", uploads=uploads, base_model=base_model)

    assert raised.value.message_dict["files"] == [
        "Upload either one .zip of the adapter folder or its files, not both."
    ]


def test_unknown_file_names_are_refused_with_the_names_problems(user, base_model, adapter_dir):
    uploads = uploads_of(adapter_dir, ADAPTER_CONFIG, SAFETENSORS_WEIGHTS)
    uploads.append(SimpleUploadedFile("optimizer.pt", b"state"))

    with pytest.raises(ValidationError) as raised:
        module_upload(owner=user, name="bad name", uploads=uploads, base_model=base_model)

    [message] = raised.value.message_dict["files"]
    assert message.startswith("optimizer.pt: not part of a PEFT adapter")
    assert raised.value.message_dict["name"]


def test_missing_weights_are_reported(user, base_model, adapter_dir):
    with pytest.raises(ValidationError) as raised:
        module_upload(
            owner=user,
            name="x",
            uploads=uploads_of(adapter_dir, ADAPTER_CONFIG),
            base_model=base_model,
        )

    assert raised.value.message_dict["files"] == [
        "adapter_model.safetensors: is missing (or upload adapter_model.bin)"
    ]


def test_pickled_weights_are_stored_as_safetensors(user, base_model, make_adapter, isolated_files):
    folder = make_adapter(safe_serialization=False)

    module = module_import_folder(owner=user, name="from-bin", folder=folder, base_model=base_model)

    assert set(module.files.values_list("filename", flat=True)) == {
        ADAPTER_CONFIG,
        SAFETENSORS_WEIGHTS,
        MODEL_CARD,
    }
    from safetensors.torch import load_file

    weights = module_local_files(module)[SAFETENSORS_WEIGHTS]
    assert len(load_file(str(weights))) == 8


def test_a_failed_upload_leaves_no_row_and_no_file(user, base_model, adapter_dir, isolated_files):
    edit_config(adapter_dir, r=8)

    with pytest.raises(ValidationError) as raised:
        module_import_folder(owner=user, name="broken", folder=adapter_dir, base_model=base_model)

    assert raised.value.message_dict["files"]
    assert Module.objects.count() == ModuleFile.objects.count() == Tag.objects.count() == 0
    assert stored_files(isolated_files) == []


def test_a_failure_while_writing_rows_removes_the_stored_blobs(
    user, base_model, adapter_dir, isolated_files, monkeypatch
):
    # A database failure after the blobs are stored: they must go too.
    def fail(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("modules.services.creation.set_tags", fail)

    with pytest.raises(RuntimeError):
        module_import_folder(owner=user, name="x", folder=adapter_dir, base_model=base_model)

    assert Module.objects.count() == 0
    assert stored_files(isolated_files) == []


@pytest.mark.parametrize(
    "name",
    ["", "-starts-with-dash", "has space", "slash/inside", "é", "x" * 97, "line-break\n"],
)
def test_names_must_be_url_safe(user, base_model, adapter_dir, name):
    with pytest.raises(ValidationError) as raised:
        module_import_folder(owner=user, name=name, folder=adapter_dir, base_model=base_model)

    assert "name" in raised.value.message_dict


def test_names_are_unique_per_owner_ignoring_case(user, other_user, base_model, make_adapter):
    module_import_folder(
        owner=user, name="Summarizer", folder=make_adapter(), base_model=base_model
    )

    with pytest.raises(ValidationError) as raised:
        module_import_folder(
            owner=user, name="summarizer", folder=make_adapter(seed=1), base_model=base_model
        )
    assert raised.value.message_dict["name"] == ["You already have a module named ada/summarizer."]

    # Another owner may use the name.
    module_import_folder(
        owner=other_user, name="summarizer", folder=make_adapter(seed=2), base_model=base_model
    )


def test_same_weights_again_by_the_same_owner_point_to_the_existing_module(
    user, other_user, base_model, make_adapter
):
    first = module_import_folder(
        owner=user, name="first", folder=make_adapter(), base_model=base_model
    )

    with pytest.raises(ModuleDuplicate) as raised:
        module_import_folder(owner=user, name="again", folder=make_adapter(), base_model=base_model)

    assert raised.value.existing == first
    assert "already on the hub as ada/first" in str(raised.value)
    # Someone else may publish the same weights (a fork); the blob is shared.
    fork = module_import_folder(
        owner=other_user, name="fork", folder=make_adapter(), base_model=base_model
    )
    assert (
        fork.files.get(filename=SAFETENSORS_WEIGHTS).storage_path
        == first.files.get(filename=SAFETENSORS_WEIGHTS).storage_path
    )


# --- Model cards ----------------------------------------------------------------


def test_a_card_is_written_when_none_is_uploaded(user, base_model, adapter_dir):
    (adapter_dir / MODEL_CARD).unlink()

    module = module_import_folder(
        owner=user,
        name="carded",
        folder=adapter_dir,
        base_model=base_model,
        description="Answers yes/no questions.",
        tags=["QA", "Yes/No"],
        license="apache-2.0",
    )

    card = cards.parse_card(module.card)
    assert card.metadata == {
        "base_model": "acme/tiny-llama",
        "library_name": "peft",
        "tags": ["qa", "yes-no"],
        "license": "apache-2.0",
    }
    assert card.body.startswith("# ada/carded\n\nAnswers yes/no questions.")
    assert "Rank 4, alpha 8, adapting q_proj, v_proj (1,792 parameters)." in card.body
    assert module.description == "Answers yes/no questions."
    stored = module_local_files(module)[MODEL_CARD].read_text()
    assert stored == module.card


def test_front_matter_of_an_uploaded_card_fills_the_module(user, base_model, adapter_dir):
    (adapter_dir / MODEL_CARD).write_text(
        "---\n"
        "base_model: acme/tiny-llama\n"
        "library_name: peft\n"
        "license: mit\n"
        "tags: [sentiment, base_model:adapter:acme/tiny-llama]\n"
        "datasets: [glue/sst2]\n"
        "---\n\n# Sentiment\n\nClassifies movie reviews as positive or negative.\n"
    )

    module = module_import_folder(
        owner=user, name="sentiment", folder=adapter_dir, base_model=base_model, tags=["reviews"]
    )

    assert module.license == "mit"
    assert module.datasets == ["glue/sst2"]
    assert list(module.tags.values_list("slug", flat=True)) == ["reviews", "sentiment"]
    assert module.description == "Classifies movie reviews as positive or negative."
    # The hub's metadata is written back, so the stored README agrees with the page.
    assert cards.parse_card(module.card).metadata["tags"] == ["sentiment", "reviews"]


def test_an_uploaded_card_that_already_agrees_is_stored_byte_for_byte(
    user, base_model, adapter_dir
):
    text = (
        "---\n# comments survive\nbase_model: acme/tiny-llama\nlibrary_name: peft\n"
        "tags:\n- sentiment\n---\n\nHello.\n"
    )
    (adapter_dir / MODEL_CARD).write_text(text)

    module = module_import_folder(
        owner=user, name="kept", folder=adapter_dir, base_model=base_model
    )

    assert module.card == text
    assert module.files.get(filename=MODEL_CARD).sha256 == sha256_of(adapter_dir / MODEL_CARD)


def test_front_matter_that_is_not_yaml_is_a_file_error(user, base_model, adapter_dir):
    (adapter_dir / MODEL_CARD).write_text("---\ntags: [unclosed\n---\nbody\n")

    with pytest.raises(ValidationError) as raised:
        module_import_folder(owner=user, name="x", folder=adapter_dir, base_model=base_model)

    [message] = raised.value.message_dict["files"]
    assert message.startswith("README.md: has front matter that is not valid YAML")


# --- Lineage --------------------------------------------------------------------


def test_a_composed_module_records_its_sources_and_weights(user, base_model, make_adapter):
    one = module_import_folder(
        owner=user, name="one", folder=make_adapter(seed=1), base_model=base_model
    )
    two = module_import_folder(
        owner=user, name="two", folder=make_adapter(seed=2), base_model=base_model
    )
    folder = make_adapter(seed=3)

    composed = module_create(
        owner=user,
        name="composed",
        files={name: folder / name for name in (ADAPTER_CONFIG, SAFETENSORS_WEIGHTS)},
        base_model=base_model,
        lineage=[(one, 0.75), (two, -0.25)],
    )

    assert [(s.source, s.weight, s.position) for s in composed.sources.all()] == [
        (one, 0.75, 0),
        (two, -0.25, 1),
    ]
    assert list(
        ModuleSource.objects.filter(source=one).values_list("composed__name", flat=True)
    ) == ["composed"]


def test_lineage_sources_must_share_the_base_model(user, base_model, make_adapter):
    other_base = type(base_model).objects.create(
        identifier="acme/other",
        family="llama",
        task_type="CAUSAL_LM",
        hidden_size=64,
        num_layers=2,
        parameter_count=1,
        linear_shapes=base_model.linear_shapes,
        weights_location="/nowhere",
    )
    foreign = module_import_folder(
        owner=user, name="foreign", folder=make_adapter(seed=1), base_model=other_base
    )
    folder = make_adapter(seed=2)

    with pytest.raises(ValidationError) as raised:
        module_import_folder(
            owner=user, name="c", folder=folder, base_model=base_model, lineage=[(foreign, 1.0)]
        )

    assert (
        "a composition merges modules of one base model" in raised.value.message_dict["lineage"][0]
    )


def test_deleting_a_source_keeps_the_lineage_readable(user, base_model, make_adapter):
    source = module_import_folder(
        owner=user, name="src", folder=make_adapter(seed=1), base_model=base_model
    )
    composed = module_import_folder(
        owner=user,
        name="c",
        folder=make_adapter(seed=2),
        base_model=base_model,
        lineage=[(source, 1.0)],
    )

    module_delete(module=source)

    [row] = composed.sources.all()
    assert row.source is None
    assert row.source_name == "ada/src"


# --- Changing and deleting --------------------------------------------------------


def test_update_rewrites_the_card_and_its_file(
    user, module, isolated_files, django_capture_on_commit_callbacks
):
    old_card_blob = module.files.get(filename=MODEL_CARD).storage_path

    with django_capture_on_commit_callbacks(execute=True):
        module_update(module=module, tags=["Chat", "tiny"], license="mit", description="New words.")

    module.refresh_from_db()
    assert sorted(module.tags.values_list("slug", flat=True)) == ["chat", "tiny"]
    assert module.license == "mit"
    assert module.description == "New words."
    metadata = cards.parse_card(module.card).metadata
    assert (metadata["tags"], metadata["license"]) == (["chat", "tiny"], "mit")
    card_file = module.files.get(filename=MODEL_CARD)
    assert (isolated_files / card_file.storage_path).read_text() == module.card
    # The first commit still has the old card, so its blob stays.
    assert (isolated_files / old_card_blob).exists()
    first = module.commits.order_by("created_at", "id").first()
    assert first.files.get(filename=MODEL_CARD).storage_path == old_card_blob


def test_update_with_a_new_card_takes_its_tags_and_license(user, module):
    module_update(
        module=module, card="---\nlicense: cc-by-4.0\ntags: [poetry]\n---\n\nWrites poems.\n"
    )

    module.refresh_from_db()
    assert module.license == "cc-by-4.0"
    assert list(module.tags.values_list("slug", flat=True)) == ["poetry"]
    assert cards.parse_card(module.card).metadata["base_model"] == "acme/tiny-llama"


def test_update_with_invalid_front_matter_is_a_card_error(user, module):
    with pytest.raises(ValidationError) as raised:
        module_update(module=module, card="---\n- a list\n---\n")

    assert raised.value.message_dict["card"] == ["has front matter that is not a YAML mapping"]


def test_delete_removes_rows_and_files_no_other_module_shares(
    user, other_user, base_model, make_adapter, isolated_files, django_capture_on_commit_callbacks
):
    # Its own tag gives "mine" a card of its own; the weights are the same.
    mine = module_import_folder(
        owner=user, name="mine", folder=make_adapter(), base_model=base_model, tags=["mine"]
    )
    fork = module_import_folder(
        owner=other_user, name="fork", folder=make_adapter(), base_model=base_model
    )
    shared = fork.files.get(filename=SAFETENSORS_WEIGHTS).storage_path
    own_card = mine.files.get(filename=MODEL_CARD).storage_path

    with django_capture_on_commit_callbacks(execute=True):
        module_delete(module=mine)

    assert not Module.objects.filter(pk=mine.pk).exists()
    assert (isolated_files / shared).exists()  # still used by the fork
    assert not (isolated_files / own_card).exists()

    with django_capture_on_commit_callbacks(execute=True):
        module_delete(module=fork)
    assert stored_files(isolated_files) == []


def test_likes_are_counted_once_per_user(user, other_user, module):
    assert module_like(module=module, user=user) is True
    assert module_like(module=module, user=user) is False
    module_like(module=module, user=other_user)
    module.refresh_from_db()
    assert module.like_count == 2 == Like.objects.filter(module=module).count()

    assert module_unlike(module=module, user=user) is True
    assert module_unlike(module=module, user=user) is False
    module.refresh_from_db()
    assert module.like_count == 1


def test_download_is_counted_without_touching_updated_at(module):
    updated_at = module.updated_at

    module_record_download(module=module)
    module_record_download(module=module)

    module.refresh_from_db()
    assert module.download_count == 2
    assert module.updated_at == updated_at


# --- Files for workers --------------------------------------------------------------


def test_local_files_are_the_stored_files_on_local_storage(module, adapter_dir, isolated_files):
    paths = module_local_files(module)

    assert paths[SAFETENSORS_WEIGHTS].is_relative_to(isolated_files)
    assert (
        paths[SAFETENSORS_WEIGHTS].read_bytes() == (adapter_dir / SAFETENSORS_WEIGHTS).read_bytes()
    )
    assert json.loads(paths[ADAPTER_CONFIG].read_text())["r"] == 4


def test_local_folder_loads_with_peft(module, adapter_dir):
    from peft import PeftConfig
    from safetensors.torch import load_file

    folder = module_local_folder(module)

    assert module_local_folder(module) == folder  # made once
    assert PeftConfig.from_pretrained(str(folder)).r == 4
    weights = load_file(str(folder / SAFETENSORS_WEIGHTS))
    assert weights.keys() == load_file(str(adapter_dir / SAFETENSORS_WEIGHTS)).keys()
