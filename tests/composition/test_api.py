"""/api/v1/compositions/: submit, read, cancel, download, publish, permissions."""

import io
import zipfile

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from composition import results
from composition.models import CompositionJob, JobStatus
from modules.models import Module
from tests.composition.conftest import HELDOUT, SHOTS

pytestmark = pytest.mark.django_db

URL = "/api/v1/compositions/"


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def payload(tiny_base, tiny_modules):
    return {
        "base_model": "tiny/llama",
        "modules": ["lorahub/skill-0", "lorahub/skill-1", str(tiny_modules[2].pk)],
        "examples": [{"input": e.input, "target": e.target} for e in SHOTS],
        "heldout": [{"input": e.input, "target": e.target} for e in HELDOUT],
        "steps": 3,
        "max_new_tokens": 3,
        "name": "api-made",
    }


def test_submit_returns_the_queued_job_with_its_url(api, payload):
    response = api.post(URL, payload, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["name"] == "api-made"
    assert body["url"].endswith(f"{URL}{body['id']}/")
    assert [c["module"] for c in body["candidates"]] == [
        "lorahub/skill-0", "lorahub/skill-1", "lorahub/skill-2",
    ]  # fmt: skip


def test_submit_with_preselect_keeps_it_in_the_settings(api, payload):
    response = api.post(URL, {**payload, "preselect": 2}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["settings"]["preselect"] == 2 and body["scored_candidates"] == 0
    assert [c["selected"] for c in body["candidates"]] == [None] * 3  # decided when it runs


def test_anonymous_cannot_submit(payload):
    assert APIClient().post(URL, payload, format="json").status_code == 401


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"examples": []}, "examples", "at least one example"),
        ({"modules": ["nobody/nothing"]}, "modules", "unknown module 'nobody/nothing'"),
        ({"base_model": "x/y"}, "base_model", "unknown base model 'x/y'"),
        ({"pick": 3}, "modules", "either modules or pick"),
        ({"steps": 5000}, "steps", "Steps must be at most 1000."),
        ({"examples": [{"input": "only input"}]}, "examples", "required"),
        ({"preselect": 1}, "preselect", "Preselect must be at least 2."),
        ({"preselect": 3}, "preselect", "fewer than the 3 candidate modules"),
        ({"name": " spaced"}, "name", "Remove the spaces or line breaks before or after"),
        ({"name": "line-break\n"}, "name", "Remove the spaces or line breaks before or after"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, payload, change, field, message):
    response = api.post(URL, {**payload, **change}, format="json")

    assert response.status_code == 400
    assert message in str(response.json()[field])
    assert not CompositionJob.objects.exists()


def test_too_many_active_jobs_is_a_429(api, payload, settings):
    settings.HUB_MAX_ACTIVE_JOBS = 1
    assert api.post(URL, {**payload, "name": "first"}, format="json").status_code == 201

    response = api.post(URL, {**payload, "name": "second"}, format="json")

    assert response.status_code == 429
    assert "at most 1" in response.json()["detail"]


def test_list_shows_only_your_jobs_filtered_by_status(api, payload, django_user_model):
    api.post(URL, payload, format="json")
    other = django_user_model.objects.create_user(username="eve", password="x-long-pass-2")
    other_api = APIClient()
    other_api.force_authenticate(other)

    assert api.get(URL, {"status": "queued"}).json()["count"] == 1
    assert api.get(URL, {"status": "succeeded"}).json()["count"] == 0
    assert other_api.get(URL).json()["count"] == 0


def test_a_private_job_is_404_to_others_until_its_result_is_published(
    api, payload, django_user_model
):
    job_id = api.post(URL, payload, format="json").json()["id"]
    job = CompositionJob.objects.get(pk=job_id)
    results.composition_run(job_id=job.pk, attempt=job.attempt, worker_host="t")
    other = APIClient()
    other.force_authenticate(django_user_model.objects.create_user("eve", password="x-long-pass-2"))

    assert other.get(f"{URL}{job_id}/").status_code == 404
    assert APIClient().get(f"{URL}{job_id}/adapter/").status_code == 404
    assert other.post(f"{URL}{job_id}/publish/").status_code == 404

    published = api.post(f"{URL}{job_id}/publish/", {"license": "mit"}, format="json")
    assert published.json() == {"module": "ada/api-made", "license": "mit"}

    body = other.get(f"{URL}{job_id}/").json()
    assert body["status"] == "succeeded" and body["result_module"] == "ada/api-made"
    assert other.post(f"{URL}{job_id}/cancel/").status_code == 403


def published_with_a_private_source(api, payload) -> CompositionJob:
    """ada composes two public modules with her private ada/secret-skill, then publishes."""
    modules = ["lorahub/skill-0", "lorahub/skill-1", "ada/secret-skill"]
    job_id = api.post(URL, {**payload, "modules": modules}, format="json").json()["id"]
    job = CompositionJob.objects.get(pk=job_id)
    results.composition_run(job_id=job.pk, attempt=job.attempt, worker_host="t")
    published = api.post(f"{URL}{job_id}/publish/", {"license": "mit"}, format="json")
    assert published.json() == {"module": "ada/api-made", "license": "mit"}
    return CompositionJob.objects.get(pk=job_id)


def served_readme(module_name: str) -> str:
    response = APIClient().get(f"/api/v1/modules/{module_name}/files/README.md")
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()


def test_a_published_job_hides_a_private_source_from_others(
    api, payload, private_module, django_user_model
):
    job = published_with_a_private_source(api, payload)
    other = APIClient()
    other.force_authenticate(django_user_model.objects.create_user("eve", password="x-long-pass-2"))

    for client in (other, APIClient()):
        response = client.get(f"{URL}{job.pk}/")
        assert response.status_code == 200
        assert "secret-skill" not in response.content.decode()
        candidates = response.json()["candidates"]
        assert [c["module"] for c in candidates] == ["lorahub/skill-0", "lorahub/skill-1", None]
        assert candidates[2]["visible"] is False and candidates[2]["deleted"] is False

    # Its owner still sees every name.
    names = [c["module"] for c in api.get(f"{URL}{job.pk}/").json()["candidates"]]
    assert names == ["lorahub/skill-0", "lorahub/skill-1", "ada/secret-skill"]
    assert [c["module"] for c in api.get(URL).json()["results"][0]["candidates"]] == names


def test_the_card_of_a_published_composition_names_no_private_source(api, payload, private_module):
    job = published_with_a_private_source(api, payload)
    [public] = job.candidates.filter(module_name="lorahub/skill-0")

    readme = served_readme("ada/api-made")
    detail = APIClient().get("/api/v1/modules/ada/api-made/").content.decode()

    assert "secret-skill" not in detail
    for text in (readme, job.result_module.card):
        assert "secret-skill" not in text
        # Neither its name nor its weight: the table has a row per public source only.
        rows = [line for line in text.splitlines() if line.startswith("| ") and "/" in line]
        assert sorted(row.split(" | ")[0] for row in rows) == [
            "| lorahub/skill-0",
            "| lorahub/skill-1",
        ]
    assert f"| lorahub/skill-0 | {public.weight:+.4f} |" in readme
    assert "Also merged: 1 module that is not public, not named here." in readme


def test_publishing_drops_a_source_made_private_since_from_the_card(api, payload):
    job_id = api.post(URL, payload, format="json").json()["id"]
    job = CompositionJob.objects.get(pk=job_id)
    results.composition_run(job_id=job.pk, attempt=job.attempt, worker_host="t")
    job.refresh_from_db()
    assert "| lorahub/skill-1 |" in job.result_module.card
    Module.objects.filter(name="skill-1").update(visibility=Module.Visibility.PRIVATE)

    assert api.post(f"{URL}{job_id}/publish/", {"license": "mit"}).status_code == 200

    readme = served_readme("ada/api-made")
    assert "skill-1" not in readme
    assert "| lorahub/skill-0 |" in readme and "| lorahub/skill-2 |" in readme
    assert "Also merged: 1 module that is not public" in readme
    job.result_module.refresh_from_db()
    assert job.result_module.is_public and "skill-1" not in job.result_module.card


def test_refreshing_cards_unnames_a_source_made_private_after_publishing(api, payload):
    job_id = api.post(URL, payload, format="json").json()["id"]
    job = CompositionJob.objects.get(pk=job_id)
    results.composition_run(job_id=job.pk, attempt=job.attempt, worker_host="t")
    api.post(f"{URL}{job_id}/publish/", {"license": "mit"})
    assert "| lorahub/skill-2 |" in served_readme("ada/api-made")
    Module.objects.filter(name="skill-2").update(visibility=Module.Visibility.PRIVATE)

    out = io.StringIO()
    call_command("refresh_composition_cards", stdout=out)

    assert "rewrote the card of ada/api-made" in out.getvalue()
    readme = served_readme("ada/api-made")
    assert "skill-2" not in readme and "| lorahub/skill-0 |" in readme
    call_command("refresh_composition_cards", stdout=(again := io.StringIO()))
    assert "0 card(s) rewritten" in again.getvalue()


def test_the_adapter_downloads_as_a_peft_zip(api, payload):
    job_id = api.post(URL, payload, format="json").json()["id"]
    job = CompositionJob.objects.get(pk=job_id)
    results.composition_run(job_id=job.pk, attempt=job.attempt, worker_host="t")

    response = api.get(f"{URL}{job_id}/adapter/")

    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == [
        "api-made/README.md", "api-made/adapter_config.json", "api-made/adapter_model.safetensors",
    ]  # fmt: skip


def test_cancel_a_queued_job_then_cancelling_again_is_a_conflict(api, payload):
    job_id = api.post(URL, payload, format="json").json()["id"]

    assert api.post(f"{URL}{job_id}/cancel/").json()["status"] == JobStatus.CANCELLED
    response = api.post(f"{URL}{job_id}/cancel/")

    assert response.status_code == 409
    assert "already cancelled" in response.json()["detail"]


def test_the_schema_documents_the_endpoint_with_an_example(client, db):
    import yaml

    schema = yaml.safe_load(client.get("/api/v1/schema/").content)
    post = schema["paths"][URL]["post"]
    examples = post["requestBody"]["content"]["application/json"]["examples"]
    assert "modules" in next(iter(examples.values()))["value"]


def test_submit_with_pick_by_retrieval_and_auto_then_read_why(api, payload):
    request = {**payload, "pick": 2, "pick_method": "retrieval", "strategy": "auto"}
    request["validation_folds"] = 3
    del request["modules"]

    response = api.post(URL, request, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["settings"]["preselect"] == 2
    assert body["settings"]["preselect_method"] == "retrieval"
    assert body["strategy"] == {
        "requested": "auto", "chosen": None, "reason": "", "validation_loss": {},
    }  # fmt: skip
    job = CompositionJob.objects.get(pk=body["id"])
    results.composition_run(job_id=job.pk, attempt=job.attempt, worker_host="test@host")

    body = api.get(body["url"]).json()
    assert body["status"] == "succeeded"
    strategy = body["strategy"]
    assert set(strategy["validation_loss"]) == {"compose", "best_single", "uniform", "base"}
    assert strategy["chosen"] == min(
        strategy["validation_loss"], key=strategy["validation_loss"].get
    )
    assert "leave-one-out" in strategy["reason"]
    assert body["timings"]["validate_seconds"] > 0
    scores = [c["retrieval_score"] for c in body["candidates"]]
    assert len(scores) == 4 and all(s is not None for s in scores)
    assert sum(c["selected"] for c in body["candidates"]) == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"strategy": "best"}, "strategy"),
        ({"preselect_method": "oracle"}, "preselect_method"),
        ({"validation_folds": 1}, "validation_folds"),
        ({"early_stop": 0}, "early_stop"),
        ({"pick_method": "vibes"}, "pick_method"),
    ],
)
def test_bad_selection_settings_are_a_400_naming_the_field(api, payload, change, field):
    response = api.post(URL, {**payload, **change}, format="json")

    assert response.status_code == 400
    assert field in response.json()
