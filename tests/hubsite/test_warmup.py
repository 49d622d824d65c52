"""A fresh web process loads what its first requests would otherwise wait for."""

import pytest
from django.core.cache import cache

from hubsite.warmup import warm_up_process
from modules.selectors import license_choices, popular_tags


@pytest.mark.django_db
def test_a_warmed_process_answers_the_list_pages_counts_without_a_query(
    django_assert_num_queries, module
):
    cache.delete_many(["modules:popular-tags:24", "modules:licenses"])

    tags = list(module.tags.order_by("slug").values_list("slug", flat=True))

    warm_up_process()

    # The list page's tag and license counts took 0.25 s of a fresh process's first page.
    with django_assert_num_queries(0):
        assert [tag.slug for tag in popular_tags()] == tags
        license_choices()


def test_a_database_out_of_reach_does_not_keep_the_server_from_starting(caplog):
    # No database access is allowed in this test: every query fails.
    cache.delete_many(["modules:popular-tags:24", "modules:licenses"])

    warm_up_process()

    assert "warming up the web process failed" in caplog.text
