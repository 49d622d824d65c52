"""The hub's forms in Chromium, as a new user meets them: upload, log-in and sign-up
errors, the compose form by keyboard and by pasting, and the API token."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import run_axe
from tests.e2e.live_hub import MEMBER

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
BAD = "rgb(179, 38, 30)"  # --bad in hub.css
NEWCOMER, PASSPHRASE = "grace", "e2e-new-pass-phrase-3"
EXAMPLES = "\n".join(
    [
        '{"input": "one plus two", "target": "three"}',
        '{"input": "two plus two", "target": "four"}',
        '{"input": "the answer is not true", "target": "false"}',
    ]
)


def sign_up(page: Page, username: str = NEWCOMER, email: str = "") -> None:
    """A new user's first step; they are logged in after it."""
    page.goto("/accounts/signup/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("E-mail (optional)").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSPHRASE)
    page.get_by_label("Password confirmation").fill(PASSPHRASE)
    page.get_by_label("Password confirmation").press("Enter")
    expect(page.locator("form[action='/accounts/logout/']").first).to_be_attached()


def described_by(page: Page, selector: str) -> str:
    """The text of the elements a control's aria-describedby points at."""
    return page.eval_on_selector(
        selector,
        "(el) => (el.getAttribute('aria-describedby') || '').split(/\\s+/).filter(Boolean)"
        ".map((id) => document.getElementById(id)?.textContent.trim() ?? `missing #${id}`)"
        ".join(' | ')",
    )


# --- Upload -----------------------------------------------------------------------


def test_an_upload_with_tags_left_empty_is_published(open_page, live_hub):
    page, _ = open_page("desktop")
    sign_up(page)
    page.goto("/modules/new/")
    expect(page.locator("#progress")).to_be_hidden()

    folder = live_hub.adapter_folders[-1]
    page.get_by_label("Adapter files").set_input_files(
        [folder / "adapter_config.json", folder / "adapter_model.safetensors"]
    )
    page.get_by_label("Name").fill("no-tags")
    expect(page.get_by_label("Tags")).to_have_value("")
    page.get_by_role("button", name="Publish").click()

    page.wait_for_url(re.compile(r"/grace/no-tags/$"))
    expect(page.get_by_role("heading", name="grace/no-tags")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("[object Object]")


def test_an_error_about_a_file_is_shown_in_words_beside_the_files(open_page, live_hub, tmp_path):
    page, watch = open_page("desktop")
    watch.allow("status of 400")
    sign_up(page)
    page.goto("/modules/new/")
    empty_config = tmp_path / "adapter_config.json"
    empty_config.write_bytes(b"")

    files = page.get_by_label("Adapter files")
    files.set_input_files(
        [empty_config, live_hub.adapter_folders[-1] / "adapter_model.safetensors"]
    )
    page.get_by_label("Name").fill("broken")
    page.get_by_role("button", name="Publish").click()

    error = page.locator("#id_files_error")
    expect(error).to_have_text("adapter_config.json: The submitted file is empty.")
    expect(files).to_have_attribute("aria-invalid", "true")
    assert "The submitted file is empty." in described_by(page, "#id_files")
    # Beside its field, and red with a sign that is not colour alone.
    field_box, error_box = page.locator(".field.dropzone").bounding_box(), error.bounding_box()
    assert field_box["y"] <= error_box["y"] <= field_box["y"] + field_box["height"]
    assert error.evaluate("(el) => getComputedStyle(el).color") == BAD
    assert "⚠" in error.locator("li").evaluate("(el) => getComputedStyle(el, '::before').content")
    expect(page.locator("body")).not_to_contain_text("[object Object]")
    # The progress bar is gone again, and says nothing of an upload that failed.
    expect(page.locator("#progress")).to_be_hidden()
    assert page.locator("#progress progress").evaluate("(el) => el.value") == 0


# --- Log-in and sign-up -------------------------------------------------------------


def test_sign_up_errors_are_marked_on_their_fields(sized_page):
    page, watch, _ = sized_page
    watch.allow("status of 400")
    page.goto("/accounts/signup/")

    page.get_by_label("E-mail (optional)").fill("not-an-address")
    page.get_by_label("E-mail (optional)").press("Enter")

    expect(page.get_by_role("alert")).to_contain_text("Correct the fields marked below.")
    username = page.get_by_label("Username")
    expect(username).to_have_attribute("aria-invalid", "true")
    assert "Username is required." in described_by(page, "#id_username")
    assert "Enter a valid email address." in described_by(page, "#id_email")
    error = page.locator("#id_username_error")
    assert error.evaluate("(el) => getComputedStyle(el).color") == BAD
    assert username.evaluate("(el) => getComputedStyle(el).borderTopColor") == BAD


def test_a_wrong_password_is_announced_at_the_top_of_the_form(open_page):
    page, watch = open_page("phone")
    watch.allow("status of 400")
    page.goto("/accounts/login/")

    page.get_by_label("Username").fill(MEMBER)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Please enter a correct username and password")
    assert alert.evaluate("(el) => getComputedStyle(el).color") == BAD


# --- Compose ---------------------------------------------------------------------------


def test_pasted_examples_are_previewed_and_preview_does_not_move(open_page):
    page, _ = open_page("desktop")
    sign_up(page)
    page.goto("/compose/")
    page.get_by_text("Paste or upload instead").click()
    preview = page.locator("[data-preview-out=examples-preview]")
    before = preview.bounding_box()

    page.get_by_label("Examples as text", exact=True).fill(EXAMPLES)
    page.wait_for_timeout(100)
    preview.click()

    expect(page.locator("#examples-preview")).to_contain_text("3 examples read.")
    assert preview.bounding_box() == before
    # The table took the pasted rows, each field named for its row.
    expect(page.get_by_label("Target of example 2")).to_have_value("four")


def test_the_candidate_list_is_one_tab_stop_with_arrow_keys_and_a_filter(open_page):
    page, _ = open_page("desktop")
    sign_up(page)
    page.goto("/compose/")
    boxes = page.locator("#module-picker input[type=checkbox]")
    assert boxes.count() == 3

    page.get_by_role("button", name="none", exact=True).focus()
    page.keyboard.press("Tab")
    assert boxes.nth(0).evaluate("(el) => el === document.activeElement")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")
    expect(boxes.nth(1)).to_be_checked()
    expect(page.locator("#module-count")).to_have_text("1")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.closest('#module-picker') === null")
    assert focused, "Tab should leave the list after one stop"

    page.get_by_label("Filter by name").fill("logic")
    expect(page.locator("#module-picker input[type=checkbox]:visible")).to_have_count(1)
    expect(page.locator("#module-shown")).to_have_text("1")


def test_every_field_of_the_compose_form_is_labelled(open_page):
    page, _ = open_page("desktop")
    sign_up(page)
    page.goto("/compose/")
    page.get_by_text("Paste or upload instead").click()

    unlabelled = [v for v in run_axe(page) if v["id"] in ("label", "select-name")]

    assert unlabelled == []


# --- Account -------------------------------------------------------------------------


def test_replacing_the_api_token_asks_first(open_page):
    page, _ = open_page("desktop")
    sign_up(page)
    page.goto("/accounts/me/")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("pre.token").inner_text()

    page.get_by_role("button", name="Replace token…").click()

    expect(page.get_by_role("heading", name="Replace your API token?")).to_be_visible()
    page.get_by_role("link", name="Keep the current token").click()
    expect(page.locator("pre.token")).to_have_text(token)
    page.get_by_role("button", name="Replace token…").click()
    page.get_by_role("button", name="Replace the token").click()
    expect(page.locator(".message.success")).to_contain_text("the old one no longer works")
    assert page.locator("pre.token").inner_text() != token


def test_an_empty_search_says_how_to_widen_it(open_page):
    page, _ = open_page("phone")
    page.goto("/modules/?q=zebra")

    expect(page.locator(".results")).to_contain_text(
        "No module matches “zebra”. Try fewer or other words"
    )


# --- A composition: its chart and its license ------------------------------------------


def test_a_composition_shows_its_chart_in_words_and_asks_for_a_license(open_page):
    page, _ = open_page("desktop")
    sign_up(page)
    page.goto("/compose/")
    page.get_by_label("lorahub/arith-skill").check()
    page.get_by_label("lorahub/logic-skill").check()
    page.get_by_text("Paste or upload instead").click()
    page.get_by_label("Examples as text", exact=True).fill(EXAMPLES)
    page.get_by_label("Steps").fill("4")
    page.get_by_role("button", name="Compose", exact=True).click()

    expect(page.locator("#job-status")).to_have_text("Succeeded", timeout=120_000)

    chart = page.locator("#loss-curve")
    for phase in ("Loading", "Optimising", "Evaluating"):
        expect(chart.locator("text", has_text=phase)).to_have_count(1)
    expect(chart.locator("text.axis-name", has_text="evaluation")).to_have_count(1)
    expect(chart.locator("polyline")).to_have_count(2)
    expect(page.locator(".legend")).to_contain_text("best so far (thick)")
    expect(page.locator("#loss-summary")).to_have_text(
        re.compile(r"^Objective over \d+ evaluations: first \d\.\d{4}, last .*, lowest .*\.$")
    )
    page.get_by_text("The values as a table").click()
    expect(page.locator("#loss-table tbody tr").first).to_be_visible()

    expect(page.locator("#result-license")).to_contain_text("not chosen yet")
    page.get_by_label("License of the composed module").fill("mit")
    page.get_by_role("button", name="Publish").click()
    expect(page.locator(".message.success")).to_contain_text("is now public (mit)")


def test_a_forgotten_password_is_reset_through_the_mailed_link(open_page, live_hub):
    page, _ = open_page("desktop")
    sign_up(page, email="grace@example.org")
    page.locator(".nav-row").get_by_role("button", name="Log out").click()

    page.goto("/accounts/login/")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill("grace@example.org")
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("heading", name="Check your mail")).to_be_visible()

    [mail] = list(live_hub.mail_dir.iterdir())
    link = re.search(r"https?://\S+/accounts/reset/\S+/", mail.read_text())[0]
    page.goto(link)
    page.get_by_label("New password", exact=True).fill("a-brand-new-phrase-5")
    page.get_by_label("New password confirmation").fill("a-brand-new-phrase-5")
    page.get_by_role("button", name="Set the password").click()
    expect(page.get_by_role("heading", name="Password changed")).to_be_visible()

    page.get_by_role("link", name="Log in").last.click()
    page.get_by_label("Username").fill(NEWCOMER)
    page.get_by_label("Password").fill("a-brand-new-phrase-5")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".nav-row").get_by_role("button", name="Log out")).to_be_visible()
