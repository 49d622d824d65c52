"""Pages of module lists whose counting stops at a limit.

Counting every match of a broad search or filter reads most of the table;
counting up to a limit reads at most that many rows. Lists then say
"10,000+" and can be paged through that many modules, as search services
commonly do; narrower searches keep their exact count.
"""

from __future__ import annotations

from itertools import chain

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

COUNT_LIMIT = 10_000


class RankedThenRest:
    """A search's matches: the first ``window`` in one order (relevance), then the rest.

    Lists count, slice, iterate and prefetch it as they do a queryset. A page
    within the window is read from ``ranked``, one beyond it from ``rest``
    (offset by the window), one across the edge from both.
    """

    ordered = True  # Paginator's check: both parts have their order

    def __init__(self, *, matches: QuerySet, ranked: QuerySet, rest: QuerySet, window: int):
        self.matches = matches  # every match, for counting
        self.ranked = ranked  # the first ``window`` matches
        self.rest = rest  # the others
        self.window = window

    def prefetch_related(self, *lookups: str) -> RankedThenRest:
        return RankedThenRest(
            matches=self.matches,
            ranked=self.ranked.prefetch_related(*lookups),
            rest=self.rest.prefetch_related(*lookups),
            window=self.window,
        )

    def count(self) -> int:
        return self.matches.order_by().count()

    def __iter__(self):
        return chain(self.ranked, self.rest)

    def __getitem__(self, key):
        if isinstance(key, int):
            return self[key : key + 1][0]
        if not isinstance(key, slice) or key.step is not None or key.start is None:
            raise TypeError("take a page: [start:stop]")
        start, stop = key.start, key.stop
        rows = list(self.ranked[start : min(stop, self.window)]) if start < self.window else []
        if stop > self.window:
            rows += self.rest[max(start - self.window, 0) : stop - self.window]
        return rows


class CappedPaginator(Paginator):
    """A paginator of querysets that counts at most ``count_limit`` matches."""

    count_limit = COUNT_LIMIT

    @cached_property
    def counted(self) -> int:
        # One more than the limit tells "exactly the limit" from "more". The
        # order and the annotations (relevance) do not change how many match.
        matches = self.object_list
        if isinstance(matches, RankedThenRest):
            matches = matches.matches
        return matches.order_by().values("pk")[: self.count_limit + 1].count()

    @cached_property
    def count(self) -> int:
        return min(self.counted, self.count_limit)

    @property
    def count_is_exact(self) -> bool:
        return self.counted <= self.count_limit


class ModulePagination(PageNumberPagination):
    """DRF's page-number pagination, with ``count_is_exact`` beside ``count``."""

    django_paginator_class = CappedPaginator
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_paginated_response(self, data):
        return Response(
            {
                "count": self.page.paginator.count,
                "count_is_exact": self.page.paginator.count_is_exact,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema):
        response = super().get_paginated_response_schema(schema)
        response["properties"]["count"]["description"] = (
            f"matches, counted up to {COUNT_LIMIT:,}; see count_is_exact"
        )
        response["properties"]["count_is_exact"] = {
            "type": "boolean",
            "description": f"false when there are more than {COUNT_LIMIT:,} matches",
            "example": True,
        }
        response.setdefault("required", []).append("count_is_exact")
        return response
