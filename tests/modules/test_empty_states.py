"""A list with nothing in it says what to do next."""

import re

import pytest

pytestmark = pytest.mark.django_db


def text_of(response) -> str:
    return " ".join(response.content.decode().split())


def words_of(response) -> str:
    """What the page reads, without its markup."""
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def test_an_empty_module_list_offers_sign_up_or_uploading(client, user):
    assert "to upload your own" in text_of(client.get("/modules/"))
    client.force_login(user)

    page = text_of(client.get("/modules/"))

    assert "No module here yet." in page
    assert 'href="/modules/new/">Upload a module</a>' in page
    assert 'href="/modules/import/">import some from a Hub</a>' in page


def test_a_search_that_finds_nothing_says_how_to_widen_it(client, module):
    page = text_of(client.get("/modules/", {"q": "zebra"}))

    assert "No module matches “zebra”. Try fewer or other words, or" in page
    assert ">clear the search and filters</a>" in page


def test_filters_that_match_nothing_offer_to_clear_them(client, module):
    page = text_of(client.get("/modules/", {"rank": 64}))

    assert "No module matches these filters. Loosen one, or" in page


def test_your_own_empty_page_says_how_to_get_modules(client, user):
    client.force_login(user)

    page = text_of(client.get("/ada/"))

    assert "You have no module yet." in page
    assert 'href="/compose/">compose one</a>' in page and 'href="/train/">train one</a>' in page


def test_someone_elses_empty_page_points_to_the_others(client, user, django_user_model):
    django_user_model.objects.create_user(username="grace", password="x-long-pass-1")
    client.force_login(user)

    assert "grace has no public module yet. Browse everyone" in words_of(client.get("/grace/"))


def test_no_tags_says_where_tags_come_from(client, user):
    client.force_login(user)

    assert "Tags come with modules: add some when you upload a module" in words_of(
        client.get("/tags/")
    )
