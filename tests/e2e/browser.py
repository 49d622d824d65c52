"""Headless Chromium for the end-to-end tests, and the checks every page gets.

Debian's Chromium (``apt-get install chromium``) is driven by Playwright's
Python API; Playwright's own browser builds are never downloaded.
HUB_E2E_CHROMIUM names another executable. Screenshots land in
HUB_E2E_ARTIFACTS (``var/e2e-artifacts/`` by default).
"""

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import ConsoleMessage, Page, Request

ROOT = Path(__file__).resolve().parents[2]
AXE_SCRIPT = Path(__file__).resolve().parent / "vendor" / "axe.min.js"

# Viewports: a laptop, a common phone and the narrowest phone still common.
SIZES = {
    "desktop": {"width": 1366, "height": 900},
    "phone": {"width": 390, "height": 844},
    "narrow": {"width": 360, "height": 740},
}
# axe-core's impacts that fail a page; "moderate" and "minor" are reported only.
BLOCKING_IMPACTS = ("critical", "serious")
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def chromium_executable() -> str | None:
    return (
        os.environ.get("HUB_E2E_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("HUB_E2E_ARTIFACTS", ROOT / "var" / "e2e-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class PageWatch:
    """What went wrong in a page while a test drove it.

    Console errors, uncaught exceptions and requests to any other site than
    the hub are collected; ``allow`` names the console errors a step expects
    (a form refused with 400 logs one, as a page that is not found does).
    """

    hub_url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    allowed: list[re.Pattern] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("request", self._on_request)

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def problems(self) -> list[str]:
        errors = [e for e in self.console_errors if not any(p.search(e) for p in self.allowed)]
        return (
            [f"console error: {e}" for e in errors]
            + [f"page error: {e}" for e in self.page_errors]
            + [f"request to another site: {url}" for url in self.foreign_requests]
        )

    def assert_clean(self) -> None:
        problems = self.problems()
        assert not problems, "the page reported:\n" + "\n".join(problems)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            location = message.location.get("url", "")
            self.console_errors.append(f"{message.text} ({location})")

    def _on_request(self, request: Request) -> None:
        scheme, host = urlsplit(request.url)[:2]
        if scheme in ("http", "https", "ws", "wss") and host != urlsplit(self.hub_url).netloc:
            self.foreign_requests.append(request.url)


def page_width(page: Page) -> int:
    """How wide the document is, in CSS pixels (wider than the viewport: it scrolls sideways)."""
    return page.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
    )


def assert_fits_viewport(page: Page) -> int:
    """No horizontal scroll: the document is no wider than the viewport. Returns the width."""
    width = page_width(page)
    viewport = page.evaluate("document.documentElement.clientWidth")
    if width > viewport:
        culprits = page.evaluate(_WIDE_ELEMENTS, viewport)
        raise AssertionError(
            f"{page.url} is {width} px wide in a {viewport} px viewport; wider elements: {culprits}"
        )
    return width


# The outermost elements whose right edge passes the viewport, to say what overflows.
_WIDE_ELEMENTS = """(viewport) => {
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.right > viewport + 0.5 && !wide.some((outer) => outer.contains(el))) wide.push(el);
  }
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + (typeof el.className === 'string' && el.className ? '.' + el.className.split(' ')[0] : '');
  const right = (el) => Math.round(el.getBoundingClientRect().right);
  return wide.slice(0, 5).map((el) => `${name(el)} (${right(el)} px)`);
}"""


def run_axe(page: Page) -> dict:
    """axe-core's WCAG 2 A/AA rules on the page as it is; returns its violations by rule.

    The script goes in through the DevTools protocol, which the page's
    Content-Security-Policy does not govern, so the page is tested under its
    real policy.
    """
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SCRIPT.read_text() + "\n;undefined")
    return page.evaluate(
        """async (AXE_TAGS) => {
          const results = await axe.run(document, {
            runOnly: {type: 'tag', values: AXE_TAGS},
            resultTypes: ['violations'],
          });
          return results.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help,
            targets: v.nodes.slice(0, 5).map((n) => n.target.join(' ')),
            count: v.nodes.length,
          }));
        }""",
        AXE_TAGS,
    )


def axe_summary(violations: list[dict]) -> dict[str, int]:
    """Violating elements counted by impact: {"serious": 2, "minor": 1}."""
    counts: dict[str, int] = {}
    for violation in violations:
        counts[violation["impact"]] = counts.get(violation["impact"], 0) + violation["count"]
    return counts


def assert_accessible(
    page: Page,
    label: str,
    excused: dict[str, str] | None = None,
    record: Callable[[dict[str, int]], None] | None = None,
) -> dict[str, int]:
    """Run axe-core; fail on critical or serious violations. Writes the findings next to
    the screenshots (``axe-<label>.json``) and returns their counts by impact.

    ``excused`` maps rules that may not fail this page to the reason (markup the
    hub does not write); they are counted all the same. ``record`` gets the counts
    before anything fails.
    """
    violations = run_axe(page)
    (artifacts_dir() / f"axe-{label}.json").write_text(json.dumps(violations, indent=1))
    if record:
        record(axe_summary(violations))
    blocking = [
        v for v in violations if v["impact"] in BLOCKING_IMPACTS and v["id"] not in (excused or {})
    ]
    assert not blocking, f"axe-core on {page.url}:\n" + "\n".join(
        f"{v['impact']}: {v['id']} ({v['help']}) at {v['targets']}" for v in blocking
    )
    return axe_summary(violations)


def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot under the artifacts folder; returns its path."""
    path = artifacts_dir() / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path
