"""Reads of the registry.

Every read of modules goes through ``module_visible_to``: a private module
exists only for its owner, and for anyone else it is simply not found (404,
never 403), in pages, the API, downloads and search alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.postgres.lookups import TrigramSimilar
from django.contrib.postgres.search import SearchQuery, SearchRank, TrigramSimilarity
from django.db import connection
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)

from hubsite.refreshed_cache import refreshed_value
from modules.models import BaseModel, Module, ModuleCommit, ModuleSource, SearchTerm, Tag
from modules.pagination import RankedThenRest

# Sort orders offered to people; the id breaks ties so pages never overlap.
SORTS = {
    "downloads": ("-download_count", "-id"),
    "likes": ("-like_count", "-id"),
    "newest": ("-created_at", "-id"),
    "updated": ("-updated_at", "-id"),
}
RELEVANCE = "relevance"
LIST_DEFERRED = ("card", "card_data", "adapter_config", "datasets", "search_vector")
DEFAULT_SORT = "downloads"
SEARCH_CONFIG = "english"
POPULAR_TAGS_SECONDS = 300
# Ranking a search by relevance scores every match, and a word like "lora",
# a tag of most modules, matches most of the registry. So relevance ranks the
# most downloaded RANKED_MATCHES matches (fifty pages of twenty), and the other
# matches follow them in download order: lists still count ("10,000+") and
# page through every match, and the cost of ranking stays the same however
# common the word.
RANKED_MATCHES = 1000
# A search matching at most this many modules is listed from their ids.
FEW_MATCHES = 200


def base_model_list() -> QuerySet[BaseModel]:
    return BaseModel.objects.all()


# --- Modules --------------------------------------------------------------------


def visible_condition(user, prefix: str = "") -> Q:
    """The rule: public modules, and the user's own. ``prefix`` is a path to modules."""
    public = Q(**{f"{prefix}visibility": Module.Visibility.PUBLIC})
    if user is None or not user.is_authenticated:
        return public
    return public | Q(**{f"{prefix}owner": user})


def module_visible_to(user) -> QuerySet[Module]:
    return Module.objects.select_related("owner", "base_model").filter(visible_condition(user))


def visible_module_ids(*, user, module_ids) -> set[int]:
    """The ids among ``module_ids`` of modules the user may see (``user=None``: anyone)."""
    return set(module_visible_to(user).filter(pk__in=module_ids).values_list("pk", flat=True))


def module_get(*, owner: str, name: str, user) -> Module:
    """The module ``owner/name`` if the user may see it; raises Module.DoesNotExist otherwise."""
    return module_visible_to(user).get(owner__username=owner, name=name)


@dataclass(frozen=True)
class ModuleFilters:
    base_model: str = ""  # identifier, e.g. HuggingFaceTB/SmolLM2-135M-Instruct
    task_type: str = ""
    rank: int | None = None
    tag: str = ""
    owner: str = ""  # username
    license: str = ""


def module_search(
    *, query: str = "", filters: ModuleFilters | None = None, sort: str = "", user=None
) -> QuerySet[Module] | RankedThenRest:
    """Modules the user may see, matching the query and filters, in the chosen order.

    With a query the default order is relevance. PostgreSQL ranks a weighted
    full-text match (name > tags > description), after replacing words no
    module uses by the most similar ones that are (typos, by trigram
    similarity); when more than RANKED_MATCHES modules match, it ranks the
    most downloaded RANKED_MATCHES of them, and the other matches follow them
    in download order. SQLite matches every word as a substring and ranks
    name hits above tag and description hits.
    """
    # Lists never show a module's card or raw config: leave those large,
    # out-of-line values (and the search vector) in the database.
    modules = _filtered(module_visible_to(user), filters or ModuleFilters()).defer(*LIST_DEFERRED)
    query = " ".join(query.split())
    if query and connection.vendor == "postgresql":
        return _search_postgresql(modules, query, sort=sort, user=user)
    if query:
        modules = _search_substrings(modules, query)
    if sort in SORTS:
        return modules.order_by(*SORTS[sort])
    if query:
        return modules.order_by("-relevance", *SORTS[DEFAULT_SORT])
    return modules.order_by(*SORTS[DEFAULT_SORT])


def _filtered(modules: QuerySet[Module], filters: ModuleFilters) -> QuerySet[Module]:
    if filters.base_model:
        modules = modules.filter(base_model__identifier=filters.base_model)
    if filters.task_type:
        modules = modules.filter(task_type=filters.task_type)
    if filters.rank is not None:
        modules = modules.filter(r=filters.rank)
    if filters.tag:
        # By the tag's id, so the planner knows how common that tag is.
        tag_id = Tag.objects.filter(slug=filters.tag).values_list("pk", flat=True).first()
        tagged = Module.tags.through.objects.filter(tag_id=tag_id).values("module_id")
        modules = modules.filter(pk__in=tagged) if tag_id else modules.none()
    if filters.owner:
        modules = modules.filter(owner__username=filters.owner)
    if filters.license:
        modules = modules.filter(license=filters.license)
    return modules


def module_ids_if_few(modules: QuerySet[Module]) -> list[int] | None:
    """The ids of ``modules`` if there are at most FEW_MATCHES of them, else None.

    Listing a few modules by id lets the planner know how few they are: it
    sorts them, instead of walking a sort order's index in the hope of
    meeting them early, which reads most of the table when it has misjudged
    how rare they are (a search's words, a part of a name).
    """
    ids = list(modules.order_by().values_list("pk", flat=True)[: FEW_MATCHES + 1])
    return ids if len(ids) <= FEW_MATCHES else None


def _search_postgresql(
    modules: QuerySet[Module], query: str, *, sort: str, user
) -> QuerySet[Module] | RankedThenRest:
    query = _with_typos_corrected(query)
    matches = modules.filter(search_vector=_search_query(query))
    few = module_ids_if_few(matches)
    if few is not None:
        matches = module_visible_to(user).filter(pk__in=few).defer(*LIST_DEFERRED)
    if sort in SORTS:  # sorted by a column: nothing to score
        return matches.order_by(*SORTS[sort])
    edge = None if few is not None else _download_rank_edge(matches, RANKED_MATCHES)
    if edge is None:  # every match is ranked
        return _by_relevance(matches, query)
    downloads, pk = edge
    # In the order (-download_count, -id): more downloads, or as many and an id not below.
    ranked = matches.filter(download_count__gte=downloads).filter(
        Q(download_count__gt=downloads) | Q(pk__gte=pk)
    )
    rest = matches.filter(download_count__lte=downloads).filter(
        Q(download_count__lt=downloads) | Q(pk__lt=pk)
    )
    return RankedThenRest(
        matches=matches,
        ranked=_by_relevance(ranked, query),
        rest=rest.order_by(*SORTS[DEFAULT_SORT]),
        window=RANKED_MATCHES,
    )


def _by_relevance(matches: QuerySet[Module], query: str) -> QuerySet[Module]:
    # ts_rank scores any query with a negated word ("-news") as zero, so
    # matches are ranked on the words that must be there.
    wanted = " ".join(word for word in query.split() if not word.startswith("-")) or query
    # Owners and base models are fetched for the page's rows only, not joined
    # to every ranked match.
    return (
        matches.annotate(relevance=SearchRank(F("search_vector"), _search_query(wanted)))
        .select_related(None)
        .prefetch_related("owner", "base_model")
        .order_by("-relevance", *SORTS[DEFAULT_SORT])
    )


def _download_rank_edge(modules: QuerySet[Module], count: int) -> tuple[int, int] | None:
    """Downloads and id of the ``count``-th most downloaded of ``modules`` (None: fewer).

    It is found by walking the downloads index, which stops after ``count``
    matches; the modules before it are then a range of that index.
    """
    last = list(
        modules.order_by(*SORTS[DEFAULT_SORT]).values_list("download_count", "pk")[
            count - 1 : count
        ]
    )
    return last[0] if last else None


def _search_query(text: str) -> SearchQuery:
    return SearchQuery(text, search_type="websearch", config=SEARCH_CONFIG)


def _with_typos_corrected(query: str) -> str:
    """The query with each word no public module uses replaced by the closest one that is.

    A word counts as used when a known term has its stem ("reviewing" is
    known through "reviews"), so only words full-text search could never
    match are replaced; operators, stop words and phrases stay as typed.
    """
    words = []
    for word in query.split():
        plain = word.lower()
        if word.startswith("-") or not plain.isalnum() or _is_searchable(plain):
            words.append(word)
            continue
        closest = (
            SearchTerm.objects.filter(TrigramSimilar(F("term"), Value(plain)))
            .annotate(similarity=TrigramSimilarity("term", plain))
            .order_by("-similarity", "term")
            .values_list("term", flat=True)
            .first()
        )
        words.append(closest or word)
    return " ".join(words)


def _is_searchable(word: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT ts_lexize('english_stem', %s), EXISTS (SELECT 1 FROM "
            f"{SearchTerm._meta.db_table} WHERE lexeme = "
            "coalesce((ts_lexize('english_stem', %s))[1], %s))",
            [word, word, word],
        )
        lexemes, known = cursor.fetchone()
    return known or lexemes == []  # an empty list: a stop word, which search ignores


def _search_substrings(modules: QuerySet[Module], query: str) -> QuerySet[Module]:
    relevance = Value(0)
    for word in query.split()[:10]:
        in_tags = Exists(Tag.objects.filter(modules=OuterRef("pk"), slug__icontains=word))
        modules = modules.filter(Q(name__icontains=word) | Q(description__icontains=word) | in_tags)
        relevance = (
            relevance
            + Case(When(name__icontains=word, then=3), default=0, output_field=IntegerField())
            + Case(When(in_tags, then=2), default=0, output_field=IntegerField())
            + Case(
                When(description__icontains=word, then=1), default=0, output_field=IntegerField()
            )
        )
    return modules.annotate(relevance=relevance)


# --- Pages around modules -------------------------------------------------------


def module_sources(*, module: Module, user) -> list[dict]:
    """The sources a composed module was merged from, with their weights.

    A source the user may not see is shown without its name, so a private
    module's existence does not leak through a public composition.
    """
    visible = visible_module_ids(user=user, module_ids=module.sources.values("source_id"))
    rows = []
    for source in module.sources.select_related("source__owner"):
        shown = source.source if source.source_id in visible else None
        rows.append(
            {
                "module": shown,
                "name": shown.full_name if shown else None,
                "deleted": source.source_id is None,
                "weight": source.weight,
                "position": source.position,
                # The commit of the source that was merged (empty before modules had a history).
                "revision": source.source_revision if shown else "",
            }
        )
    return rows


def module_used_in(*, module: Module, user) -> QuerySet[Module]:
    """Compositions the user may see that merged this module, with its weight in each."""
    weights = ModuleSource.objects.filter(composed=OuterRef("pk"), source=module).values("weight")
    return (
        module_visible_to(user)
        .filter(sources__source=module)
        .annotate(source_weight=weights[:1])
        .order_by("-created_at", "-id")
        .distinct()
    )


def module_liked_by(*, module: Module, user) -> bool:
    return bool(user and user.is_authenticated and module.likes.filter(user=user).exists())


def owner_get(*, username: str):
    return get_user_model().objects.get(username=username)


def tag_list(user=None) -> QuerySet[Tag]:
    """Tags with the number of modules the user may see filed under each, most used first.

    A tag only private modules carry is left out (and counted for their owner
    alone), so its name does not leak.
    """
    return (
        Tag.objects.annotate(
            module_count=Count("modules", filter=visible_condition(user, "modules__"))
        )
        .filter(module_count__gt=0)
        .order_by("-module_count", "slug")
    )


def tag_get(*, slug: str, user) -> Tag:
    """The tag if a module the user may see carries it; raises Tag.DoesNotExist otherwise."""
    return Tag.objects.filter(slug=slug, modules__in=module_visible_to(user)).distinct().get()


def popular_tags(limit: int = 24) -> list[Tag]:
    """The most used tags, cached: counting them over every module is not free."""
    return refreshed_value(
        f"modules:popular-tags:{limit}", lambda: list(tag_list()[:limit]), POPULAR_TAGS_SECONDS
    )


def license_choices() -> list[str]:
    return refreshed_value(
        "modules:licenses",
        lambda: list(
            Module.objects.filter(visibility=Module.Visibility.PUBLIC)
            .exclude(license="")
            .order_by("license")
            .values_list("license", flat=True)
            .distinct()[:100]
        ),
        POPULAR_TAGS_SECONDS,
    )


def module_history(*, module: Module, until: str = "") -> list[ModuleCommit]:
    """The module's commits, newest first; with ``until``, that commit and the older ones."""
    commits = list(
        module.commits.select_related("author")
        .prefetch_related("files")
        .order_by("-created_at", "-id")
    )
    ids = [commit.commit_id for commit in commits]
    return commits[ids.index(until) :] if until in ids else commits
