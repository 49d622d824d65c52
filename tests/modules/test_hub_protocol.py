"""The hub speaks the Hugging Face Hub's read protocol.

The first tests check the answers themselves (headers, fields, error codes)
through Django's test client; the live ones start a real hub process and use
the real clients against it: huggingface_hub's downloads and HfApi, and
PEFT's ``PeftModel.from_pretrained`` on a SmolLM2 module.
"""

import hashlib
import re

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token

from modules.hub_protocol import module_commit_sha
from modules.hub_protocol.lists import name_contains
from modules.models import Module
from modules.services import (
    EMBEDDED_BASE_MODEL,
    embedded_model_dir,
    module_create,
    module_import_folder,
    module_like,
    module_update,
)
from modules.validation import ADAPTER_CONFIG, MODEL_CARD, SAFETENSORS_WEIGHTS
from tests.hub_server import running_hub
from tests.modules.hostile_cards import SELF_REFERENCE, alias_bomb
from tests.modules.hub_client import run_hub_client
from tests.servers import s3_server

HUB_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
WEIGHTS_URL = "/ada/tiny-adapter/resolve/main/adapter_model.safetensors"


def bearer(user) -> dict:
    token, _ = Token.objects.get_or_create(user=user)
    return {"HTTP_AUTHORIZATION": f"Bearer {token.key}"}


def stored(module: Module, filename: str):
    return module.files.get(filename=filename)


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture
def private_module(user, base_model, make_adapter):
    return module_import_folder(
        owner=user,
        name="secret",
        folder=make_adapter(seed=7),
        base_model=base_model,
        visibility=Module.Visibility.PRIVATE,
    )


# --- Repository info ----------------------------------------------------------------


def test_model_info_has_the_fields_the_client_reads(client, module):
    module_update(module=module, tags=["sentiment", "english"], license="mit")

    info = client.get("/api/models/ada/tiny-adapter").json()

    module.refresh_from_db()
    assert info["id"] == info["modelId"] == "ada/tiny-adapter"
    assert info["author"] == "ada"
    # The edit rewrote the card: a second commit, which main names.
    assert info["sha"] == module.revision and re.fullmatch(r"[0-9a-f]{40}", info["sha"])
    assert module.commits.count() == 2
    assert HUB_DATE.match(info["lastModified"]) and HUB_DATE.match(info["createdAt"])
    assert info["private"] is False and info["library_name"] == "peft"
    assert info["pipeline_tag"] == "text-generation"
    assert {"sentiment", "english", "peft", "license:mit"} <= set(info["tags"])
    assert "base_model:acme/tiny-llama" in info["tags"]
    assert "base_model:adapter:acme/tiny-llama" in info["tags"]
    assert info["cardData"]["base_model"] == "acme/tiny-llama"
    assert info["cardData"]["license"] == "mit"
    assert [s["rfilename"] for s in info["siblings"]] == [MODEL_CARD, ADAPTER_CONFIG,
                                                           SAFETENSORS_WEIGHTS]  # fmt: skip
    assert "size" not in info["siblings"][0]


def test_model_info_with_blobs_gives_sizes_oids_and_lfs(client, module):
    info = client.get("/api/models/ada/tiny-adapter", {"blobs": "true"}).json()

    siblings = {s["rfilename"]: s for s in info["siblings"]}
    weights, config = stored(module, SAFETENSORS_WEIGHTS), stored(module, ADAPTER_CONFIG)
    assert siblings[SAFETENSORS_WEIGHTS]["size"] == weights.size > 0
    assert siblings[SAFETENSORS_WEIGHTS]["lfs"]["sha256"] == weights.sha256
    assert siblings[SAFETENSORS_WEIGHTS]["lfs"]["size"] == weights.size
    # Small text files are plain git blobs, identified by their git object id.
    config_bytes = client.get("/ada/tiny-adapter/resolve/main/adapter_config.json").getvalue()
    assert "lfs" not in siblings[ADAPTER_CONFIG]
    assert siblings[ADAPTER_CONFIG]["blobId"] == git_blob_oid(config_bytes)
    assert siblings[ADAPTER_CONFIG]["size"] == config.size


def test_revision_is_main_or_the_commit_sha(client, module):
    sha = client.get("/api/models/ada/tiny-adapter").json()["sha"]

    assert client.get("/api/models/ada/tiny-adapter/revision/main").json()["sha"] == sha
    assert client.get(f"/api/models/ada/tiny-adapter/revision/{sha}").json()["sha"] == sha
    response = client.get("/api/models/ada/tiny-adapter/revision/v2")
    assert response.status_code == 404
    assert response["X-Error-Code"] == "RevisionNotFound"
    assert client.head(f"/ada/tiny-adapter/resolve/{'0' * 40}/adapter_config.json")[
        "X-Error-Code"
    ] == "RevisionNotFound"  # fmt: skip


def test_an_edit_is_a_new_commit_and_the_earlier_one_still_serves(client, module):
    first = client.get("/api/models/ada/tiny-adapter").json()["sha"]
    first_card = client.get(f"/ada/tiny-adapter/resolve/main/{MODEL_CARD}").getvalue()
    module_like(module=module, user=module.owner)  # not content: the sha stays
    assert client.get("/api/models/ada/tiny-adapter").json()["sha"] == first

    module_update(module=module, card="---\nlicense: mit\n---\n# A new card\n")

    second = client.get("/api/models/ada/tiny-adapter").json()["sha"]
    assert second != first
    old = client.get(f"/ada/tiny-adapter/resolve/{first}/{MODEL_CARD}")
    assert old.status_code == 200 and old["X-Repo-Commit"] == first
    assert old.getvalue() == first_card
    new = client.get(f"/ada/tiny-adapter/resolve/{second}/{MODEL_CARD}").getvalue()
    assert b"# A new card" in new and b"# A new card" not in first_card
    assert client.get(f"/api/models/ada/tiny-adapter/revision/{first}").json()["sha"] == first
    history = client.get("/api/models/ada/tiny-adapter/commits/main").json()
    assert [c["id"] for c in history] == [second, first]
    assert history[0]["title"] == "Update the model card"
    assert history[0]["authors"] == [{"user": "ada"}]


def test_tree_lists_files_with_git_oids_and_lfs_pointers(client, module):
    sha = client.get("/api/models/ada/tiny-adapter").json()["sha"]

    items = client.get("/api/models/ada/tiny-adapter/tree/main", {"recursive": "True"}).json()

    by_path = {item["path"]: item for item in items}
    assert set(by_path) == {ADAPTER_CONFIG, SAFETENSORS_WEIGHTS, MODEL_CARD}
    assert all(item["type"] == "file" for item in items)
    weights = stored(module, SAFETENSORS_WEIGHTS)
    pointer = (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{weights.sha256}\n"
        f"size {weights.size}\n"
    ).encode()
    assert by_path[SAFETENSORS_WEIGHTS]["lfs"] == {
        "oid": weights.sha256, "size": weights.size, "pointerSize": len(pointer)
    }  # fmt: skip
    assert by_path[SAFETENSORS_WEIGHTS]["oid"] == git_blob_oid(pointer)
    card = client.get(f"/ada/tiny-adapter/resolve/main/{MODEL_CARD}").getvalue()
    assert by_path[MODEL_CARD]["oid"] == git_blob_oid(card) and "lfs" not in by_path[MODEL_CARD]
    assert client.get(f"/api/models/ada/tiny-adapter/tree/{sha}").json() == items
    missing = client.get("/api/models/ada/tiny-adapter/tree/main/subfolder")
    assert missing.status_code == 404 and missing["X-Error-Code"] == "EntryNotFound"


def test_paths_info_describes_the_paths_that_exist(client, module):
    response = client.post(
        "/api/models/ada/tiny-adapter/paths-info/main",
        {"paths": [ADAPTER_CONFIG, "nope.txt"], "expand": "true"},
    )

    [item] = response.json()
    assert item["path"] == ADAPTER_CONFIG and item["lastCommit"]["id"] == module_commit_sha(
        module.files.all()
    )


# --- Files -------------------------------------------------------------------------------


def test_head_gives_the_download_metadata_with_a_real_length(client, module):
    weights = stored(module, SAFETENSORS_WEIGHTS)
    sha = client.get("/api/models/ada/tiny-adapter").json()["sha"]

    response = client.head(WEIGHTS_URL, HTTP_ACCEPT_ENCODING="gzip, br")

    assert response.status_code == 200
    assert response["Content-Length"] == response["X-Linked-Size"] == str(weights.size)
    assert response["ETag"] == response["X-Linked-Etag"] == f'"{weights.sha256}"'
    assert response["X-Repo-Commit"] == sha
    assert response["Accept-Ranges"] == "bytes"
    assert not response.has_header("Content-Encoding")


def test_get_serves_the_stored_bytes_uncompressed(client, module, adapter_dir):
    response = client.get(WEIGHTS_URL, HTTP_ACCEPT_ENCODING="gzip")

    body = b"".join(response.streaming_content)
    assert response.status_code == 200 and not response.has_header("Content-Encoding")
    assert body == (adapter_dir / SAFETENSORS_WEIGHTS).read_bytes()
    assert int(response["Content-Length"]) == len(body)


def test_range_requests_get_partial_content(client, module, adapter_dir):
    data = (adapter_dir / SAFETENSORS_WEIGHTS).read_bytes()
    size = len(data)

    middle = client.get(WEIGHTS_URL, HTTP_RANGE="bytes=10-19")
    tail = client.get(WEIGHTS_URL, HTTP_RANGE=f"bytes={size - 100}-")
    suffix = client.get(WEIGHTS_URL, HTTP_RANGE="bytes=-7")
    beyond = client.get(WEIGHTS_URL, HTTP_RANGE=f"bytes={size}-")

    assert middle.status_code == 206 and b"".join(middle.streaming_content) == data[10:20]
    assert middle["Content-Range"] == f"bytes 10-19/{size}" and middle["Content-Length"] == "10"
    assert b"".join(tail.streaming_content) == data[-100:]
    assert b"".join(suffix.streaming_content) == data[-7:]
    assert beyond.status_code == 416 and beyond["Content-Range"] == f"bytes */{size}"


def test_every_error_says_what_was_not_found(client, module, other_user):
    missing_repo = client.head("/nobody/nothing/resolve/main/adapter_config.json")
    missing_repo_signed_in = client.get("/api/models/nobody/nothing", **bearer(other_user))
    missing_file = client.head("/ada/tiny-adapter/resolve/main/adapter_model.bin")
    wrong_revision = client.get("/ada/tiny-adapter/resolve/dev/adapter_config.json")
    bad_token = client.get("/api/models/ada/tiny-adapter", HTTP_AUTHORIZATION="Bearer not-a-token")

    assert (missing_repo.status_code, missing_repo["X-Error-Code"]) == (401, "RepoNotFound")
    assert (missing_repo_signed_in.status_code, missing_repo_signed_in["X-Error-Code"]) == (
        404,
        "RepoNotFound",
    )
    assert (missing_file.status_code, missing_file["X-Error-Code"]) == (404, "EntryNotFound")
    # The commit lets the client remember that the file is missing at this revision.
    assert missing_file["X-Repo-Commit"] == module_commit_sha(module.files.all())
    assert (wrong_revision.status_code, wrong_revision["X-Error-Code"]) == (
        404,
        "RevisionNotFound",
    )
    assert bad_token.status_code == 401
    assert bad_token["X-Error-Message"] == "Invalid credentials in Authorization header"
    assert "Authorization" in missing_file["Vary"]


def test_text_files_are_resolved_as_utf_8_on_get_and_head(client, module):
    card = f"/ada/tiny-adapter/resolve/main/{MODEL_CARD}"
    config = f"/ada/tiny-adapter/resolve/main/{ADAPTER_CONFIG}"

    assert client.get(card)["Content-Type"] == "text/markdown; charset=utf-8"
    assert client.head(card)["Content-Type"] == "text/markdown; charset=utf-8"
    assert client.get(config)["Content-Type"] == "application/json; charset=utf-8"


def test_names_from_the_url_show_control_characters_as_escapes(client, db):
    response = client.get("/api/models/ada/x%1B%5B2J")

    assert response.json() == {"error": "Repository ada/x\\x1b[2J not found"}


def test_a_private_module_exists_only_for_its_owner(client, private_module, user, other_user):
    url = "/ada/secret/resolve/main/adapter_config.json"

    anonymous = client.head(url)
    stranger = client.head(url, **bearer(other_user))
    stranger_info = client.get("/api/models/ada/secret", **bearer(other_user))
    owner = client.head(url, **bearer(user))
    owner_info = client.get("/api/models/ada/secret", **bearer(user))

    assert (anonymous.status_code, anonymous["X-Error-Code"]) == (401, "RepoNotFound")
    assert (stranger.status_code, stranger["X-Error-Code"]) == (404, "RepoNotFound")
    assert stranger_info["X-Error-Code"] == "RepoNotFound"
    assert owner.status_code == 200 and owner_info.json()["private"] is True
    # The page's session counts too, so an owner can download from the browser.
    client.force_login(user)
    assert client.head(url).status_code == 200


def test_the_rest_api_accepts_bearer_tokens(client, private_module, user):
    assert client.get("/api/v1/modules/ada/secret/").status_code == 404
    assert client.get("/api/v1/modules/ada/secret/", **bearer(user)).status_code == 200


def test_whoami_names_the_tokens_user(client, user):
    response = client.get("/api/whoami-v2", **bearer(user))

    assert response.json()["name"] == "ada"
    assert response.json()["auth"]["accessToken"]["role"] == "write"
    assert client.get("/api/whoami-v2").status_code == 401


# --- Lists ---------------------------------------------------------------------------------


@pytest.fixture
def listed_modules(user, other_user, base_model, make_adapter, private_module):
    modules = {
        "sentiment-en": (user, ["sentiment"]),
        "sentiment-fr": (other_user, ["sentiment", "french"]),
        "summaries": (user, ["summarization"]),
    }
    created = {}
    for seed, (name, (owner, tags)) in enumerate(modules.items(), start=1):
        created[name] = module_import_folder(
            owner=owner, name=name, folder=make_adapter(seed=seed), base_model=base_model,
            tags=tags,
        )  # fmt: skip
    Module.objects.filter(pk=created["summaries"].pk).update(download_count=9)
    Module.objects.filter(pk=created["sentiment-fr"].pk).update(download_count=5)
    module_like(module=created["sentiment-en"], user=other_user)
    return created


def ids(response) -> list[str]:
    return [item["id"] for item in response.json()]


def test_model_list_searches_filters_and_sorts(client, listed_modules, user):
    assert ids(client.get("/api/models")) == ["ada/summaries", "grace/sentiment-fr",
                                              "ada/sentiment-en"]  # fmt: skip
    assert ids(client.get("/api/models", {"search": "sentiment"})) == [
        "grace/sentiment-fr",
        "ada/sentiment-en",
    ]
    assert ids(client.get("/api/models", {"search": "ada/sent"})) == ["ada/sentiment-en"]
    assert ids(client.get("/api/models", {"author": "ada"})) == ["ada/summaries",
                                                                 "ada/sentiment-en"]  # fmt: skip
    assert ids(client.get("/api/models", {"filter": ["sentiment", "french"]})) == [
        "grace/sentiment-fr"
    ]
    assert ids(client.get("/api/models", {"filter": "base_model:adapter:acme/tiny-llama",
                                          "sort": "likes"}))[0] == "ada/sentiment-en"  # fmt: skip
    assert ids(client.get("/api/models", {"sort": "createdAt", "limit": 1})) == ["ada/summaries"]
    # The owner also sees their private module; nobody else does.
    assert "ada/secret" in ids(client.get("/api/models", {"author": "ada"}, **bearer(user)))
    assert "ada/secret" not in ids(client.get("/api/models", {"search": "secret"}))


@pytest.mark.parametrize(
    "search, expected",
    [
        ("grac", ["grace/sentiment-fr"]),  # a part of the owner's name
        ("SUMM", ["ada/summaries"]),  # any case
        ("Nt", ["grace/sentiment-fr", "ada/sentiment-en"]),  # shorter than a trigram
        ("g", ["grace/sentiment-fr"]),  # one letter, of the owner
        ("da/sent", ["ada/sentiment-en"]),  # across the slash
        ("ace/SENTIMENT-f", ["grace/sentiment-fr"]),
        ("a/", ["ada/summaries", "ada/sentiment-en"]),
        ("/", ["ada/summaries", "grace/sentiment-fr", "ada/sentiment-en"]),
        ("ada/sentiment-en/x", []),
        ("ada/secret", []),  # private
        ("sentiment_", []),  # "_" and "%" are characters, not wildcards
        ("%", []),
    ],
)
@pytest.mark.parametrize("few", [200, 0], ids=["listed by id", "listed by query"])
def test_model_list_search_is_a_part_of_owner_slash_name(
    client, listed_modules, monkeypatch, search, expected, few
):
    monkeypatch.setattr("modules.selectors.FEW_MATCHES", few)

    assert ids(client.get("/api/models", {"search": search})) == expected


def test_model_list_filters_by_unknown_tags_and_pipeline_tags(client, listed_modules):
    assert ids(client.get("/api/models", {"filter": "no-such-tag"})) == []
    # A pipeline tag matches by task type, whether or not the tag was set.
    assert len(ids(client.get("/api/models", {"filter": "text-generation"}))) == 3


@pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="a PostgreSQL index (runs in the PostgreSQL pass)"
)
def test_model_list_search_can_use_the_name_trigram_index(listed_modules):
    # What a search asks of module names: a part of them, in any case.
    matches = Module.objects.filter(name__icontains="sentiment").order_by()
    with connection.cursor() as cursor:
        # On three rows reading the table, or walking any other index, is
        # cheaper; forbid both to see the trigram index answers.
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_indexscan = off")
        plan = matches.explain()
        cursor.execute("RESET enable_seqscan")
        cursor.execute("RESET enable_indexscan")
    assert "module_name_upper_trigram" in plan


def test_model_list_pages_with_an_absolute_next_link(client, listed_modules):
    first = client.get("/api/models", {"limit": 1, "author": "ada", "search": "s"})
    link = re.fullmatch(r'<(?P<url>[^>]+)>; rel="next"', first["Link"])
    assert link and link["url"].startswith("http://testserver/api/models?")

    second = client.get(link["url"])

    assert ids(first) == ["ada/summaries"] and ids(second) == ["ada/sentiment-en"]
    assert "Link" not in second
    filtered = client.get("/api/models", {"limit": 1, "filter": ["sentiment", "peft"]})
    assert ids(client.get(re.match(r"<([^>]+)>", filtered["Link"])[1])) == ["ada/sentiment-en"]
    everything = client.get("/api/models", {"limit": 2})
    rest = client.get(re.match(r"<([^>]+)>", everything["Link"])[1])
    assert ids(everything) + ids(rest) == ["ada/summaries", "grace/sentiment-fr",
                                           "ada/sentiment-en"]  # fmt: skip


def test_model_list_items_grow_with_full_card_data_and_expand(client, listed_modules):
    plain = client.get("/api/models", {"limit": 1}).json()[0]
    full = client.get("/api/models", {"limit": 1, "full": "true"}).json()[0]
    expanded = client.get("/api/models", {"limit": 1, "expand": ["downloads", "sha"]}).json()[0]

    assert "siblings" not in plain and "cardData" not in plain and plain["downloads"] == 9
    assert {s["rfilename"] for s in full["siblings"]} >= {ADAPTER_CONFIG, SAFETENSORS_WEIGHTS}
    assert full["cardData"]["base_model"] == "acme/tiny-llama"
    assert set(expanded) == {"_id", "id", "downloads", "sha"}


def copies_of(module: Module, count: int) -> list[Module]:
    """``count`` more modules like ``module``, with its tags and files, written in bulk."""
    from modules.models import ModuleFile

    copies = Module.objects.bulk_create(
        [
            Module(**{f.attname: getattr(module, f.attname) for f in Module._meta.concrete_fields
                      if not f.primary_key} | {"name": f"copy-{i}", "download_count": i})
            for i in range(count)
        ]
    )  # fmt: skip
    tags = list(module.tags.all())
    Module.tags.through.objects.bulk_create(
        [Module.tags.through(module=copy, tag=tag) for copy in copies for tag in tags]
    )
    ModuleFile.objects.bulk_create(
        [
            ModuleFile(module=copy, filename=f.filename, size=f.size, sha256=f.sha256,
                       storage_path=f.storage_path)
            for copy in copies for f in module.files.all()
        ]
    )  # fmt: skip
    return copies


@pytest.mark.parametrize("params", [{}, {"full": "true"}, {"search": "copy"}])
def test_model_list_reads_a_page_in_a_few_queries_whatever_its_length(
    client, listed_modules, django_assert_max_num_queries, params
):
    copies_of(listed_modules["sentiment-fr"], 60)

    # The page's ids, its rows, their tags, their files: not a query per module.
    with django_assert_max_num_queries(6):
        page = client.get("/api/models", {"limit": 100, **params}).json()

    assert len(page) == 60 if params.get("search") else 63
    first = next(item for item in page if item["id"] == "grace/copy-59")
    assert {"sentiment", "french"} <= set(first["tags"])
    if params.get("full"):
        assert {s["rfilename"] for s in first["siblings"]} >= {ADAPTER_CONFIG, SAFETENSORS_WEIGHTS}
        original = client.get("/api/models/grace/sentiment-fr").json()
        assert first["sha"] == original["sha"]


def test_a_stored_alias_bomb_is_never_expanded_in_repository_info_or_lists(client, module):
    # A card stored before the hub refused aliases: its text is hostile, its data is not.
    Module.objects.filter(pk=module.pk).update(card=alias_bomb())

    answers = {
        "info": client.get("/api/models/ada/tiny-adapter"),
        "info-card": client.get("/api/models/ada/tiny-adapter", {"expand": "cardData"}),
        "list": client.get("/api/models"),
        "list-full": client.get("/api/models", {"full": "true"}),
        "list-card": client.get("/api/models", {"expand": "cardData"}),
    }

    for answer in answers.values():
        assert answer.status_code == 200
        assert len(answer.content) < 8 * 1024 and b"lol" not in answer.content
    # The data parsed when the card was stored, not what its text now says.
    assert answers["info"].json()["cardData"]["base_model"] == "acme/tiny-llama"
    assert answers["list-full"].json()[0]["cardData"] == answers["info"].json()["cardData"]
    assert "cardData" not in answers["list"].json()[0]


def test_model_list_reads_no_card_unless_card_data_is_asked_for(client, module):
    # A stored card whose front matter is a list that holds itself.
    Module.objects.filter(pk=module.pk).update(card=SELF_REFERENCE)
    Module.objects.filter(pk=module.pk).update(card_data={"license": "as-stored"})

    plain = client.get("/api/models")
    with_card_data = client.get("/api/models", {"cardData": "true"})

    assert plain.status_code == 200 and "cardData" not in plain.json()[0]
    assert with_card_data.json()[0]["cardData"] == {"license": "as-stored"}


# --- Live: the real clients against a hub process ---------------------------------------


CLIENT_READS = """
import hashlib
from pathlib import Path
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.utils import get_session, paginate

def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()

api = HfApi()
folder = Path(snapshot_download("ada/tiny-adapter"))
info = api.model_info("ada/tiny-adapter", files_metadata=True)
single = hf_hub_download("ada/tiny-adapter", "adapter_model.safetensors", local_dir="single")
pages = list(paginate(api.endpoint + "/api/models", params={"limit": 1}, headers={}))
weights_url = api.endpoint + "/ada/tiny-adapter/resolve/main/adapter_model.safetensors"
head = get_session().head(weights_url, headers={"Accept-Encoding": "gzip"})
part = get_session().get(weights_url, headers={"Range": "bytes=0-9"})
result = {
    "snapshot": {p.name: digest(p) for p in folder.iterdir()},
    "snapshot_commit": folder.name,
    "single": digest(single),
    "sha": info.sha,
    "siblings": {s.rfilename: s.size for s in info.siblings},
    "card_base_model": info.card_data.base_model,
    "tags": info.tags,
    "last_modified_year": info.last_modified.year,
    "search": [m.id for m in api.list_models(search="tiny")],
    "author": [m.id for m in api.list_models(author="grace")],
    "paged": [m["id"] for m in pages],
    "head": [head.status_code, head.headers.get("content-length"),
             head.headers.get("content-encoding")],
    "range": [part.status_code, len(part.content)],
    "tree": sorted(f.path for f in api.list_repo_tree("ada/tiny-adapter")),
    "exists": api.file_exists("ada/tiny-adapter", "adapter_model.safetensors"),
    "missing_file": error_kinds(hf_hub_download, "ada/tiny-adapter", "adapter_model.bin"),
    "missing_repo": error_kinds(hf_hub_download, "ada/nothing", "adapter_config.json"),
    "missing_revision": error_kinds(
        hf_hub_download, "ada/tiny-adapter", "adapter_config.json", revision="v9"
    ),
}
"""


@pytest.mark.slow
def test_huggingface_hub_downloads_lists_and_reports_errors(
    live_hub, module, other_user, base_model, make_adapter, tmp_path
):
    module_import_folder(
        owner=other_user, name="other", folder=make_adapter(seed=3), base_model=base_model
    )

    seen = run_hub_client(CLIENT_READS, endpoint=live_hub, home=tmp_path / "hf")

    stored_files = {f.filename: f for f in module.files.all()}
    assert seen["snapshot"] == {name: f.sha256 for name, f in stored_files.items()}
    assert seen["single"] == stored_files[SAFETENSORS_WEIGHTS].sha256
    assert seen["sha"] == seen["snapshot_commit"] == module_commit_sha(stored_files.values())
    assert seen["siblings"] == {name: f.size for name, f in stored_files.items()}
    assert seen["card_base_model"] == "acme/tiny-llama"
    assert "base_model:acme/tiny-llama" in seen["tags"] and seen["last_modified_year"] >= 2024
    assert seen["search"] == ["ada/tiny-adapter"] and seen["author"] == ["grace/other"]
    assert sorted(seen["paged"]) == ["ada/tiny-adapter", "grace/other"]
    assert seen["tree"] == sorted(stored_files)
    # Through gunicorn too: HEAD keeps the file's length, nothing is compressed, ranges work.
    assert seen["head"] == [200, str(stored_files[SAFETENSORS_WEIGHTS].size), None]
    assert seen["range"] == [206, 10]
    assert seen["exists"] is True
    assert "EntryNotFoundError" in seen["missing_file"]
    assert "RepositoryNotFoundError" in seen["missing_repo"]
    assert "RevisionNotFoundError" in seen["missing_revision"]
    # One download: snapshot_download's fetch of adapter_config.json (not the weights after).
    assert Module.objects.get(pk=module.pk).download_count == 1


CLIENT_LISTS_HOSTILE_CARDS = """
from huggingface_hub import HfApi

api = HfApi()
plain = list(api.list_models())
full = list(api.list_models(full=True, cardData=True))
result = {
    "plain": {m.id: m.card_data for m in plain},
    "full": {m.id: m.card_data.to_dict() for m in full},
    "info": api.model_info("ada/tiny-adapter").card_data.to_dict(),
}
"""


@pytest.mark.slow
def test_huggingface_hub_lists_past_hostile_cards_stored_earlier(
    live_hub, module, other_user, base_model, make_adapter, tmp_path
):
    loop = module_import_folder(
        owner=other_user, name="loop", folder=make_adapter(seed=4), base_model=base_model
    )
    Module.objects.filter(pk=module.pk).update(card=alias_bomb())
    Module.objects.filter(pk=loop.pk).update(card=SELF_REFERENCE)

    seen = run_hub_client(CLIENT_LISTS_HOSTILE_CARDS, endpoint=live_hub, home=tmp_path / "hf")

    assert seen["plain"] == {"ada/tiny-adapter": None, "grace/loop": None}
    assert set(seen["full"]) == {"ada/tiny-adapter", "grace/loop"}
    assert seen["full"]["ada/tiny-adapter"] == seen["info"]
    assert seen["info"]["base_model"] == "acme/tiny-llama" and "l4" not in seen["info"]


CLIENT_PRIVATE = """
from huggingface_hub import HfApi, hf_hub_download

def read():
    return open(hf_hub_download("ada/secret", "adapter_config.json")).read()

result = {
    "download": error_kinds(read) or read(),
    "info": error_kinds(HfApi().model_info, "ada/secret"),
    "whoami": error_kinds(HfApi().whoami) or HfApi().whoami()["name"],
}
"""


@pytest.mark.slow
def test_a_private_module_is_served_only_with_its_owners_token(
    live_hub, private_module, user, other_user, tmp_path
):
    config = private_module.files.get(filename=ADAPTER_CONFIG)

    def as_(token, name):
        return run_hub_client(CLIENT_PRIVATE, endpoint=live_hub, home=tmp_path / name, token=token)

    anonymous = as_(None, "anonymous")
    stranger = as_(Token.objects.create(user=other_user).key, "stranger")
    owner = as_(Token.objects.create(user=user).key, "owner")

    for refused in (anonymous, stranger):
        assert "RepositoryNotFoundError" in refused["download"]
        assert "RepositoryNotFoundError" in refused["info"]
    assert stranger["whoami"] == "grace"
    assert owner["info"] == [] and owner["whoami"] == "ada"
    assert hashlib.sha256(owner["download"].encode()).hexdigest() == config.sha256


CLIENT_PEFT = """
import torch
from peft import PeftModel, get_peft_model_state_dict
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

base = AutoModelForCausalLM.from_pretrained(BASE_DIR)
model = PeftModel.from_pretrained(base, "ada/smol-lora")
loaded = get_peft_model_state_dict(model)
original = load_file(ORIGINAL)
result = {
    "r": model.peft_config["default"].r,
    "keys_match": set(loaded) == set(original),
    "tensors_equal": all(torch.equal(loaded[k], original[k]) for k in original),
    "tensor_count": len(original),
}
"""


@pytest.mark.slow
def test_peft_loads_a_smollm2_module_from_the_hub(live_hub, user, smollm2_base_model, tmp_path):
    from composition.engine.synthetic import build_loras

    [folder] = build_loras(
        embedded_model_dir(), [tmp_path / "smol-lora"], seeds=[5], task_type="CAUSAL_LM",
        targets=("q_proj", "v_proj"), rank=4, alpha=8, base_id=EMBEDDED_BASE_MODEL, std=0.02,
    )  # fmt: skip
    module = module_create(
        owner=user,
        name="smol-lora",
        files={f: folder / f for f in (ADAPTER_CONFIG, SAFETENSORS_WEIGHTS)},
        base_model=smollm2_base_model,
    )
    code = (
        f"BASE_DIR = {str(embedded_model_dir())!r}\n"
        f"ORIGINAL = {str(folder / SAFETENSORS_WEIGHTS)!r}\n" + CLIENT_PEFT
    )

    loaded = run_hub_client(code, endpoint=live_hub, home=tmp_path / "hf")

    assert loaded == {"r": 4, "keys_match": True, "tensors_equal": True, "tensor_count": 120}
    assert Module.objects.get(pk=module.pk).download_count == 1


S3_BUCKET = "lorahub-hub-protocol-test"
CLIENT_SNAPSHOT = """
import hashlib
from pathlib import Path
from huggingface_hub import snapshot_download

folder = Path(snapshot_download("ada/tiny-adapter"))
result = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
"""


@pytest.mark.slow
def test_with_s3_storage_the_bucket_serves_the_weights(
    transactional_db, settings, client, tmp_path, user, base_model, adapter_dir
):
    import boto3

    with s3_server() as s3:
        credentials = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
        boto3.client("s3", endpoint_url=s3, region_name="us-east-1", **credentials).create_bucket(
            Bucket=S3_BUCKET
        )
        options = {"bucket_name": S3_BUCKET, "endpoint_url": s3, "region_name": "us-east-1",
                   "access_key": "test", "secret_key": "test", "file_overwrite": False}  # fmt: skip
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {"BACKEND": "hubsite.storages.HubS3Storage", "OPTIONS": options},
        }
        module = module_import_folder(
            owner=user, name="tiny-adapter", folder=adapter_dir, base_model=base_model
        )
        weights = stored(module, SAFETENSORS_WEIGHTS)

        head = client.head(WEIGHTS_URL)
        config = client.head(f"/ada/tiny-adapter/resolve/main/{ADAPTER_CONFIG}")
        hub_env = {"STORAGE_BACKEND": "s3", "S3_BUCKET": S3_BUCKET, "S3_ENDPOINT_URL": s3,
                   "S3_REGION": "us-east-1", "S3_ACCESS_KEY_ID": "test",
                   "S3_SECRET_ACCESS_KEY": "test"}  # fmt: skip
        with running_hub(
            media_root=tmp_path / "unused", log=tmp_path / "hub.log", env=hub_env
        ) as hub:
            seen = run_hub_client(CLIENT_SNAPSHOT, endpoint=hub, home=tmp_path / "hf")

    # The weights: a redirect to a signed URL, with the metadata on the redirect itself.
    assert head.status_code == 302 and head["Location"].startswith(f"{s3}/{S3_BUCKET}/blobs/")
    assert head["X-Linked-Size"] == str(weights.size)
    assert head["X-Linked-Etag"] == f'"{weights.sha256}"' and head["X-Repo-Commit"]
    # Small files come through the hub.
    assert config.status_code == 200
    assert seen == {f.filename: f.sha256 for f in module.files.all()}
    assert Module.objects.get(pk=module.pk).download_count == 1


@pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="a PostgreSQL index (runs in the PostgreSQL pass)"
)
def test_model_list_search_shorter_than_a_trigram_leaves_the_trigram_index_alone(listed_modules):
    # The trigram index cannot narrow "nt": it would return every module to be
    # checked again, at 100,000 modules 0.8 s where the planner expects ten rows.
    short = Module.objects.filter(name_contains("nt")).order_by()
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        plan = short.explain()
        cursor.execute("RESET enable_seqscan")
    assert "module_name_upper_trigram" not in plan
    assert sorted(short.values_list("name", flat=True)) == ["sentiment-en", "sentiment-fr"]
