"""What a newcomer does, start to end, in a real browser at a desktop's size and a phone's:
sign up, get a token, upload, search, download, compose, follow the job, publish, try the
result in the playground, log out."""

import json
import re
import zipfile

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import assert_accessible, assert_fits_viewport, screenshot
from tests.e2e.conftest import record_axe, record_width
from tests.e2e.live_hub import AUTHOR
from tests.e2e.pages import log_in

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FINAL_STATUS = re.compile("Succeeded|Failed|Cancelled")
EXAMPLES = [
    {"input": "one plus two", "target": "three"},
    {"input": "two plus two", "target": "four"},
    {"input": "the answer is not true", "target": "false"},
]


def open_menu_if_collapsed(page) -> None:
    menu = page.locator("details.nav-menu")
    if menu.is_visible() and menu.get_attribute("open") is None:
        menu.locator("summary").click()


def sign_up(page, username: str) -> None:
    page.goto("/")
    open_menu_if_collapsed(page)
    page.get_by_role("link", name="Sign up").click()
    page.fill("#id_username", username)
    page.fill("#id_password1", "a-long-e2e-pass-phrase")
    page.fill("#id_password2", "a-long-e2e-pass-phrase")
    with page.expect_navigation():
        page.locator("main form [type=submit]").click()
    assert page.locator("form[action='/accounts/logout/']").count(), "not signed in after sign-up"


def create_token(page) -> str:
    page.goto("/accounts/me/")
    with page.expect_navigation():
        page.get_by_role("button", name="Create token").click()
    token = page.locator("pre.token").inner_text().strip()
    assert len(token) == 40
    return token


def upload(page, folder, name: str, tags: str) -> None:
    page.goto("/modules/new/")
    page.set_input_files(
        "#id_files", [folder / "adapter_config.json", folder / "adapter_model.safetensors"]
    )
    page.fill("#id_name", name)
    page.fill("#id_tags", tags)
    with page.expect_navigation(url=f"**/{name}/"):
        page.get_by_role("button", name="Publish").click()
    assert page.get_by_role("heading", level=1).first.inner_text().endswith(name)


def upload_bad_file(page, tmp_path, watch) -> None:
    bad = tmp_path / "adapter_config.json"
    bad.write_text("this is not JSON")
    watch.allow("status of 400")
    page.goto("/modules/new/")
    page.set_input_files("#id_files", [bad])
    page.fill("#id_name", "broken")
    page.get_by_role("button", name="Publish").click()
    page.locator(".errorlist li, .message.error").first.wait_for()
    assert "/modules/new/" in page.url
    assert_fits_viewport(page)


def search_and_filter(page, username: str, name: str) -> None:
    page.goto("/")
    search = page.locator("header").get_by_role("searchbox")
    search.fill(name)
    with page.expect_navigation():
        search.press("Enter")
    assert page.locator(".module-card").filter(has_text=name).count() == 1
    page.goto("/modules/?tag=e2e")
    assert page.locator(".module-card").filter(has_text=f"{username}").count() == 1
    assert page.locator(".module-card").filter(has_text=AUTHOR).count() == 0
    assert_fits_viewport(page)


def download(page, username: str, name: str, tmp_path) -> None:
    page.goto(f"/{username}/{name}/")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download .zip").click()
    path = tmp_path / "module.zip"
    info.value.save_as(path)
    with zipfile.ZipFile(path) as archive:
        assert f"{name}/adapter_config.json" in archive.namelist()


def compose(page, size: str, name: str) -> None:
    page.goto("/compose/")
    if size == "desktop":
        page.fill("#module-filter", "skill")
        page.click("#select-all")
    else:
        page.check("input[name=selection][value=pick]")
        page.fill("#id_pick", "2")
    page.locator("#compose-form details summary").first.click()
    page.fill("#id_examples", "\n".join(json.dumps(e) for e in EXAMPLES))
    page.fill("#id_name", name)
    page.fill("#id_steps", "3")
    page.fill("#id_max_new_tokens", "2")
    assert_fits_viewport(page)
    screenshot(page, f"compose-form-{size}")
    with page.expect_navigation(url="**/compose/jobs/*/"):
        page.locator("#compose-form [type=submit]").click()
    page.wait_for_selector("#job-live")
    screenshot(page, f"compose-live-{size}")
    # The page follows the job and reloads itself when it ends. (Playwright's
    # wait_for_function would evaluate a string, which the site's policy forbids.)
    expect(page.locator("#job-status")).to_have_text(FINAL_STATUS, timeout=180_000)
    page.wait_for_load_state("networkidle")
    assert page.locator("#job-status").inner_text().strip() == "Succeeded"
    record_width("job", size, assert_fits_viewport(page))
    assert_accessible(page, f"job-{size}", record=lambda counts: record_axe("job", size, counts))
    screenshot(page, f"compose-result-{size}")


def publish_and_play(page) -> None:
    # The seeded modules name no license: the owner chooses the composed one's.
    license = page.get_by_label("License of the composed module")
    if license.count():
        license.fill("apache-2.0")
    with page.expect_navigation():
        page.get_by_role("button", name="Publish").click()
    playground = page.locator(".playground")
    playground.locator("textarea").fill("one plus two")
    playground.get_by_role("button", name="Generate").click()
    answered = playground.locator(".playground-outputs li").or_(
        playground.locator(".playground-status", has_text="Failed")
    )
    answered.first.wait_for(timeout=120_000)
    assert playground.locator(".playground-outputs li").count() == 1, playground.inner_text()
    size = "desktop" if page.viewport_size["width"] > 800 else "phone"
    record_width("playground", size, assert_fits_viewport(page))
    assert_accessible(
        page, f"playground-{size}", record=lambda counts: record_axe("playground", size, counts)
    )


def log_out(page) -> None:
    open_menu_if_collapsed(page)
    with page.expect_navigation():
        page.get_by_role("button", name="Log out").click()
    open_menu_if_collapsed(page)
    assert page.get_by_role("link", name="Log in").is_visible()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_a_newcomer_signs_up_shares_a_module_composes_one_and_logs_out(
    open_page, live_hub, size, tmp_path
):
    page, watch = open_page(size)
    username = f"newcomer-{size}"
    sign_up(page, username)
    create_token(page)
    module = f"shared-{size}"
    upload(page, live_hub.adapter_folders[-2 if size == "desktop" else -1], module, "e2e, math")
    upload_bad_file(page, tmp_path, watch)
    search_and_filter(page, username, module)
    download(page, username, module, tmp_path)
    compose(page, size, f"composed-{size}")
    publish_and_play(page)
    log_out(page)


def test_an_upload_with_empty_tags_is_published_without_tags(open_page, live_hub):
    page, watch = open_page("desktop")
    watch.allow("status of 400")
    sign_up(page, "no-tags")
    upload(page, live_hub.adapter_folders[-2], "untagged", "")
    assert page.locator(".chip").filter(has_text="e2e").count() == 0


def test_the_compose_preview_shows_the_pasted_examples(open_page):
    page, _ = open_page("phone")
    log_in(page)
    page.goto("/compose/")
    page.locator("#compose-form details summary").first.click()
    page.fill("#id_examples", "\n".join(json.dumps(e) for e in EXAMPLES))
    page.click("[data-preview-out=examples-preview]")
    page.wait_for_selector("#examples-preview table", timeout=5000)
    assert page.locator("#examples-preview tbody tr").count() == len(EXAMPLES)
