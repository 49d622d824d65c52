"""The browser harness itself: the live hub answers pages in Chromium, and the checks
every page gets (console, other sites, width, axe-core) see what they should."""

import pytest

from tests.e2e.browser import page_width, run_axe, screenshot
from tests.e2e.live_hub import AUTHOR

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_home_page_renders_in_chromium_at_each_size(sized_page):
    page, _, size = sized_page
    response = page.goto("/")
    assert response.status == 200
    assert page.get_by_role("link", name="LoraHub Community").first.is_visible()
    screenshot(page, f"home-{size}")


def test_a_seeded_module_page_is_served_with_its_static_files(open_page):
    page, _ = open_page("desktop")
    response = page.goto(f"/{AUTHOR}/arith-skill/")
    assert response.status == 200
    assert "arith-skill" in page.title()
    stylesheet = page.evaluate("getComputedStyle(document.body).fontFamily")
    assert stylesheet, "hub.css did not load"


def test_the_checks_catch_a_script_error_a_blocked_load_and_a_wide_page(open_page):
    page, watch = open_page("phone")
    page.goto("/")
    assert watch.problems() == []
    page.evaluate("setTimeout(() => { throw new Error('boom'); })")
    # An image from another site (the policy lets images through): a request, and an error.
    page.evaluate(
        "const image = new Image(); image.src = 'https://example.invalid/x.png';"
        " document.body.append(image);"
        " const wide = document.createElement('div'); wide.style.width = '2000px';"
        " wide.textContent = 'wide';"
        " document.body.append(wide);"
    )
    page.wait_for_timeout(300)
    assert page_width(page) >= 2000
    assert watch.page_errors and "boom" in watch.page_errors[0]
    assert any("example.invalid" in e for e in watch.console_errors)
    assert watch.foreign_requests == ["https://example.invalid/x.png"]
    assert isinstance(run_axe(page), list)
    # What this test provoked on purpose must not fail it.
    watch.page_errors.clear()
    watch.foreign_requests.clear()
    watch.allow("example.invalid")
    assert watch.problems() == []
