"""A module's history: on its page, in the API, and in the lineage of compositions."""

from modules.models import ModuleSource
from modules.selectors import module_sources
from modules.services import module_create, module_import_folder, module_update
from modules.validation import MODEL_CARD


def test_the_page_lists_the_history_and_shows_an_earlier_commits_files(client, module):
    first = module.revision
    module_update(module=module, card="# A second card\n")
    module.refresh_from_db()

    page = client.get("/ada/tiny-adapter/").content.decode()
    earlier = client.get("/ada/tiny-adapter/", {"revision": first}).content.decode()

    assert first[:12] in page and module.revision[:12] in page
    assert "Update the model card" in page and "Initial upload" in page
    assert f"/ada/tiny-adapter/resolve/{first}/{MODEL_CARD}" in earlier
    assert f"/ada/tiny-adapter/resolve/{first}/" not in page


def test_the_api_gives_the_revision_and_the_history(client, module):
    first = module.revision
    module_update(module=module, card="# A second card\n")

    detail = client.get("/api/v1/modules/ada/tiny-adapter/").json()

    assert [c["id"] for c in detail["history"]] == [detail["revision"], first]
    assert detail["history"][0]["author"] == "ada"
    newest_card = {f["filename"]: f["sha256"] for f in detail["history"][0]["files"]}[MODEL_CARD]
    assert newest_card == {f["filename"]: f["sha256"] for f in detail["files"]}[MODEL_CARD]


def test_a_composition_keeps_the_revision_of_each_source_it_merged(
    client, user, base_model, make_adapter
):
    source = module_import_folder(
        owner=user, name="source", folder=make_adapter(seed=1), base_model=base_model
    )
    used = source.revision
    composed = module_create(
        owner=user,
        name="composed",
        files={f.name: f for f in make_adapter(seed=2).iterdir()},
        base_model=base_model,
        lineage=[(source, 0.5)],
    )
    module_update(module=source, card="# Changed after the composition\n")
    source.refresh_from_db()

    assert source.revision != used
    assert ModuleSource.objects.get(composed=composed).source_revision == used
    [row] = module_sources(module=composed, user=user)
    assert row["revision"] == used
    assert f"/ada/source/?revision={used}" in client.get("/ada/composed/").content.decode()
    api = client.get("/api/v1/modules/ada/composed/").json()
    assert api["sources"][0]["revision"] == used
