"""/api/v1/trainings/: submit (JSON or a file), list, read, cancel, permissions, schema."""

import json

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from composition.models import JobStatus, TrainingJob
from composition.training import services
from tests.composition.training.conftest import ROWS

pytestmark = pytest.mark.django_db

URL = "/api/v1/trainings/"


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def payload(tiny_base):
    return {
        "base_model": "tiny/llama",
        "name": "api-trained",
        "examples": ROWS,
        "steps": 3,
        "rank": 4,
        "alpha": 8,
        "batch_size": 2,
        "warmup_steps": 1,
    }


def jsonl(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.mark.parametrize("name", [" api-trained", "api-trained\n"])
def test_a_name_with_spaces_around_it_is_refused_not_trimmed(api, payload, name):
    response = api.post(URL, {**payload, "name": name}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "name": ["Remove the spaces or line breaks before or after the name."]
    }
    assert not TrainingJob.objects.exists()


def test_submit_returns_the_queued_job_with_its_settings(api, payload):
    response = api.post(URL, payload, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["status"], body["name"], body["owner"]) == ("queued", "api-trained", "ada")
    assert body["url"].endswith(f"{URL}{body['id']}/")
    assert body["cancel_url"].endswith(f"{URL}{body['id']}/cancel/")
    assert body["html_url"].endswith(f"/train/jobs/{body['id']}/")
    assert (body["current_step"], body["steps"], body["progress"]) == (0, 3, 0.0)
    assert body["settings"] == {
        "public": False, "rank": 4, "alpha": 8, "dropout": 0.1,
        "target_modules": ["q_proj", "v_proj"], "steps": 3, "batch_size": 2,
        "learning_rate": 0.001, "warmup_steps": 1, "max_length": 256, "seed": 0,
    }  # fmt: skip
    assert body["example_count"] == 3
    assert body["data_source"] == "3 examples sent through the API"


def test_a_data_file_can_replace_the_examples(api, payload):
    del payload["examples"]
    upload = SimpleUploadedFile("rows.jsonl", jsonl(ROWS))

    response = api.post(URL, {**payload, "data": upload, "target_modules": ["q_proj"]})

    assert response.status_code == 201, response.json()
    job = TrainingJob.objects.get()
    assert job.examples == ROWS and job.target_modules == ["q_proj"]
    assert job.data_source == "uploaded file `rows.jsonl`"


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("rows.jsonl", b'{"input": "x", "target": "y"}\n[1]\n', "row 2: expected an object"),
        ("rows.txt", b"input,target\nx,y\n", "use a .jsonl, .csv or .tsv file"),
        ("rows.csv", b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_bad_data_file_is_a_400_naming_its_rows(api, payload, filename, content, message):
    del payload["examples"]

    response = api.post(URL, {**payload, "data": SimpleUploadedFile(filename, content)})

    assert response.status_code == 400
    assert message in str(response.json()["data"])
    assert not TrainingJob.objects.exists()


def test_anonymous_cannot_submit_or_list(payload):
    assert APIClient().post(URL, payload, format="json").status_code == 401
    assert APIClient().get(URL).status_code == 401


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"examples": []}, "examples", "at least one example"),
        ({"examples": None}, "examples", "either examples (JSON) or a data file"),
        ({"base_model": "x/y"}, "base_model", "unknown base model 'x/y'"),
        ({"name": "../etc"}, "name", "Use 1 to 96 letters"),
        ({"steps": 20000}, "steps", "Steps must be at most 10000."),
        ({"rank": "many"}, "rank", "Rank must be a whole number."),
        ({"learning_rate": 2}, "learning_rate", "Learning rate must be at most 1.0."),
        ({"target_modules": ["nowhere"]}, "target_modules", "has no layers named nowhere"),
        ({"examples": [{"input": "only input"}]}, "examples", "required"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, payload, change, field, message):
    body = {k: v for k, v in {**payload, **change}.items() if v is not None}

    response = api.post(URL, body, format="json")

    assert response.status_code == 400
    assert message in str(response.json()[field])
    assert not TrainingJob.objects.exists()


def test_example_limits_are_a_400(api, payload, settings):
    settings.HUB_MAX_TRAINING_EXAMPLES = 2

    response = api.post(URL, payload, format="json")

    assert response.status_code == 400
    assert response.json()["examples"] == ["at most 2 examples (3 given)"]


def test_too_many_active_trainings_is_a_429(api, payload, settings):
    settings.HUB_MAX_ACTIVE_JOBS = 1
    assert api.post(URL, {**payload, "name": "first"}, format="json").status_code == 201

    response = api.post(URL, {**payload, "name": "second"}, format="json")

    assert response.status_code == 429
    assert "at most 1" in response.json()["detail"]


def test_detail_shows_progress_and_the_module_when_done(api, payload):
    job_id = api.post(URL, payload, format="json").json()["id"]
    services.training_run(job_id=job_id, attempt=1, worker_host="test@host")

    body = api.get(f"{URL}{job_id}/").json()

    assert body["status"] == "succeeded" and body["progress"] == 1.0
    assert len(body["loss_history"]) == 3 and body["current_loss"] == body["loss_history"][-1]
    assert body["final_loss"] is not None and body["result_module"] == "ada/api-trained"
    assert body["worker_host"] == "test@host"


def test_list_shows_only_your_jobs(api, payload, other_user):
    api.post(URL, payload, format="json")
    other = APIClient()
    other.force_authenticate(other_user)
    other.post(URL, {**payload, "name": "graces"}, format="json")

    names = [job["name"] for job in api.get(URL).json()["results"]]
    queued = api.get(URL, {"status": "queued"}).json()["count"]
    finished = api.get(URL, {"status": "succeeded"}).json()["count"]

    assert names == ["api-trained"] and (queued, finished) == (1, 0)


def test_private_jobs_are_hidden_from_others(api, payload, other_user):
    job_id = api.post(URL, payload, format="json").json()["id"]
    other = APIClient()
    other.force_authenticate(other_user)

    assert other.get(f"{URL}{job_id}/").status_code == 404
    assert APIClient().get(f"{URL}{job_id}/").status_code == 404
    assert other.post(f"{URL}{job_id}/cancel/").status_code == 404
    assert TrainingJob.objects.get(pk=job_id).status == JobStatus.QUEUED


def test_a_public_result_makes_the_job_readable_but_only_its_owner_cancels(
    api, payload, other_user
):
    job_id = api.post(URL, {**payload, "public": True}, format="json").json()["id"]
    services.training_run(job_id=job_id, attempt=1, worker_host="test@host")
    other = APIClient()
    other.force_authenticate(other_user)

    assert APIClient().get(f"{URL}{job_id}/").json()["result_module"] == "ada/api-trained"
    assert other.post(f"{URL}{job_id}/cancel/").status_code == 403


def test_cancel(api, payload):
    job_id = api.post(URL, payload, format="json").json()["id"]

    response = api.post(f"{URL}{job_id}/cancel/")

    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = api.post(f"{URL}{job_id}/cancel/")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]


def test_the_schema_documents_trainings_with_an_example(client):
    schema = yaml.safe_load(client.get("/api/v1/schema/").content)

    create = schema["paths"]["/api/v1/trainings/"]["post"]
    body = create["requestBody"]["content"]
    assert "multipart/form-data" in body
    example = next(iter(body["application/json"]["examples"].values()))["value"]
    assert example["base_model"] and example["examples"][0]["target"]
    assert "/api/v1/trainings/{job_id}/cancel/" in schema["paths"]
    assert client.get("/api/v1/").json()["trainings"].endswith(URL)
