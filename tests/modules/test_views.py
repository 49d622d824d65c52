"""The registry's pages: the browser form round trip, permissions, private modules, safety."""

import hashlib
import io
import json
import re
import zipfile

import pytest
from django.core.management import call_command
from django.test import Client

from modules.models import Module, Tag
from modules.services import module_import_folder, module_update
from modules.validation import ADAPTER_CONFIG, MODEL_CARD, SAFETENSORS_WEIGHTS
from tests.modules.adapters import SMOLLM2_LIKE, build_peft_adapter, edit_config, stored_files
from tests.modules.hostile_cards import alias_bomb

PAGE = "/ada/tiny-adapter/"


def form_files(folder, *names):
    names = names or (ADAPTER_CONFIG, SAFETENSORS_WEIGHTS)
    return [open(folder / name, "rb") for name in names]


@pytest.fixture
def private_module(user, base_model, make_adapter):
    return module_import_folder(
        owner=user,
        name="secret",
        folder=make_adapter(seed=7),
        base_model=base_model,
        visibility=Module.Visibility.PRIVATE,
    )


# --- Upload through the browser form, then search, page and download ------------------


def test_browser_upload_search_page_download_round_trip(client, user, base_model, adapter_dir):
    client.force_login(user)
    assert client.get("/modules/new/").status_code == 200

    response = client.post(
        "/modules/new/",
        {
            "files": form_files(adapter_dir, ADAPTER_CONFIG, SAFETENSORS_WEIGHTS, MODEL_CARD),
            "name": "boolq-answers",
            "base_model": "acme/tiny-llama",
            "description": "Answers yes/no questions.",
            "tags": "qa, yes-no",
            "license": "mit",
            "visibility": "public",
        },
    )

    assert response.status_code == 302
    assert response["Location"] == "/ada/boolq-answers/"
    client.logout()

    listing = client.get("/modules/", {"q": "boolq"})
    assert [m.full_name for m in listing.context["page"]] == ["ada/boolq-answers"]

    page = client.get("/ada/boolq-answers/")
    assert page.status_code == 200
    html = page.content.decode()
    weights_sha = hashlib.sha256((adapter_dir / SAFETENSORS_WEIGHTS).read_bytes()).hexdigest()
    assert weights_sha in html
    assert "Answers yes/no questions." in html
    assert 'PeftModel.from_pretrained(base, "ada/boolq-answers")' in html
    assert 'AutoModelForCausalLM.from_pretrained("acme/tiny-llama")' in html
    assert "lora_alpha" in html and ">q_proj, v_proj<" in html

    download = client.get("/ada/boolq-answers/download/")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    weights = archive.read("boolq-answers/adapter_model.safetensors")
    assert hashlib.sha256(weights).hexdigest() == weights_sha
    config = json.loads(archive.read("boolq-answers/adapter_config.json"))
    assert config["r"] == 4

    single = client.get("/ada/boolq-answers/files/adapter_config.json")
    assert json.loads(b"".join(single.streaming_content)) == config
    # The .zip and the adapter_config.json link: each a fetch of the config, so two.
    assert Module.objects.get(name="boolq-answers").download_count == 2


def test_form_shows_each_validation_problem_and_stores_nothing(
    client, user, base_model, make_adapter, isolated_files
):
    folder = make_adapter(num_key_value_heads=4)  # v_proj 64 → 64, the base's is 64 → 32
    client.force_login(user)

    response = client.post(
        "/modules/new/",
        {"files": form_files(folder), "name": "wrong-shape", "base_model": "acme/tiny-llama",
         "visibility": "public"},
    )  # fmt: skip

    assert response.status_code == 400
    errors = response.context["form"].errors["files"]
    assert len(errors) == 2
    assert "v_proj of acme/tiny-llama is 64 → 32" in errors[0]
    assert "has shape [64, 4]; expected [32, 4]" in response.content.decode()
    assert Module.objects.count() == 0
    assert stored_files(isolated_files) == []


def test_form_refuses_a_card_with_yaml_aliases_and_says_why(
    client, user, base_model, adapter_dir, isolated_files
):
    (adapter_dir / MODEL_CARD).write_text(alias_bomb())
    client.force_login(user)

    response = client.post(
        "/modules/new/",
        {"files": form_files(adapter_dir, ADAPTER_CONFIG, SAFETENSORS_WEIGHTS, MODEL_CARD),
         "name": "laughs", "base_model": "acme/tiny-llama", "visibility": "public"},
    )  # fmt: skip

    assert response.status_code == 400
    [error] = response.context["form"].errors["files"]
    assert error.startswith("README.md: has front matter with a YAML anchor or alias")
    assert "README.md: has front matter with a YAML anchor or alias" in response.content.decode()
    assert Module.objects.count() == 0
    assert stored_files(isolated_files) == []


def test_form_with_the_same_weights_links_the_existing_module(client, user, module, adapter_dir):
    client.force_login(user)

    response = client.post(
        "/modules/new/",
        {"files": form_files(adapter_dir), "name": "again", "visibility": "public",
         "base_model": "acme/tiny-llama"},
    )  # fmt: skip

    assert response.status_code == 400
    assert b'<a href="/ada/tiny-adapter/">ada/tiny-adapter</a>' in response.content


def test_form_refuses_a_name_with_spaces_around_it(client, user, base_model, adapter_dir):
    client.force_login(user)

    response = client.post(
        "/modules/new/",
        {"files": form_files(adapter_dir), "name": " spaced ", "visibility": "public"},
    )

    assert response.status_code == 400
    assert response.context["form"].errors["name"] == [
        "Remove the spaces or line breaks before or after the name."
    ]
    assert Module.objects.count() == 0


def test_form_errors_that_repeat_the_input_show_control_characters_as_escapes(
    client, user, base_model, adapter_dir
):
    client.force_login(user)

    response = client.post(
        "/modules/new/",
        {"files": form_files(adapter_dir), "name": "fine", "visibility": "\x1b[2Jpublic"},
    )

    assert response.status_code == 400
    assert response.context["form"].errors["visibility"] == [
        "Select a valid choice. \\x1b[2Jpublic is not one of the available choices."
    ]
    assert b"\x1b" not in response.content


def test_form_over_the_size_limit_is_a_413_page(client, user, base_model, adapter_dir, settings):
    settings.HUB_MAX_UPLOAD_BYTES = 2048
    client.force_login(user)

    response = client.post(
        "/modules/new/",
        {"files": form_files(adapter_dir), "name": "big", "visibility": "public"},
    )

    assert response.status_code == 413
    assert b"larger than the limit of 2.0 KiB" in response.content
    assert list(settings.FILE_UPLOAD_TEMP_DIR.iterdir()) == []


def test_upload_page_needs_login_and_does_not_read_anonymous_uploads(client, db, adapter_dir):
    response = client.post("/modules/new/", {"files": form_files(adapter_dir), "name": "x"})

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert Module.objects.count() == 0


def test_upload_form_checks_csrf(user, base_model, adapter_dir):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = client.post(
        "/modules/new/", {"files": form_files(adapter_dir), "name": "x", "visibility": "public"}
    )

    assert response.status_code == 403
    assert Module.objects.count() == 0


def test_upload_page_carries_what_the_preview_needs(client, user, base_model):
    client.force_login(user)

    html = client.get("/modules/new/").content.decode()

    shapes = re.search(
        r'<script id="base-model-shapes" type="application/json">(.*?)</script>', html
    )
    assert json.loads(shapes.group(1)) == {
        "acme/tiny-llama": {"q_proj": [[64, 64]], "v_proj": [[64, 32]]}
    }
    assert 'data-api-url="/api/v1/modules/"' in html
    assert 'data-max-bytes="2147483648"' in html
    assert "js/upload.js" in html


# --- Module pages ------------------------------------------------------------------


def test_card_markdown_is_rendered_without_raw_html_or_script_links(client, user, module):
    module_update(
        module=module,
        card="# Hello\n\n<script>alert('x')</script>\n\n[click](javascript:alert(1)) "
        "<img src=x onerror=alert(1)>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
    )

    html = client.get(PAGE).content.decode()
    card = html.split('<article class="card markdown">')[1].split("</article>")[0]

    assert "<h1>Hello</h1>" in card
    assert "<script>" not in card and "&lt;script&gt;" in card
    assert 'href="javascript' not in card
    assert "<img src" not in card
    assert "<td>1</td>" in card


def test_lineage_appears_on_both_pages(client, user, base_model, module, make_adapter):
    module_import_folder(
        owner=user,
        name="mix",
        folder=make_adapter(seed=5),
        base_model=base_model,
        lineage=[(module, 0.25)],
    )

    source_page = client.get(PAGE).content.decode()
    composed_page = client.get("/ada/mix/").content.decode()

    assert "Used in compositions" in source_page and 'href="/ada/mix/"' in source_page
    assert "+0.250" in source_page
    # The lineage links to the source as it was merged: its commit.
    at_commit = f'href="/ada/tiny-adapter/?revision={module.revision}"'
    assert "Composed from" in composed_page and at_commit in composed_page


def test_owner_page_lists_public_modules_and_private_ones_to_the_owner(
    client, user, module, private_module
):
    assert [m.name for m in client.get("/ada/").context["page"]] == ["tiny-adapter"]
    client.force_login(user)
    assert sorted(m.name for m in client.get("/ada/").context["page"]) == ["secret", "tiny-adapter"]
    assert client.get("/nobody-here/").status_code == 404


def test_tag_pages(client, user, base_model, make_adapter):
    module_import_folder(
        owner=user, name="a", folder=make_adapter(seed=1), base_model=base_model, tags=["poetry"]
    )

    assert [m.name for m in client.get("/tags/poetry/").context["page"]] == ["a"]
    assert b"poetry" in client.get("/tags/").content
    assert client.get("/tags/absent/").status_code == 404


def test_a_tag_only_private_modules_carry_is_404_to_all_but_their_owner(
    client, user, private_module, other_user
):
    module_update(module=private_module, tags=["hidden-project"])
    Tag.objects.create(slug="orphan")  # no module carries it

    for viewer in (None, other_user):
        if viewer:
            client.force_login(viewer)
        assert client.get("/tags/hidden-project/").status_code == 404
        assert client.get("/tags/orphan/").status_code == 404
        assert client.get("/tags/never-used/").status_code == 404
        assert b"hidden-project" not in client.get("/tags/").content
        assert b"hidden-project" not in client.get("/modules/").content

    client.force_login(user)
    response = client.get("/tags/hidden-project/")
    assert response.status_code == 200
    assert [m.name for m in response.context["page"]] == ["secret"]
    assert b"hidden-project" in client.get("/tags/").content


def test_list_page_filters_and_paginates(client, user, base_model, make_adapter):
    for seed in range(3):
        module_import_folder(
            owner=user, name=f"m{seed}", folder=make_adapter(seed=seed), base_model=base_model
        )

    response = client.get("/modules/", {"sort": "newest", "rank": "4", "page": "2"})

    assert response.status_code == 200
    assert response.context["page"].paginator.count == 3
    assert response.context["querystring"] == "sort=newest&rank=4"


def test_home_shows_modules(client, module):
    assert b"ada/</span>tiny-adapter" in client.get("/").content


# --- Private modules: 404 for everyone but the owner ----------------------------------


@pytest.mark.parametrize(
    "path",
    ["/ada/secret/", "/ada/secret/download/", "/ada/secret/files/adapter_config.json",
     "/ada/secret/edit/", "/ada/secret/delete/"],
)  # fmt: skip
def test_private_module_pages_are_404_to_others(client, other_user, private_module, path):
    assert client.get(path).status_code in (302, 404)  # edit/delete ask anonymous to log in
    client.force_login(other_user)
    assert client.get(path).status_code == 404


def test_private_module_page_is_shown_to_its_owner(client, user, private_module):
    client.force_login(user)

    response = client.get("/ada/secret/")

    assert response.status_code == 200
    assert b'class="badge private"' in response.content


def test_like_on_a_private_module_is_404_to_others(client, other_user, private_module):
    client.force_login(other_user)

    assert client.post("/ada/secret/like/").status_code == 404


# --- Writes: owner, other user, anonymous --------------------------------------------


def test_owner_edits_the_card_and_tags(client, user, module):
    client.force_login(user)
    form = client.get(PAGE + "edit/").context["form"]
    data = {**form.initial, "tags": "chat, tiny", "visibility": "public"}
    data["card"] = "---\nlicense: mit\n---\n\n# Tiny\n\nA tiny adapter.\n"

    response = client.post(PAGE + "edit/", data)

    assert response.status_code == 302
    module.refresh_from_db()
    assert sorted(module.tags.values_list("slug", flat=True)) == ["chat", "tiny"]
    assert module.license == "mit"
    assert "<h1>Tiny</h1>" in client.get(PAGE).content.decode()


def test_edit_with_broken_front_matter_shows_the_error(client, user, module):
    client.force_login(user)
    data = {"card": "---\n: : :\n---\n", "visibility": "public"}

    response = client.post(PAGE + "edit/", data)

    assert response.status_code == 400
    assert response.context["form"].errors["card"]


def test_edit_refuses_a_card_with_yaml_aliases(client, user, module):
    client.force_login(user)
    before = module.card

    response = client.post(PAGE + "edit/", {"card": alias_bomb(), "visibility": "public"})

    assert response.status_code == 400
    [error] = response.context["form"].errors["card"]
    assert error.startswith("has front matter with a YAML anchor or alias (&l0 or *l0, line 3)")
    module.refresh_from_db()
    assert module.card == before


def test_the_page_of_a_stored_card_with_yaml_aliases_shows_its_body(client, module):
    # Stored before the hub refused such cards; the page needs only the Markdown.
    Module.objects.filter(pk=module.pk).update(card=alias_bomb())

    response = client.get(PAGE)

    assert response.status_code == 200
    assert "A card that laughs a lot." in response.content.decode()


@pytest.mark.parametrize("action", ["edit/", "delete/"])
def test_other_users_cannot_edit_or_delete(client, other_user, module, action):
    client.force_login(other_user)

    assert client.get(PAGE + action).status_code == 403
    assert (
        client.post(PAGE + action, {"description": "mine now", "visibility": "public"}).status_code
        == 403
    )
    module.refresh_from_db()
    assert module.description != "mine now"


@pytest.mark.parametrize("action", ["edit/", "delete/", "like/"])
def test_anonymous_writes_go_to_the_login_page(client, module, action):
    response = client.post(PAGE + action, {"description": "x", "visibility": "public"})

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert Module.objects.filter(pk=module.pk, like_count=0).exclude(description="x").exists()


def test_owner_deletes_after_confirming(
    client, user, module, isolated_files, django_capture_on_commit_callbacks
):
    client.force_login(user)
    assert b"Delete ada/tiny-adapter?" in client.get(PAGE + "delete/").content

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(PAGE + "delete/")

    assert response["Location"] == "/ada/"
    assert not Module.objects.exists()
    assert stored_files(isolated_files) == []


def test_like_button_toggles(client, other_user, module):
    client.force_login(other_user)

    client.post(PAGE + "like/")
    module.refresh_from_db()
    assert module.like_count == 1
    assert b"Liked" in client.get(PAGE).content

    client.post(PAGE + "like/")
    module.refresh_from_db()
    assert module.like_count == 0


# --- Demo content --------------------------------------------------------------------


def test_install_demo_publishes_the_starter_modules(client, db, tmp_path):
    starter = tmp_path / "starter"
    for seed, name in enumerate(["smol-sentiment", "smol-qa"]):
        build_peft_adapter(starter / name, seed=seed, **SMOLLM2_LIKE)
        edit_config(starter / name, base_model_name_or_path="HuggingFaceTB/SmolLM2-135M-Instruct")

    call_command("install_demo", starter_dir=starter)
    call_command("install_demo", starter_dir=starter)  # a second run adds nothing

    modules = Module.objects.filter(owner__username="lorahub").order_by("name")
    assert [m.name for m in modules] == ["smol-qa", "smol-sentiment"]
    assert {m.base_model.identifier for m in modules} == {"HuggingFaceTB/SmolLM2-135M-Instruct"}
    listing = client.get("/modules/", {"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct"})
    assert sorted(m.full_name for m in listing.context["page"]) == [
        "lorahub/smol-qa",
        "lorahub/smol-sentiment",
    ]


def test_install_demo_without_a_starter_folder_only_installs_the_base_model(db, tmp_path, capsys):
    call_command("install_demo", starter_dir=tmp_path / "absent")

    assert Module.objects.count() == 0
    assert "Starter modules" not in capsys.readouterr().out


def test_list_page_says_when_there_are_more_than_it_counted(
    client, user, base_model, make_adapter, monkeypatch
):
    from modules.pagination import CappedPaginator

    monkeypatch.setattr(CappedPaginator, "count_limit", 2)
    for seed in range(3):
        module_import_folder(
            owner=user, name=f"m{seed}", folder=make_adapter(seed=seed), base_model=base_model
        )

    assert b'<span class="count">2+ modules</span>' in client.get("/modules/").content


def test_upload_script_posts_the_form_to_the_api_with_session_and_csrf(
    user, base_model, adapter_dir
):
    # upload.js sends the form's own fields to the API with the session cookie
    # and the CSRF token as a header.
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    page = client.get("/modules/new/")
    token = page.context["csrf_token"]

    response = client.post(
        "/api/v1/modules/",
        {
            "files": form_files(adapter_dir),
            "name": "from-script",
            "base_model": "",
            "description": "",
            "tags": "qa, tiny",
            "license": "",
            "visibility": "public",
        },
        HTTP_X_CSRFTOKEN=str(token),
        HTTP_ACCEPT="application/json",
    )
    without_token = client.post("/api/v1/modules/", {"files": form_files(adapter_dir), "name": "x"})

    assert response.status_code == 400  # no base model chosen and none named: a field error
    assert "base_model" in response.json()
    assert without_token.status_code == 403


def test_upload_script_publishes_through_the_api(user, base_model, adapter_dir):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    token = client.get("/modules/new/").context["csrf_token"]

    response = client.post(
        "/api/v1/modules/",
        {"files": form_files(adapter_dir), "name": "from-script", "base_model": "acme/tiny-llama",
         "tags": "qa, tiny", "visibility": "public"},
        HTTP_X_CSRFTOKEN=str(token),
    )  # fmt: skip

    assert response.status_code == 201
    assert response.json()["html_url"] == "http://testserver/ada/from-script/"


def test_admin_deletes_modules_with_their_files(
    client, admin_user, module, isolated_files, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/admin/modules/module/{module.pk}/delete/", {"post": "yes"}, follow=True
        )

    assert response.status_code == 200
    assert not Module.objects.exists()
    assert stored_files(isolated_files) == []


def test_admin_edits_go_through_the_service(client, admin_user, module):
    client.force_login(admin_user)

    response = client.post(
        f"/admin/modules/module/{module.pk}/change/",
        {"description": "Edited by staff", "license": "mit", "visibility": "public",
         "files-TOTAL_FORMS": 0, "files-INITIAL_FORMS": 3, "files-MIN_NUM_FORMS": 0,
         "files-MAX_NUM_FORMS": 1000, "sources-TOTAL_FORMS": 0, "sources-INITIAL_FORMS": 0,
         "sources-MIN_NUM_FORMS": 0, "sources-MAX_NUM_FORMS": 1000},
    )  # fmt: skip

    assert response.status_code == 302, response.content[:2000]
    module.refresh_from_db()
    assert module.license == "mit"
    assert "license: mit" in module.card  # the stored card follows
