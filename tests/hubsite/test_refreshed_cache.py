"""Costly cached values: an expired one is answered at once and refreshed behind the request."""

import threading
import time

import pytest
from django.core.cache import cache

from hubsite import refreshed_cache
from hubsite.refreshed_cache import refreshed_value
from modules.selectors import POPULAR_TAGS_SECONDS, popular_tags

KEY = "tests:refreshed"


@pytest.fixture(autouse=True)
def clean_cache():
    cache.delete(KEY)
    yield
    wait_for_refreshes()
    cache.delete(KEY)


def wait_for_refreshes(timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while refreshed_cache._refreshing and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not refreshed_cache._refreshing, "a refresh did not end"


def expired(key: str, value: object, seconds: float) -> None:
    cache.set(key, (time.time() - seconds - 1, value))


def test_a_value_never_computed_is_computed_in_the_request():
    assert refreshed_value(KEY, lambda: "first", 60) == "first"
    assert refreshed_value(KEY, lambda: "second", 60) == "first"  # still fresh


def test_an_expired_value_is_answered_while_one_thread_computes_the_new_one():
    expired(KEY, "old", 60)
    release = threading.Event()
    calls = []

    def compute():
        calls.append(threading.current_thread().name)
        assert release.wait(10)
        return "new"

    # Both requests get the old value at once; the computation is not theirs.
    assert refreshed_value(KEY, compute, 60) == "old"
    assert refreshed_value(KEY, compute, 60) == "old"
    release.set()
    wait_for_refreshes()

    assert refreshed_value(KEY, compute, 60) == "new"
    assert len(calls) == 1 and calls[0] != threading.current_thread().name


def test_a_failed_refresh_keeps_the_old_value_and_is_tried_again():
    expired(KEY, "old", 60)

    def broken():
        raise RuntimeError("database away")

    assert refreshed_value(KEY, broken, 60) == "old"
    wait_for_refreshes()
    assert refreshed_value(KEY, lambda: "new", 60) == "old"
    wait_for_refreshes()
    assert refreshed_value(KEY, lambda: "newer", 60) == "new"


@pytest.mark.django_db
def test_the_list_pages_popular_tags_are_not_counted_in_a_request_once_known(
    django_assert_num_queries,
):
    key = "modules:popular-tags:24"
    expired(key, ["old-tags"], POPULAR_TAGS_SECONDS)
    try:
        # Counting the tags over every module took 0.25 s of a request at 100,000 modules.
        with django_assert_num_queries(0):
            assert popular_tags() == ["old-tags"]
        wait_for_refreshes()
    finally:
        cache.delete(key)
