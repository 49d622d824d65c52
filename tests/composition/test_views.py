"""The composition form and pages."""

import re
from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from composition import results
from composition.models import CompositionJob
from hubsite import job_runs
from tests.composition.conftest import SHOTS, examples_jsonl

pytestmark = pytest.mark.django_db


@pytest.fixture
def form_data(tiny_base, tiny_modules):
    return {
        "base_model": tiny_base.pk,
        "selection": "choose",
        "modules": [m.pk for m in tiny_modules[:3]],
        "examples_format": "jsonl",
        "examples": examples_jsonl(SHOTS),
        "heldout_format": "jsonl",
        "heldout": "",
        "steps": 3, "l1": 0.05, "bound": 1.5, "optimizer": "NGOpt",
        "population": 1, "seed": 0, "max_new_tokens": 8, "name": "",
    }  # fmt: skip


def test_the_form_needs_a_login(client, db):
    assert client.get("/compose/").status_code == 302


def test_the_form_lists_compatible_modules_with_defaults(client, user, tiny_modules):
    client.force_login(user)

    page = client.get("/compose/").content.decode()

    assert "lorahub/skill-0" in page
    assert 'name="steps" value="40"' in page and 'value="NGOpt" selected' in page


def test_a_valid_form_queues_the_job_and_opens_its_page(client, user, form_data):
    client.force_login(user)

    response = client.post("/compose/", form_data)

    job = CompositionJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/compose/jobs/{job.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert "Queued" in page and f"Composition #{job.pk}" in page


def test_malformed_jsonl_is_shown_by_row_and_nothing_is_queued(client, user, form_data):
    client.force_login(user)
    form_data["examples"] = '{"input": "a", "target": "b"}\n{broken\n'

    response = client.post("/compose/", form_data)

    assert response.status_code == 400
    assert "row 2: not valid JSON" in response.content.decode()
    assert not CompositionJob.objects.exists()


def test_csv_examples_and_a_single_module_error(client, user, form_data, tiny_modules):
    client.force_login(user)
    form_data.update(
        examples_format="csv",
        examples="input,target\none plus two,three\n",
        modules=[tiny_modules[0].pk],
    )

    response = client.post("/compose/", form_data)

    assert "Choose at least 2 modules." in response.content.decode()
    assert not CompositionJob.objects.exists()


def test_too_many_jobs_is_a_429_page_with_the_reason(client, user, form_data, settings):
    settings.HUB_MAX_ACTIVE_JOBS = 0
    client.force_login(user)

    response = client.post("/compose/", form_data)

    assert response.status_code == 429
    assert "queued or running compositions" in response.content.decode()


def test_preview_parses_like_the_server(client, user):
    client.force_login(user)

    body = client.post(
        "/compose/preview/", {"format": "tsv", "text": "input\ttarget\nq\ta\nbad\n"}
    ).json()

    assert body["count"] == 1 and body["rows"] == [{"input": "q", "target": "a"}]
    assert body["errors"] == ["row 3: 'target' is missing or empty"]


def test_someone_elses_job_page_is_404(client, user, form_data, django_user_model):
    client.force_login(user)
    client.post("/compose/", form_data)
    job = CompositionJob.objects.get()
    client.force_login(django_user_model.objects.create_user("eve", password="x-long-pass-2"))

    assert client.get(f"/compose/jobs/{job.pk}/").status_code == 404


def test_a_published_job_page_hides_a_private_source_from_others(
    client, user, form_data, private_module, django_user_model
):

    modules = [*form_data["modules"][:2], private_module.pk]
    client.force_login(user)
    client.post("/compose/", {**form_data, "modules": modules, "name": "mixed"})
    job = CompositionJob.objects.get()
    results.composition_run(job_id=job.pk, attempt=job.attempt, worker_host="test@host")
    client.post(f"/compose/jobs/{job.pk}/publish/", {"license": "mit"})
    page = f"/compose/jobs/{job.pk}/"
    assert "ada/secret-skill" in client.get(page).content.decode()

    client.force_login(django_user_model.objects.create_user("eve", password="x-long-pass-2"))
    for viewer in (client, Client()):
        response = viewer.get(page)
        assert response.status_code == 200
        html = response.content.decode()
        assert "secret-skill" not in html
        assert "a private module" in html and "lorahub/skill-0" in html
        # The composed module's page and card say no more.
        assert "secret-skill" not in viewer.get("/ada/mixed/").content.decode()


def test_compose_again_prefills_the_form(client, user, form_data):
    client.force_login(user)
    client.post("/compose/", {**form_data, "steps": 17})
    job = CompositionJob.objects.get()

    page = client.get(f"/compose/?from={job.pk}").content.decode()

    assert 'name="steps" value="17"' in page
    assert "one plus two" in page


def test_a_preselect_job_page_shows_scoring_then_the_modules_left_out(client, user, form_data):

    client.force_login(user)
    client.post("/compose/", {**form_data, "preselect": 2})
    job = CompositionJob.objects.get()
    assert job.preselect == 2

    queued = client.get(f"/compose/jobs/{job.pk}/").content.decode()
    results.composition_run(job_id=job.pk, attempt=job.attempt, worker_host="test@host")
    done = client.get(f"/compose/jobs/{job.pk}/").content.decode()

    assert 'id="job-scored">0</strong> / 3' in queued
    assert 'id="job-scored">3</strong> / 3' in done
    assert "the best 2 of 3 by loss alone" in done and "Scoring candidates" in done
    left_out = done[done.index('id="left-out"') :]
    [dropped] = [c for c in job.candidates.all() if not c.selected]
    assert dropped.module_name in left_out


def test_preselect_must_leave_some_candidates_out(client, user, form_data):
    client.force_login(user)

    response = client.post("/compose/", {**form_data, "preselect": 3})

    assert response.status_code == 400
    assert "must be fewer than the 3 candidate modules" in response.content.decode()
    assert not CompositionJob.objects.exists()


def test_the_job_page_keeps_the_history_of_a_retry(client, user, form_data, settings):
    client.force_login(user)
    client.post("/compose/", form_data)
    job = CompositionJob.objects.get()
    settings.HUB_JOB_STALE_SECONDS = 60
    CompositionJob.objects.filter(pk=job.pk).update(
        status="running", worker_host="gone@host", heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    job_runs.sweep()
    results.composition_run(job_id=job.pk, attempt=2, worker_host="next@host")

    page = client.get(f"/compose/jobs/{job.pk}/").content.decode()
    history = page[page.index('id="job-history-title"') :]

    events = re.findall(r"<strong>([^<]+)</strong>", history)
    assert events == ["Queued", "Requeued", "Started", "Succeeded"]
    assert "the worker (gone@host) stopped responding" in history
    assert "(attempt 2)" in history and "on next@host" in history


def test_the_hub_picks_by_retrieval_from_the_form_and_the_page_says_why(
    client, user, form_data, tiny_modules
):
    client.force_login(user)
    form = {**form_data, "selection": "pick", "pick": 2, "pick_method": "retrieval"}
    form.update(modules=[], strategy="auto", validation_folds=3)

    response = client.post("/compose/", form)

    assert response.status_code == 302
    job = CompositionJob.objects.get()
    assert (job.preselect, job.preselect_method, job.strategy) == (2, "retrieval", "auto")
    results.composition_run(job_id=job.pk, attempt=job.attempt, worker_host="test@host")
    job.refresh_from_db()
    page = client.get(f"/compose/jobs/{job.pk}/").content.decode()
    assert "the best 2 of 4 by fingerprint" in page
    assert "relevance" in page and 'id="left-out"' in page
    assert f"Validation on the examples chose <strong>{job.chosen_strategy}</strong>" in page
    assert job.strategy_reason in page.replace("&#x27;", "'")
    table = page[page.index('id="strategy-scores"') :]
    assert all(name in table for name in ("compose", "best_single", "uniform", "base"))


def test_the_form_picks_by_loss_by_default_and_keeps_compose_as_the_strategy(client, user):
    client.force_login(user)

    page = client.get("/compose/").content.decode()

    assert re.search(r'value="loss"[^>]*checked', page)
    assert re.search(r'<option value="compose" selected', page)
    assert 'name="validation_folds" value="5"' in page


def test_compose_again_asks_again_for_a_pick_larger_than_one_may_tick(client, user, form_data):
    """A pool the hub picked from can be larger than the form lets anyone tick."""
    client.force_login(user)
    pick = {**form_data, "selection": "pick", "pick": 2, "pick_method": "loss", "modules": []}
    assert client.post("/compose/", pick).status_code == 302
    job = CompositionJob.objects.get()
    pool = job.candidates.count()
    assert pool > 2 and job.preselect == 2

    with override_settings(HUB_MAX_CANDIDATES=pool - 1):
        page = client.get(f"/compose/?from={job.pk}").content.decode()
        again = {**form_data, **prefilled_choices(page), "modules": ticked_modules(page)}
        response = client.post("/compose/", again)

    assert again["selection"] == "pick" and again["pick"] == "2" and again["modules"] == []
    assert response.status_code == 302, response.content.decode()[:2000]
    assert CompositionJob.objects.latest("pk").preselect == 2


def prefilled_choices(page: str) -> dict:
    checked = dict(re.findall(r'name="(selection|pick_method)" value="([^"]+)"[^>]*checked', page))
    [pick] = re.findall(r'name="pick" value="(\d+)"', page)
    return {**checked, "pick": pick}


def ticked_modules(page: str) -> list[str]:
    return re.findall(r'name="modules" value="(\d+)"[^>]*checked', page)
