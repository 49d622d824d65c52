"""Fixtures of the browser tests: one live hub for the package, a Chromium for the
session, and a fresh page (its own cookies) per test at the size it asks for."""

import json
import os
import shutil

import pytest

from tests.conftest import skip_or_fail
from tests.e2e.browser import ROOT, SIZES, PageWatch, artifacts_dir, chromium_executable
from tests.e2e.live_hub import running_live_hub, seed_registry

# Figures each test records for the run's summary: page widths and axe-core findings.
REPORT: dict[str, dict] = {"widths": {}, "axe": {}}


@pytest.fixture(scope="package")
def live_hub(django_db_setup, tmp_path_factory):
    """The hub, served by gunicorn with a real worker, on the test database."""
    with running_live_hub(tmp_path_factory.mktemp("live-hub")) as hub:
        yield hub


@pytest.fixture
def registry(live_hub, transactional_db):
    """The seeded rows, committed for the hub's processes to see (and flushed after
    the test, as every transactional test's are)."""
    seed_registry(live_hub.model_dir, live_hub.adapter_folders)


@pytest.fixture(scope="package")
def browser():
    """Chromium, for the tests of this package only.

    Playwright's sync API keeps an event loop in the test's thread, where
    Django would refuse database queries although nothing runs concurrently:
    the check is lifted while the browser is open, and the browser closes with
    the package so that the tests after it run as usual.
    """
    executable = chromium_executable()
    if executable is None:
        skip_or_fail("no Chromium found (apt-get install chromium, or set HUB_E2E_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=executable)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def open_page(live_hub, registry, browser):
    """open_page("phone") -> (page, watch): a page in a new browser context at that size.

    The test fails at the end if the page logged a console error it did not
    ``watch.allow``, threw, or asked another site for anything.
    """
    opened = []

    def open_at(size: str = "desktop"):
        context = browser.new_context(
            viewport=SIZES[size],
            base_url=live_hub.url,
            is_mobile=size != "desktop",
            has_touch=size != "desktop",
            device_scale_factor=1,
        )
        context.set_default_timeout(15_000)
        page = context.new_page()
        watch = PageWatch(hub_url=live_hub.url)
        watch.attach(page)
        opened.append((context, watch))
        return page, watch

    yield open_at
    for context, _ in opened:
        context.close()
    for _, watch in opened:
        watch.assert_clean()


@pytest.fixture(params=["desktop", "phone"])
def sized_page(request, open_page):
    """A page at each of the two sizes every flow runs at: (page, watch, size)."""
    page, watch = open_page(request.param)
    return page, watch, request.param


def record_width(page_name: str, size: str, width: int) -> None:
    REPORT["widths"].setdefault(page_name, {})[size] = width


def record_axe(page_name: str, size: str, counts: dict[str, int]) -> None:
    REPORT["axe"].setdefault(page_name, {})[size] = counts


def pytest_terminal_summary(terminalreporter):
    if not (REPORT["widths"] or REPORT["axe"]):
        return
    (artifacts_dir() / "report.json").write_text(json.dumps(REPORT, indent=1, sort_keys=True))
    write = terminalreporter.write_line
    terminalreporter.section("browser: page widths (px) and axe-core findings by impact")
    for name in sorted(set(REPORT["widths"]) | set(REPORT["axe"])):
        widths = REPORT["widths"].get(name, {})
        axe = REPORT["axe"].get(name, {})
        write(
            f"{name:<22} widths {json.dumps(widths, sort_keys=True):<40}"
            f" axe {json.dumps(axe, sort_keys=True)}"
        )
    write(f"screenshots and axe-core reports: {artifacts_dir()}")


def copy_readme_screenshots(names: dict[str, str]) -> None:
    """With HUB_E2E_README_SCREENSHOTS=1, copy the named screenshots into docs/screenshots/."""
    if os.environ.get("HUB_E2E_README_SCREENSHOTS") != "1":
        return
    for artifact, readme_name in names.items():
        shutil.copyfile(
            artifacts_dir() / f"{artifact}.png", ROOT / "docs" / "screenshots" / readme_name
        )
