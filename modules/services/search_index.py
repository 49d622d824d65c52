"""The search index of the registry (PostgreSQL): weighted vectors and known words."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.postgres.aggregates import StringAgg
from django.contrib.postgres.search import SearchVector
from django.db import connection
from django.db.models import F, OuterRef, Subquery, TextField, Value
from django.db.models.functions import Coalesce, Replace

from modules.models import Module, SearchTerm, Tag


def module_search_document():
    """The weighted search vector of a module: name (A) > tags (B) > description (C)."""
    tag_text = Subquery(
        Module.tags.through.objects.filter(module_id=OuterRef("pk"))
        .values("module_id")
        .annotate(text=StringAgg("tag__slug", delimiter=" "))
        .values("text")
    )
    # "flan_t5.sst2" should match "sst2": the parser keeps hyphenated parts
    # but not underscore- or dot-joined ones, so those become spaces.
    name_words = Replace(Replace(F("name"), Value("_"), Value(" ")), Value("."), Value(" "))
    return (
        SearchVector(name_words, weight="A", config="english")
        + SearchVector(
            Coalesce(tag_text, Value(""), output_field=TextField()), weight="B", config="english"
        )
        + SearchVector("description", weight="C", config="english")
    )


def module_search_index_refresh(*, module_ids: Iterable[int] | None = None) -> None:
    """Recompute search vectors and known words (all modules without ``module_ids``).

    PostgreSQL only; SQLite searches the text columns directly.
    """
    if connection.vendor != "postgresql":
        return
    modules = (
        Module.objects.all() if module_ids is None else Module.objects.filter(pk__in=module_ids)
    )
    modules.update(search_vector=module_search_document())
    _search_terms_add(module_ids)


def _search_terms_add(module_ids: Iterable[int] | None) -> None:
    """Add the words of these public modules' names, tags and descriptions to SearchTerm.

    The words are taken unstemmed ('simple' configuration) so that a typo is
    compared with what people actually wrote. Words are never removed: a word
    no module uses any more only makes a correction find nothing.
    """
    module_table = Module._meta.db_table
    through = Module.tags.through._meta
    ids = None if module_ids is None else [int(pk) for pk in module_ids]
    # Only public modules teach words: a correction must not hint at a private one.
    where = "WHERE m.visibility = 'public'"
    if ids is not None:
        where += f" AND m.id IN ({', '.join(map(str, ids)) or 'NULL'})"
    # ts_stat takes its query as text; the ids above are integers, so the
    # text is built from nothing a user typed.
    documents = (
        "SELECT to_tsvector('simple', translate(m.name, '_.', '  ') || ' ' || m.description"
        " || ' ' || coalesce((SELECT string_agg(t.slug, ' ') FROM "
        f"{through.db_table} mt JOIN {Tag._meta.db_table} t ON t.id = mt.tag_id "
        f"WHERE mt.module_id = m.id), '')) FROM {module_table} m {where}"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {SearchTerm._meta.db_table} (term, lexeme) "
            "SELECT word, coalesce((ts_lexize('english_stem', word))[1], word) "
            # Hyphenated compounds ("text-generation") come with their parts.
            "FROM ts_stat(%s) WHERE length(word) BETWEEN 2 AND 64 AND strpos(word, '-') = 0 "
            "ON CONFLICT (term) DO NOTHING",
            [documents],
        )
