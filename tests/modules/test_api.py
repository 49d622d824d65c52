"""The registry's REST API: permissions on every write, private modules, the upload round trip."""

import hashlib
import io
import zipfile

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from modules.cards import MAX_CARD_DATA_BYTES
from modules.models import Module
from modules.services import module_import_folder
from modules.validation import ADAPTER_CONFIG, MODEL_CARD, SAFETENSORS_WEIGHTS
from tests.modules.adapters import edit_config, stored_files, zip_folder
from tests.modules.hostile_cards import alias_bomb, oversized_metadata

MODULE_URL = "/api/v1/modules/ada/tiny-adapter/"


def api_as(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def adapter_upload(folder, name="uploaded", **fields) -> dict:
    files = [
        open(folder / filename, "rb")  # noqa: SIM115 - the test client reads and closes them
        for filename in (ADAPTER_CONFIG, SAFETENSORS_WEIGHTS, MODEL_CARD)
        if (folder / filename).exists()
    ]
    return {"name": name, "files": files, **fields}


@pytest.fixture
def private_module(user, base_model, make_adapter):
    return module_import_folder(
        owner=user,
        name="secret",
        folder=make_adapter(seed=7),
        base_model=base_model,
        visibility=Module.Visibility.PRIVATE,
    )


# --- Upload ---------------------------------------------------------------------


def test_upload_needs_a_token(db, adapter_dir):
    response = api_as(None).post(
        "/api/v1/modules/", adapter_upload(adapter_dir), format="multipart"
    )

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert Module.objects.count() == 0


def test_upload_search_page_and_download_round_trip(user, base_model, adapter_dir):
    (adapter_dir / MODEL_CARD).unlink()  # the hub writes one
    api = api_as(user)

    created = api.post(
        "/api/v1/modules/",
        adapter_upload(
            adapter_dir,
            name="sst2-sentiment",
            base_model="acme/tiny-llama",
            tags="sentiment, movie reviews",
            description="Says whether a review is positive.",
            license="apache-2.0",
        ),
        format="multipart",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["full_name"] == "ada/sst2-sentiment"
    assert (body["rank"], body["parameter_count"], body["base_model"]) == (
        4,
        1792,
        "acme/tiny-llama",
    )
    assert body["tags"] == ["movie-reviews", "sentiment"]
    weights_sha = hashlib.sha256((adapter_dir / SAFETENSORS_WEIGHTS).read_bytes()).hexdigest()
    files = {f["filename"]: f for f in body["files"]}
    assert files[SAFETENSORS_WEIGHTS]["sha256"] == weights_sha

    anonymous = api_as(None)
    found = anonymous.get("/api/v1/modules/", {"search": "sentiment"}).json()
    assert [m["full_name"] for m in found["results"]] == ["ada/sst2-sentiment"]
    page = anonymous.get(body["html_url"])
    assert page.status_code == 200
    assert b"Says whether a review is positive." in page.content

    download = anonymous.get(body["download_url"])
    assert download.status_code == 200
    assert download["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert sorted(archive.namelist()) == [
        "sst2-sentiment/README.md",
        "sst2-sentiment/adapter_config.json",
        "sst2-sentiment/adapter_model.safetensors",
    ]
    unpacked = archive.read("sst2-sentiment/adapter_model.safetensors")
    assert hashlib.sha256(unpacked).hexdigest() == weights_sha

    single = anonymous.get(files[SAFETENSORS_WEIGHTS]["download_url"])
    assert single.status_code == 200
    assert hashlib.sha256(b"".join(single.streaming_content)).hexdigest() == weights_sha
    # The .zip counts; the weights alone do not (a download is a fetch of adapter_config.json).
    assert anonymous.get(body["url"]).json()["download_count"] == 1


def test_upload_of_a_zip(user, base_model, adapter_dir, tmp_path):
    archive = zip_folder(adapter_dir, tmp_path / "tiny.zip")

    with archive.open("rb") as stream:
        response = api_as(user).post(
            "/api/v1/modules/",
            {"name": "zipped", "files": [stream], "base_model": "acme/tiny-llama"},
            format="multipart",
        )

    assert response.status_code == 201, response.content
    assert response.json()["target_modules"] == ["q_proj", "v_proj"]


def test_broken_zip_is_a_400_that_never_names_the_servers_temporary_file(
    user, base_model, isolated_files, settings
):
    # Over Django's in-memory threshold, so the upload is checked from a temporary file.
    broken = io.BytesIO(b"not a zip archive " * 200_000)
    broken.name = "my-adapter.zip"

    response = api_as(user).post(
        "/api/v1/modules/", {"name": "zipped", "files": [broken]}, format="multipart"
    )

    assert response.status_code == 400
    [message] = response.json()["files"]
    assert message.endswith(": is not a readable zip archive (File is not a zip file)")
    assert "tmp" not in message and ".upload" not in message
    assert str(settings.FILE_UPLOAD_TEMP_DIR) not in message


@pytest.mark.parametrize("name", [" spaced", "spaced ", "spaced\n"])
def test_a_name_with_spaces_around_it_is_refused_not_trimmed(user, base_model, adapter_dir, name):
    response = api_as(user).post(
        "/api/v1/modules/", adapter_upload(adapter_dir, name=name), format="multipart"
    )

    assert response.status_code == 400
    assert response.json() == {
        "name": ["Remove the spaces or line breaks before or after the name."]
    }
    assert Module.objects.count() == 0


def test_names_from_the_url_show_control_characters_as_escapes_in_errors(db):
    response = api_as().get("/api/v1/modules/ada/x%1B%5B2J/")

    assert response.status_code == 404
    assert response.json() == {"detail": "No module ada/x\\x1b[2J."}


def test_invalid_adapter_is_a_400_with_file_errors_and_leaves_nothing(
    user, base_model, adapter_dir, isolated_files, settings
):
    edit_config(adapter_dir, target_modules=["q_proj", "v_proj", "k_proj"])

    response = api_as(user).post(
        "/api/v1/modules/",
        adapter_upload(adapter_dir, base_model="acme/tiny-llama"),
        format="multipart",
    )

    assert response.status_code == 400
    assert response.json() == {
        "files": [
            "adapter_model.safetensors: target module 'k_proj' is listed in adapter_config.json "
            "but no lora_A/lora_B tensor adapts it"
        ]
    }
    assert Module.objects.count() == 0
    assert stored_files(isolated_files) == []
    assert list(settings.FILE_UPLOAD_TEMP_DIR.iterdir()) == []


@pytest.mark.parametrize(
    "card, message",
    [
        (alias_bomb(), "README.md: has front matter with a YAML anchor or alias (&l0 or *l0, "),
        (oversized_metadata(MAX_CARD_DATA_BYTES), "README.md: has front matter of 65,5"),
    ],
    ids=["alias-bomb", "oversized-metadata"],
)
def test_upload_with_a_hostile_card_is_a_400_that_names_the_readme(
    user, base_model, adapter_dir, isolated_files, card, message
):
    (adapter_dir / MODEL_CARD).write_text(card)

    response = api_as(user).post(
        "/api/v1/modules/",
        adapter_upload(adapter_dir, base_model="acme/tiny-llama"),
        format="multipart",
    )

    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == ["files"] and len(errors["files"]) == 1
    assert errors["files"][0].startswith(message)
    assert Module.objects.count() == 0
    assert stored_files(isolated_files) == []


# Shaped like the attack's (?:.|.){23}.*X but shorter, so that a hub without the rule
# answers at once: it refused the first for selecting nothing and accepted the second.
@pytest.mark.parametrize("pattern", [r"(?:.|.){12}.*X", r"(?:.|.){12}.*proj"])
def test_a_target_pattern_that_could_burn_cpu_is_a_400_on_the_config(
    user, base_model, adapter_dir, isolated_files, pattern
):
    edit_config(adapter_dir, target_modules=pattern)

    response = api_as(user).post(
        "/api/v1/modules/",
        adapter_upload(adapter_dir, base_model="acme/tiny-llama"),
        format="multipart",
    )

    assert response.status_code == 400
    [message] = response.json()["files"]
    assert message.startswith('adapter_config.json: "target_modules" repeats a group')
    assert message.endswith('list the module names instead, e.g. ["q_proj", "v_proj"]')
    assert Module.objects.count() == 0
    assert stored_files(isolated_files) == []


def test_a_target_pattern_peft_users_write_is_accepted(user, base_model, adapter_dir):
    edit_config(adapter_dir, target_modules=r".*\.(q_proj|v_proj)", rank_pattern={"v_proj": 4})

    response = api_as(user).post(
        "/api/v1/modules/",
        adapter_upload(adapter_dir, base_model="acme/tiny-llama"),
        format="multipart",
    )

    assert response.status_code == 201, response.content
    assert response.json()["target_modules"] == ["q_proj", "v_proj"]


def test_bad_name_and_unknown_base_model_are_field_errors(user, base_model, adapter_dir):
    response = api_as(user).post(
        "/api/v1/modules/",
        adapter_upload(adapter_dir, name="no spaces please", base_model="acme/absent"),
        format="multipart",
    )

    assert response.status_code == 400
    errors = response.json()
    assert set(errors) == {"name", "base_model"}
    assert "acme/absent" in errors["base_model"][0]


def test_same_weights_again_are_a_409_that_links_the_existing_module(user, module, adapter_dir):
    response = api_as(user).post(
        "/api/v1/modules/", adapter_upload(adapter_dir, name="again"), format="multipart"
    )

    assert response.status_code == 409
    assert response.json()["existing"] == "http://testserver/ada/tiny-adapter/"
    assert "already on the hub as ada/tiny-adapter" in response.json()["detail"]


def test_upload_announced_over_the_limit_is_refused_before_it_is_read(
    user, base_model, adapter_dir, settings
):
    settings.HUB_MAX_UPLOAD_BYTES = 1000
    (adapter_dir / MODEL_CARD).write_bytes(b"x" * (2 * 1024 * 1024))

    response = api_as(user).post(
        "/api/v1/modules/", adapter_upload(adapter_dir), format="multipart"
    )

    assert response.status_code == 413
    assert response.json()["detail"] == (
        "The upload is larger than the limit of 1000 bytes (1000 bytes)."
    )
    assert list(settings.FILE_UPLOAD_TEMP_DIR.iterdir()) == []


def test_upload_that_streams_past_the_limit_is_stopped(user, base_model, adapter_dir, settings):
    # The request is small enough to start; its files cross the limit while streaming.
    settings.HUB_MAX_UPLOAD_BYTES = 4096

    response = api_as(user).post(
        "/api/v1/modules/", adapter_upload(adapter_dir), format="multipart"
    )

    assert response.status_code == 413
    assert Module.objects.count() == 0
    assert list(settings.FILE_UPLOAD_TEMP_DIR.iterdir()) == []


# --- Reading --------------------------------------------------------------------


def test_text_files_are_served_as_utf_8(module):
    def content_type(filename):
        return api_as().get(f"{MODULE_URL}files/{filename}")["Content-Type"]

    assert content_type(MODEL_CARD) == "text/markdown; charset=utf-8"
    assert content_type(ADAPTER_CONFIG) == "application/json; charset=utf-8"
    assert content_type(SAFETENSORS_WEIGHTS) == "application/octet-stream"


def test_detail_lists_files_config_and_lineage(user, base_model, module, make_adapter):
    composed = module_import_folder(
        owner=user,
        name="composed",
        folder=make_adapter(seed=3),
        base_model=base_model,
        lineage=[(module, 0.5)],
    )
    api = api_as(None)

    source = api.get(MODULE_URL).json()
    result = api.get("/api/v1/modules/ada/composed/").json()

    assert {f["filename"] for f in source["files"]} == {
        ADAPTER_CONFIG,
        SAFETENSORS_WEIGHTS,
        MODEL_CARD,
    }
    assert source["adapter_config"]["r"] == 4
    assert source["used_in"] == [{"full_name": "ada/composed", "weight": 0.5}]
    assert result["sources"] == [
        {"full_name": "ada/tiny-adapter", "weight": 0.5, "visible": True, "deleted": False,
         "revision": module.revision}
    ]  # fmt: skip
    assert composed.full_name == result["full_name"]


def test_private_sources_are_not_named_to_others(
    user, other_user, base_model, private_module, make_adapter
):
    module_import_folder(
        owner=other_user,
        name="public-mix",
        folder=make_adapter(seed=4),
        base_model=base_model,
        lineage=[(private_module, 1.0)],
    )

    result = api_as(None).get("/api/v1/modules/grace/public-mix/").json()

    # Nor is the commit of a private source given.
    assert result["sources"] == [
        {"full_name": None, "weight": 1.0, "visible": False, "deleted": False, "revision": ""}
    ]


def test_list_is_paginated_the_drf_way(user, base_model, make_adapter):
    for seed in range(3):
        module_import_folder(
            owner=user, name=f"m{seed}", folder=make_adapter(seed=seed), base_model=base_model
        )

    page = api_as(None).get("/api/v1/modules/", {"page_size": 2, "sort": "newest"}).json()

    assert page["count"] == 3
    assert [m["name"] for m in page["results"]] == ["m2", "m1"]
    assert page["next"].endswith("page=2&page_size=2&sort=newest")
    assert page["previous"] is None


def test_invalid_query_parameters_are_a_400(db):
    response = api_as(None).get("/api/v1/modules/", {"rank": "high", "sort": "random"})

    assert response.status_code == 400
    assert set(response.json()) == {"rank", "sort"}


def test_tags_are_listed_with_public_counts(user, base_model, make_adapter, private_module):
    module_import_folder(
        owner=user, name="a", folder=make_adapter(seed=1), base_model=base_model, tags=["qa"]
    )
    module_update_tags = {"tags": ["qa", "hidden"]}
    patched = api_as(user).patch("/api/v1/modules/ada/secret/", module_update_tags, format="json")
    assert patched.status_code == 200 and patched.json()["tags"] == ["hidden", "qa"]

    tags = api_as(None).get("/api/v1/tags/").json()["results"]

    # PEFT's own card tags every module "lora"; the private one is not counted.
    assert {"slug": "qa", "module_count": 1} in tags
    assert {"slug": "lora", "module_count": 1} in tags
    assert "hidden" not in [tag["slug"] for tag in tags]


def test_a_tag_only_private_modules_carry_is_listed_for_their_owner_alone(
    user, other_user, base_model, make_adapter, private_module
):
    module_import_folder(
        owner=user, name="a", folder=make_adapter(seed=1), base_model=base_model, tags=["qa"]
    )
    patched = api_as(user).patch(
        "/api/v1/modules/ada/secret/", {"tags": ["qa", "hidden"]}, format="json"
    )
    assert patched.status_code == 200 and patched.json()["tags"] == ["hidden", "qa"]

    for viewer in (None, other_user):
        slugs = [tag["slug"] for tag in api_as(viewer).get("/api/v1/tags/").json()["results"]]
        assert "hidden" not in slugs and "qa" in slugs
        # Filtering by it answers exactly as filtering by a tag nobody uses.
        for path in ("/api/v1/modules/?tag={}", "/api/models?filter={}"):
            hidden = api_as(viewer).get(path.format("hidden"))
            unknown = api_as(viewer).get(path.format("never-used"))
            assert (hidden.status_code, hidden.json()) == (unknown.status_code, unknown.json())

    tags = api_as(user).get("/api/v1/tags/").json()["results"]
    assert {"slug": "hidden", "module_count": 1} in tags
    assert {"slug": "qa", "module_count": 2} in tags


# --- Private modules: 404 for everyone but the owner --------------------------------


@pytest.mark.parametrize("suffix", ["", "download/", "files/adapter_config.json"])
def test_private_module_is_404_to_anonymous_and_others(other_user, private_module, suffix):
    url = f"/api/v1/modules/ada/secret/{suffix}"

    assert api_as(None).get(url).status_code == 404
    assert api_as(other_user).get(url).status_code == 404


@pytest.mark.parametrize("suffix", ["", "download/", "files/adapter_config.json"])
def test_private_module_is_served_to_its_owner(user, private_module, suffix):
    assert api_as(user).get(f"/api/v1/modules/ada/secret/{suffix}").status_code == 200


def test_private_modules_appear_only_in_their_owners_searches(user, other_user, private_module):
    def names(client):
        return [
            m["name"]
            for m in client.get("/api/v1/modules/", {"search": "secret"}).json()["results"]
        ]

    assert names(api_as(user)) == ["secret"]
    assert names(api_as(other_user)) == []
    assert names(api_as(None)) == []


# --- Writes: owner, other user, anonymous ---------------------------------------------


def test_owner_updates_tags_license_and_visibility(user, module):
    response = api_as(user).patch(
        MODULE_URL,
        {"tags": ["qa", "Yes No"], "license": "mit", "visibility": "private"},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["tags"], body["license"], body["visibility"]) == (
        ["qa", "yes-no"],
        "mit",
        "private",
    )
    assert "license: mit" in body["card"]
    assert api_as(None).get(MODULE_URL).status_code == 404


def test_update_with_a_broken_card_is_a_field_error(user, module):
    response = api_as(user).patch(MODULE_URL, {"card": "---\n[1, 2\n---\n"}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["card"]


def test_update_with_a_card_with_yaml_aliases_is_a_field_error_and_changes_nothing(user, module):
    before = module.card

    response = api_as(user).patch(MODULE_URL, {"card": alias_bomb()}, format="json")

    assert response.status_code == 400
    [error] = response.json()["card"]
    assert error.startswith("has front matter with a YAML anchor or alias (&l0 or *l0, line 3)")
    module.refresh_from_db()
    assert module.card == before and "l0" not in module.card_data


def test_a_stored_card_with_yaml_aliases_must_be_replaced_before_other_edits(user, module):
    # A card stored before the hub refused aliases is not rewritten with them expanded.
    Module.objects.filter(pk=module.pk).update(card=alias_bomb())

    refused = api_as(user).patch(MODULE_URL, {"tags": ["laughs"]}, format="json")
    fixed = api_as(user).patch(
        MODULE_URL, {"card": "---\nlicense: mit\n---\n# Fixed\n", "tags": ["laughs"]}, format="json"
    )

    assert refused.status_code == 400
    assert refused.json()["card"][0].startswith("has front matter with a YAML anchor or alias")
    assert fixed.status_code == 200 and fixed.json()["tags"] == ["laughs"]
    module.refresh_from_db()
    assert module.card_data["license"] == "mit" and module.card_data["tags"] == ["laughs"]


@pytest.mark.parametrize(
    "method, url, expected_for_other",
    [
        ("patch", MODULE_URL, 403),
        ("delete", MODULE_URL, 403),
        ("post", MODULE_URL + "like/", 200),
        ("delete", MODULE_URL + "like/", 200),
    ],
)
def test_write_permissions_on_a_public_module(
    user, other_user, module, method, url, expected_for_other
):
    data = {"description": "changed"} if method == "patch" else None

    anonymous = getattr(api_as(None), method)(url, data, format="json")
    other = getattr(api_as(other_user), method)(url, data, format="json")

    assert anonymous.status_code == 401
    assert other.status_code == expected_for_other
    module.refresh_from_db()
    assert module.description != "changed"
    assert Module.objects.filter(pk=module.pk).exists()


@pytest.mark.parametrize(
    "method, url",
    [
        ("patch", "/api/v1/modules/ada/secret/"),
        ("delete", "/api/v1/modules/ada/secret/"),
        ("post", "/api/v1/modules/ada/secret/like/"),
        ("delete", "/api/v1/modules/ada/secret/like/"),
    ],
)
def test_writes_on_a_private_module_are_404_to_others(other_user, private_module, method, url):
    response = getattr(api_as(other_user), method)(url, {"description": "x"}, format="json")

    assert response.status_code == 404


def test_owner_deletes(user, module, django_capture_on_commit_callbacks, isolated_files):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(user).delete(MODULE_URL)

    assert response.status_code == 204
    assert not Module.objects.exists()
    assert stored_files(isolated_files) == []


def test_like_and_unlike(user, other_user, module):
    api = api_as(other_user)

    assert api.post(MODULE_URL + "like/").json() == {"liked": True, "like_count": 1}
    assert api.post(MODULE_URL + "like/").json() == {"liked": True, "like_count": 1}
    assert api.get(MODULE_URL).json()["liked"] is True
    assert api.delete(MODULE_URL + "like/").json() == {"liked": False, "like_count": 0}


# --- Schema ---------------------------------------------------------------------------


def test_schema_documents_the_registry_without_warnings(db, tmp_path, capsys):
    out = tmp_path / "schema.yml"

    call_command("spectacular", "--validate", "--file", str(out))

    # Warnings about the registry's own views and serializers; the
    # authentication schemes are configured for the whole site, not here.
    warnings = [
        line
        for line in capsys.readouterr().err.splitlines()
        if "modules/" in line and '"tokenAuth"' not in line
    ]
    assert warnings == []
    schema = out.read_text()
    for path in (
        "/api/v1/modules/:",
        "/api/v1/modules/{owner}/{name}/:",
        "/api/v1/modules/{owner}/{name}/download/:",
        "/api/v1/modules/{owner}/{name}/like/:",
        "/api/v1/tags/:",
    ):
        assert path in schema
    assert "summary: Upload an adapter folder" in schema  # the example
    assert "multipart/form-data" in schema


def test_counting_stops_at_the_limit_and_says_so(user, base_model, make_adapter, monkeypatch):
    from modules.pagination import CappedPaginator

    monkeypatch.setattr(CappedPaginator, "count_limit", 2)
    for seed in range(3):
        module_import_folder(
            owner=user, name=f"m{seed}", folder=make_adapter(seed=seed), base_model=base_model
        )
    api = api_as(None)

    limited = api.get("/api/v1/modules/", {"page_size": 1}).json()
    exact = api.get("/api/v1/modules/", {"page_size": 1, "search": "m1"}).json()

    assert (limited["count"], limited["count_is_exact"]) == (2, False)
    assert limited["next"].endswith("page=2&page_size=1")
    assert (exact["count"], exact["count_is_exact"]) == (1, True)
