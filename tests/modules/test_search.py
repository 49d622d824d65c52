"""Search, filters and sort orders, on whichever database the run uses.

The suite runs once on SQLite and once on PostgreSQL (make test with
DATABASE_URL), so every test here without a marker is exercised on both; the
PostgreSQL-only features (stemming, weighted ranking, the trigram fallback)
are marked and run in the PostgreSQL pass.
"""

import datetime

import pytest
from django.db import connection
from django.utils import timezone

from modules.models import BaseModel, Module
from modules.selectors import ModuleFilters, module_search
from modules.services import module_import_folder, module_update

postgresql_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="a PostgreSQL feature (runs in the PostgreSQL pass)"
)


@pytest.fixture
def catalogue(user, other_user, base_model, make_adapter):
    """Six modules that differ in every searchable and sortable way."""
    other_base = BaseModel.objects.create(
        identifier="acme/tiny-llama-chat",
        family="llama",
        task_type=BaseModel.TaskType.CAUSAL_LM,
        hidden_size=64,
        num_layers=2,
        parameter_count=1_000_000,
        linear_shapes=base_model.linear_shapes,
        weights_location="/nowhere",
    )
    rows = [
        # owner, name, base, rank, tags, license, description, downloads, likes
        (user, "sentiment-sst2", base_model, 4, ["classification"], "mit",
         "Tells positive reviews from negative ones.", 50, 3),
        (user, "movie-critic", base_model, 8, ["sentiment", "reviews"], "apache-2.0",
         "Writes short film critiques.", 500, 1),
        (other_user, "summarizer", other_base, 4, ["summarization"], "apache-2.0",
         "Condenses news articles; keeps the sentiment neutral.", 5, 10),
        (other_user, "translator_fr.v2", base_model, 8, ["translation", "french"], "",
         "English to French.", 20, 0),
        (user, "qa-boolq", other_base, 4, ["question-answering"], "mit",
         "Answers yes/no questions about a passage.", 0, 7),
        (user, "hidden-sentiment", base_model, 4, ["sentiment"], "mit",
         "A private experiment.", 1000, 100),
    ]  # fmt: skip
    modules = {}
    start = timezone.now() - datetime.timedelta(days=30)
    for index, (owner, name, base, r, tags, license, description, downloads, likes) in enumerate(
        rows
    ):
        module = module_import_folder(
            owner=owner,
            name=name,
            folder=make_adapter(seed=index, r=r),
            base_model=base,
            tags=tags,
            license=license,
            description=description,
            visibility=Module.Visibility.PRIVATE if name.startswith("hidden") else "public",
        )
        module.tags.set(module.tags.filter(slug__in=tags))  # drop PEFT's generic card tags
        # Creation a day apart in list order; updates in reverse order.
        Module.objects.filter(pk=module.pk).update(
            download_count=downloads,
            like_count=likes,
            created_at=start + datetime.timedelta(days=index),
            updated_at=start + datetime.timedelta(days=20 - index),
        )
        modules[name] = module
    from modules.services import module_search_index_refresh

    module_search_index_refresh()
    return modules


def names(modules) -> list[str]:
    return [module.name for module in modules]


def search(query="", user=None, sort="", **filters):
    return names(module_search(query=query, filters=ModuleFilters(**filters), sort=sort, user=user))


# --- Without a query --------------------------------------------------------------


def test_default_order_is_most_downloaded_and_private_modules_are_left_out(catalogue):
    assert search() == [
        "movie-critic",
        "sentiment-sst2",
        "translator_fr.v2",
        "summarizer",
        "qa-boolq",
    ]


def test_owner_sees_their_private_module_others_do_not(catalogue, user, other_user):
    assert "hidden-sentiment" in search(user=user)
    assert "hidden-sentiment" not in search(user=other_user)


@pytest.mark.parametrize(
    "sort, expected",
    [
        ("likes", ["summarizer", "qa-boolq", "sentiment-sst2", "movie-critic", "translator_fr.v2"]),
        (
            "newest",
            ["qa-boolq", "translator_fr.v2", "summarizer", "movie-critic", "sentiment-sst2"],
        ),
        (
            "updated",
            ["sentiment-sst2", "movie-critic", "summarizer", "translator_fr.v2", "qa-boolq"],
        ),
        (
            "downloads",
            ["movie-critic", "sentiment-sst2", "translator_fr.v2", "summarizer", "qa-boolq"],
        ),
    ],
)
def test_sort_orders(catalogue, sort, expected):
    assert search(sort=sort) == expected


def test_ties_are_broken_by_id_so_pages_do_not_overlap(catalogue):
    Module.objects.update(download_count=7)

    assert search(sort="downloads") == [
        "qa-boolq", "translator_fr.v2", "summarizer", "movie-critic", "sentiment-sst2",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "filters, expected",
    [
        ({"base_model": "acme/tiny-llama-chat"}, ["summarizer", "qa-boolq"]),
        ({"rank": 8}, ["movie-critic", "translator_fr.v2"]),
        ({"tag": "sentiment"}, ["movie-critic"]),
        ({"owner": "grace"}, ["translator_fr.v2", "summarizer"]),
        ({"license": "mit"}, ["sentiment-sst2", "qa-boolq"]),
        ({"task_type": "SEQ_2_SEQ_LM"}, []),
        ({"rank": 4, "license": "mit", "base_model": "acme/tiny-llama"}, ["sentiment-sst2"]),
    ],
)
def test_filters(catalogue, filters, expected):
    assert search(**filters) == expected


def test_task_type_filter(catalogue):
    Module.objects.filter(name="summarizer").update(task_type="SEQ_2_SEQ_LM")

    assert search(task_type="SEQ_2_SEQ_LM") == ["summarizer"]
    assert "summarizer" not in search(task_type="CAUSAL_LM")


# --- With a query -----------------------------------------------------------------


def test_query_finds_names_tags_and_descriptions_name_first(catalogue):
    found = search("sentiment")

    # Name (sentiment-sst2) before tag (movie-critic) before description (summarizer).
    assert found == ["sentiment-sst2", "movie-critic", "summarizer"]


def test_every_word_of_the_query_must_match(catalogue):
    assert search("sentiment news") == ["summarizer"]


def test_query_and_filters_combine(catalogue):
    assert search("sentiment", rank=8) == ["movie-critic"]


def test_query_with_an_explicit_sort(catalogue):
    assert search("sentiment", sort="likes") == ["summarizer", "sentiment-sst2", "movie-critic"]


def test_private_modules_never_match_for_others(catalogue, other_user):
    assert "hidden-sentiment" not in search("experiment", user=other_user)
    assert search("experiment", user=catalogue["hidden-sentiment"].owner) == ["hidden-sentiment"]


def test_names_joined_by_underscores_and_dots_match_their_parts(catalogue):
    assert search("v2") == ["translator_fr.v2"]


def test_new_tags_are_searchable_at_once(catalogue):
    module_update(module=catalogue["qa-boolq"], tags=["reading-comprehension"])

    assert search("comprehension") == ["qa-boolq"]


def test_nothing_found(catalogue):
    assert search("xylophone") == []


# --- PostgreSQL: ranking, stemming, typos ----------------------------------------


@postgresql_only
def test_stemming_matches_other_forms_of_a_word(catalogue):
    # "critiques" in the description and "critic" in the name share no substring rule.
    assert search("critique") == ["movie-critic"]
    assert search("answering") == ["qa-boolq"]


@postgresql_only
def test_misspelt_name_falls_back_to_similar_names(catalogue):
    assert search("sumarizer") == ["summarizer"]
    assert search("translater") == ["translator_fr.v2"]


@postgresql_only
def test_websearch_syntax(catalogue):
    assert search("sentiment -news") == ["sentiment-sst2", "movie-critic"]


@postgresql_only
def test_text_search_can_use_the_gin_index(catalogue):
    from django.contrib.postgres.search import SearchQuery

    matches = Module.objects.filter(search_vector=SearchQuery("sentiment", config="english"))
    with connection.cursor() as cursor:
        # On six rows a sequential scan is cheaper; forbid it to see the index is usable.
        cursor.execute("SET enable_seqscan = off")
        plan = matches.explain()
        cursor.execute("RESET enable_seqscan")
    assert "module_search_vector" in plan


@postgresql_only
def test_misspelt_tag_and_description_words_are_corrected(catalogue):
    assert search("critques") == ["movie-critic"]  # description: critiques
    assert search("summarizaton") == ["summarizer"]  # tag: summarization


@postgresql_only
def test_known_words_come_unstemmed_from_public_names_tags_and_descriptions(catalogue):
    from modules.models import SearchTerm

    terms = set(SearchTerm.objects.values_list("term", flat=True))

    assert {"translator", "fr", "v2", "summarization", "critiques", "passage"} <= terms
    # Only public modules teach words: a correction must not hint at a private one.
    assert "experiment" not in terms


# --- PostgreSQL: searches that match much of the registry ---------------------------


@postgresql_only
def test_a_word_many_modules_have_ranks_the_most_downloaded_matches(catalogue, monkeypatch):
    # As if "sentiment" matched more modules than are ranked (RANKED_MATCHES,
    # 1,000 in the hub).
    monkeypatch.setattr("modules.selectors.FEW_MATCHES", 1)
    monkeypatch.setattr("modules.selectors.RANKED_MATCHES", 2)

    # The two most downloaded matches, movie-critic (500) and sentiment-sst2
    # (50), ranked name before tag; the summarizer (5 downloads) follows them.
    assert search("sentiment") == ["sentiment-sst2", "movie-critic", "summarizer"]
    # Sorted by a column, every match is in that order.
    assert search("sentiment", sort="likes") == ["summarizer", "sentiment-sst2", "movie-critic"]


@postgresql_only
def test_matches_past_the_ranked_ones_follow_in_download_order(catalogue, monkeypatch):
    monkeypatch.setattr("modules.selectors.FEW_MATCHES", 1)
    monkeypatch.setattr("modules.selectors.RANKED_MATCHES", 1)
    Module.objects.filter(pk=catalogue["summarizer"].pk).update(download_count=100)

    # movie-critic (500) alone is ranked; then the summarizer (100 downloads,
    # a match in its description) before sentiment-sst2 (50), although
    # relevance would put that name match first.
    assert search("sentiment") == ["movie-critic", "summarizer", "sentiment-sst2"]


@postgresql_only
@pytest.mark.parametrize("page_size", [1, 2, 3])
def test_pages_of_a_broad_search_count_and_list_every_match_once(
    catalogue, monkeypatch, client, page_size
):
    monkeypatch.setattr("modules.selectors.FEW_MATCHES", 1)
    monkeypatch.setattr("modules.selectors.RANKED_MATCHES", 2)

    url, listed, counts = "/api/v1/modules/", [], set()
    params = {"search": "sentiment", "page_size": page_size}
    while url:
        body = client.get(url, params).json()
        params = None  # the next link carries them
        listed += [module["name"] for module in body["results"]]
        counts.add((body["count"], body["count_is_exact"]))
        url = body["next"]

    # Every match counted, not only the ranked ones; pages across the edge of
    # the ranked ones neither repeat nor skip a module.
    assert counts == {(3, True)}
    assert listed == ["sentiment-sst2", "movie-critic", "summarizer"]


@postgresql_only
def test_list_page_counts_past_the_ranked_matches_and_says_how_they_are_ordered(
    catalogue, monkeypatch, client
):
    from modules.pagination import CappedPaginator

    monkeypatch.setattr("modules.selectors.FEW_MATCHES", 1)
    monkeypatch.setattr("modules.selectors.RANKED_MATCHES", 1)
    monkeypatch.setattr("modules.views.PAGE_SIZE", 1)
    note = b"Relevance ranks the 1 most downloaded matches"

    first = client.get("/modules/", {"q": "sentiment"}).content
    second = client.get("/modules/", {"q": "sentiment", "page": 2}).content
    sorted_page = client.get("/modules/", {"q": "sentiment", "sort": "likes", "page": 2}).content
    monkeypatch.setattr(CappedPaginator, "count_limit", 2)
    capped = client.get("/modules/", {"q": "sentiment"}).content

    assert b'<span class="count">3 modules</span>' in first
    assert note not in first  # the first page is the ranked match
    assert note in second
    assert note not in sorted_page
    assert b'<span class="count">2+ modules</span>' in capped


@postgresql_only
def test_ranked_matches_tied_on_downloads_are_the_ones_with_the_highest_ids(catalogue, monkeypatch):
    monkeypatch.setattr("modules.selectors.FEW_MATCHES", 1)
    monkeypatch.setattr("modules.selectors.RANKED_MATCHES", 2)
    Module.objects.update(download_count=7)

    # The list's own order (downloads, then id) decides which two are ranked.
    by_id = sorted(["sentiment-sst2", "movie-critic", "summarizer"], key=lambda n: -catalogue[n].pk)
    found = search("sentiment")
    assert set(found[:2]) == set(by_id[:2])
    assert found[2] == by_id[2]


@postgresql_only
@pytest.mark.parametrize(
    "query, arguments",
    [
        ("sentiment", {}),
        ("sentiment", {"sort": "likes"}),
        ("sentiment -news", {}),
        ("critique", {}),
        ("sumarizer", {}),
        ("sentiment", {"license": "mit"}),
        ("experiment", {"user": "owner"}),
        ("xylophone", {}),
    ],
)
def test_results_are_the_same_listed_from_ids_or_from_the_query(
    catalogue, monkeypatch, query, arguments
):
    if arguments.get("user") == "owner":
        arguments = {**arguments, "user": catalogue["hidden-sentiment"].owner}
    from_ids = search(query, **arguments)  # six modules: few enough to list by id
    monkeypatch.setattr("modules.selectors.FEW_MATCHES", 0)

    assert search(query, **arguments) == from_ids
