"""Screenshots of the composition pages for the README, taken in headless Chromium.

Runs against a hub that is up (``manage.py runhub``), with the demo content
installed and an account that may compose:

    python docs/screenshots/take.py http://127.0.0.1:8000 --user ada --password …

It needs Playwright (``pip install playwright``) and a Chromium (``--chromium``,
Debian's by default). It composes the starter modules (``--modules``; with
``--preselect K`` the best k of them) for five examples of a BIG-Bench Hard
task and writes compose-form.png, compose-live.png and compose-result.png next
to itself.
"""

import argparse
import json
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "data" / "bbh"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the hub, e.g. http://127.0.0.1:8000")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument(
        "--modules", default="lorahub/", help="compose the modules whose names hold this"
    )
    parser.add_argument("--task", default="sports_understanding", help="a file of data/bbh/")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--heldout", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument(
        "--preselect", type=int, help="compose only the best k of the ticked modules"
    )
    parser.add_argument("--name", default=f"sports-{time.strftime('%H%M%S')}")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()

    rows = [json.loads(line) for line in (DATA / f"{args.task}.jsonl").open()]
    shots = rows[: args.shots]
    heldout = rows[args.shots : args.shots + args.heldout]

    def jsonl(examples):
        return "\n".join(json.dumps({"input": e["input"], "target": e["target"]}) for e in examples)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        base = args.url.rstrip("/")

        page.goto(f"{base}/accounts/login/")
        page.fill("#id_username", args.user)
        page.fill("#id_password", args.password)
        page.click("form [type=submit]")
        page.wait_for_load_state()

        page.goto(f"{base}/compose/")
        page.fill("#module-filter", args.modules)
        page.click("#select-all")
        page.click("#compose-form details summary")
        page.fill("#id_examples", jsonl(shots))
        page.dispatch_event("#id_examples", "change")
        page.click("[data-preview-out=examples-preview]")
        page.wait_for_selector("#examples-preview table")
        page.click("#compose-form details summary")
        page.fill("#id_heldout", jsonl(heldout))
        page.click("[data-preview-out=heldout-preview]")
        page.wait_for_selector("#heldout-preview table")
        page.fill("#id_name", args.name)
        page.fill("#id_steps", str(args.steps))
        if args.preselect:
            page.fill("#id_preselect", str(args.preselect))
        page.screenshot(path=args.out / "compose-form.png", full_page=True)

        page.click("#compose-form [type=submit]")
        page.wait_for_selector("#job-live")
        # Mid-run: a third of the steps done, the loss curve drawn so far.
        page.wait_for_function(
            "document.getElementById('job-bar').value * 3"
            " >= document.getElementById('job-bar').max",
            timeout=600_000,
        )
        page.screenshot(path=args.out / "compose-live.png", full_page=True)

        # The page reloads itself when the job ends; reload once more to be sure.
        page.wait_for_function(
            "['Succeeded', 'Failed', 'Cancelled']"
            ".includes(document.getElementById('job-status')?.textContent.trim())",
            timeout=900_000,
        )
        page.wait_for_timeout(2000)
        page.reload()
        page.wait_for_load_state("networkidle")
        page.screenshot(path=args.out / "compose-result.png", full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
