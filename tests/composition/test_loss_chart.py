"""The loss chart of a job page says what it shows: axes, legend, the phase the job
is in, and in words (a summary and a table), the same from the server and the script."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from composition import results
from composition.charts import chart_summary, composition_phase
from composition.models import CompositionJob, JobStatus
from tests.composition.test_views import form_data  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db
NODE = shutil.which("node")
JOB_JS = Path(settings.BASE_DIR) / "static" / "js" / "job.js"
SCRIPT = """
import { chartSummary, compositionPhase } from "%s";
const [values, jobs] = JSON.parse(process.argv[1]);
console.log(JSON.stringify({
  summary: chartSummary(values, { quantity: "objective", xName: "evaluation" }),
  phases: jobs.map(compositionPhase),
}));
"""
STATES = [
    {"status": "queued", "current_step": 0, "steps": 3, "preselect": None, "scored_candidates": 0},
    {"status": "running", "current_step": 0, "steps": 3, "preselect": 2, "scored_candidates": 0},
    {"status": "running", "current_step": 0, "steps": 3, "preselect": 2, "scored_candidates": 1},
    {"status": "running", "current_step": 2, "steps": 3, "preselect": None, "scored_candidates": 0},
    {"status": "running", "current_step": 3, "steps": 3, "preselect": None, "scored_candidates": 0},
    {"status": "succeeded", "current_step": 3, "steps": 3, "preselect": 2, "scored_candidates": 3},
]


def test_a_finished_job_page_names_axes_legend_phases_and_gives_the_values(
    client,
    user,
    form_data,  # noqa: F811
):
    client.force_login(user)
    client.post("/compose/", {**form_data, "preselect": 2})
    job = CompositionJob.objects.get()
    results.composition_run(job_id=job.pk, attempt=job.attempt, worker_host="test@host")
    job.refresh_from_db()

    page = client.get(f"/compose/jobs/{job.pk}/").content.decode()

    chart = page[page.index('<figure class="loss-chart"') : page.index("</figure>")]
    assert "Objective per evaluation" in chart
    assert 'aria-labelledby="loss-chart-title loss-summary"' in chart
    for phase in ("Loading", "Scoring candidates", "Optimising", "Evaluating"):
        assert phase in chart
    assert "objective of each evaluation (thin)" in chart and "best so far (thick)" in chart
    summary = re.search(r'<p id="loss-summary"[^>]*>(.*?)</p>', chart)[1]
    assert summary == chart_summary(job.loss_history, quantity="objective", x_name="evaluation")
    assert summary.startswith(f"Objective over {len(job.loss_history)} evaluations: first ")
    assert chart.count("<tr><td") == len(job.loss_history)


def test_a_running_job_page_marks_the_phase_it_is_in(client, user, form_data):  # noqa: F811
    client.force_login(user)
    client.post("/compose/", form_data)
    job = CompositionJob.objects.get()
    CompositionJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, current_step=1)

    page = client.get(f"/compose/jobs/{job.pk}/").content.decode()

    assert '<li aria-current="step" class="current">Optimising</li>' in page
    assert "Scoring candidates" not in page  # no preselection: no scoring phase
    assert 'data-phase="optimising"' in page


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_the_script_says_what_the_server_says():
    values = [2.5, 1.25, 1.75, 1.0]
    jobs = [CompositionJob(**state) for state in STATES]

    result = subprocess.run(
        [NODE, "--input-type=module", "-e", SCRIPT % JOB_JS.as_uri(), json.dumps([values, STATES])],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip

    shown = json.loads(result.stdout)
    assert shown["summary"] == chart_summary(values, quantity="objective", x_name="evaluation")
    assert shown["summary"] == (
        "Objective over 4 evaluations: first 2.5000, last 1.0000, lowest 1.0000 at evaluation 4."
    )
    assert shown["phases"] == [composition_phase(job) for job in jobs]
    assert shown["phases"] == [
        "waiting", "loading", "scoring", "optimising", "evaluating", "succeeded"
    ]  # fmt: skip
