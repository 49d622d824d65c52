"""The "Train a module" form, the live job page, the list, cancel."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from composition.models import JobStatus, TrainingJob
from composition.training import services
from tests.composition.conftest import SHOTS, examples_jsonl

pytestmark = pytest.mark.django_db


@pytest.fixture
def form_data(tiny_base):
    return {
        "base_model": tiny_base.pk,
        "name": "web-trained",
        "examples_format": "jsonl",
        "examples": examples_jsonl(SHOTS),
        "steps": 3, "rank": 4, "alpha": 8, "dropout": 0.1, "learning_rate": 0.001,
        "batch_size": 2, "warmup_steps": 1, "max_length": 64, "seed": 0, "target_modules": "",
    }  # fmt: skip


def test_the_form_needs_a_login(client, db):
    assert client.get("/train/").status_code == 302


def test_the_form_shows_the_defaults(client, user, tiny_base):
    client.force_login(user)

    page = client.get("/train/").content.decode()

    for field, value in (("steps", "100"), ("rank", "16"), ("alpha", "32"), ("dropout", "0.1")):
        assert f'name="{field}" value="{value}"' in page
    assert "q_proj, v_proj for Llama-family models" in page
    assert 'href="/train/"' in page  # the navigation links the form


def test_a_valid_form_queues_the_job_and_opens_its_live_page(client, user, form_data):
    client.force_login(user)

    response = client.post("/train/", form_data)

    job = TrainingJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/train/jobs/{job.pk}/"
    assert job.data_source == "examples pasted on the training form"
    assert (job.steps, job.rank, job.max_length, job.make_public) == (3, 4, 64, False)
    page = client.get(response["Location"]).content.decode()
    assert f"Training #{job.pk}" in page and "Queued" in page
    assert 'id="job-bar" max="3" value="0"' in page
    assert f'data-api-url="/api/v1/trainings/{job.pk}/"' in page
    assert 'id="cancel-button"' in page


def test_an_uploaded_file_is_the_data(client, user, form_data):
    client.force_login(user)
    form_data["examples"] = ""
    form_data["examples_file"] = SimpleUploadedFile(
        "sports.csv", b"input,target\none plus two,three\n"
    )

    response = client.post("/train/", form_data)

    assert response.status_code == 302
    job = TrainingJob.objects.get()
    assert job.examples == [{"input": "one plus two", "target": "three"}]
    assert job.data_source == "uploaded file `sports.csv`"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"examples": '{"input": "a", "target": "b"}\n{broken\n'}, "row 2: not valid JSON"),
        ({"examples": ""}, "Give at least one example."),
        ({"name": "bad name!"}, "Use 1 to 96 letters"),
        ({"name": "web-trained "}, "Remove the spaces or line breaks before or after the name."),
        ({"rank": 0}, "LoRA rank r must be at least 1."),
        ({"target_modules": "nowhere"}, "tiny/llama has no layers named nowhere"),
        ({"warmup_steps": 5}, "must not be more than the steps"),
    ],
)
def test_bad_input_is_shown_on_the_form_and_nothing_is_queued(
    client, user, form_data, change, message
):
    client.force_login(user)

    response = client.post("/train/", {**form_data, **change})

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not TrainingJob.objects.exists()


def test_too_many_active_trainings_is_a_429_with_the_reason(client, user, form_data, settings):
    settings.HUB_MAX_ACTIVE_JOBS = 1
    client.force_login(user)
    client.post("/train/", form_data)

    response = client.post("/train/", {**form_data, "name": "second"})

    assert response.status_code == 429
    assert "at most 1" in response.content.decode()


def test_a_finished_job_links_its_module_and_draws_its_loss(client, user, form_data):
    client.force_login(user)
    client.post("/train/", form_data)
    job = TrainingJob.objects.get()
    services.training_run(job_id=job.pk, attempt=1, worker_host="test@host")
    job.refresh_from_db()

    page = client.get(f"/train/jobs/{job.pk}/").content.decode()

    assert 'id="result-link"' in page and job.result_module.get_absolute_url() in page
    assert 'data-final="true"' in page and 'id="cancel-button"' not in page
    assert f"{job.final_loss:.4f}" in page
    assert f"{job.loss_history[-1]}" in page  # the curve's data, for job.js


def test_cancel_from_the_page(client, user, form_data):
    client.force_login(user)
    client.post("/train/", form_data)
    job = TrainingJob.objects.get()

    response = client.post(f"/train/jobs/{job.pk}/cancel/")

    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED


def test_other_people_see_neither_the_job_nor_its_cancel(client, user, other_user, form_data):
    client.force_login(user)
    client.post("/train/", form_data)
    job = TrainingJob.objects.get()

    client.force_login(other_user)
    assert client.get(f"/train/jobs/{job.pk}/").status_code == 404
    assert client.post(f"/train/jobs/{job.pk}/cancel/").status_code == 404
    assert "web-trained" not in client.get("/train/jobs/").content.decode()
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED


def test_the_list_shows_your_jobs(client, user, form_data):
    client.force_login(user)
    client.post("/train/", form_data)

    page = client.get("/train/jobs/").content.decode()

    assert "web-trained" in page and "0 / 3" in page
    assert 'href="/train/jobs/"' in client.get("/compose/jobs/").content.decode()


def test_train_again_fills_in_the_settings_of_an_earlier_job(client, user, form_data):
    client.force_login(user)
    client.post("/train/", {**form_data, "target_modules": "q_proj"})
    job = TrainingJob.objects.get()

    page = client.get(f"/train/?from={job.pk}").content.decode()

    assert 'name="steps" value="3"' in page and 'name="rank" value="4"' in page
    assert 'name="target_modules" value="q_proj"' in page
