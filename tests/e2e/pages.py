"""The hub's main pages as a browser reaches them, and signing in through the form."""

from playwright.sync_api import Page

from tests.e2e.live_hub import AUTHOR, MEMBER, MEMBER_PASSWORD

# (name, path, signed in): the pages every size is checked on.
MAIN_PAGES = [
    ("home", "/", False),
    ("browse", "/modules/", False),
    ("search", "/modules/?q=skill&tag=math", False),
    ("tags", "/tags/", False),
    ("module", f"/{AUTHOR}/arith-skill/", False),
    ("owner", f"/{AUTHOR}/", False),
    ("login", "/accounts/login/", False),
    ("signup", "/accounts/signup/", False),
    ("api-docs", "/api/v1/docs/", False),
    ("api-redoc", "/api/v1/redoc/", False),
    ("upload", "/modules/new/", True),
    ("compose", "/compose/", True),
    ("jobs", "/compose/jobs/", True),
    ("account", "/accounts/me/", True),
]
# Pages of libraries (Swagger UI, ReDoc), which have no site header.
LIBRARY_PAGES = {"api-docs", "api-redoc"}


def log_in(page: Page, username: str = MEMBER, password: str = MEMBER_PASSWORD) -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.locator("main form [type=submit]").click()
    assert page.locator("form[action='/accounts/logout/']").count(), "the log-in failed"


def visit(page: Page, path: str, status: int = 200) -> None:
    response = page.goto(path)
    assert response is not None and response.status == status, (
        f"{path}: {response and response.status}"
    )
    # Swagger UI and ReDoc draw the page from the schema after it loads.
    page.wait_for_load_state("networkidle")
