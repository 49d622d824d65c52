"""Importing modules from Hub-compatible endpoints, through the real huggingface_hub client.

The endpoints are real servers on loopback: the hub itself (a gunicorn
process), and a small server over a folder that, like the Hugging Face Hub,
can still hold ``adapter_model.bin`` pickles.
"""

import hashlib
import json
import shutil
import time

import pytest
import torch
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token
from safetensors.torch import load_file

from hubsite.job_runs import JobStateError
from hubsite.jobs import JobStatus
from hubsite.tasks import sweep_jobs
from modules.hub_import import hub_import_repo
from modules.hub_import_jobs import import_job_cancel, import_job_run, import_job_submit
from modules.models import ImportJob, Module
from modules.services import module_import_folder, module_local_files, module_update
from modules.validation import ADAPTER_CONFIG, MODEL_CARD, PICKLED_WEIGHTS, SAFETENSORS_WEIGHTS
from tests.hub_server import running_hub
from tests.modules.adapters import edit_config
from tests.modules.folder_hub import _Repository, folder_hub
from tests.modules.hostile_cards import alias_bomb
from tests.workers import broker_connection, broker_reset, kill_worker, running_worker

CARD = """---
base_model: acme/tiny-llama
license: apache-2.0
tags:
- sentiment
- flan
---

# {name}

A LoRA module trained on {name}, saved by an older PEFT as a pickle.
"""


@pytest.fixture(autouse=True)
def client_online(monkeypatch):
    """huggingface_hub in this process may reach loopback servers (the suite is offline)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    # No user-agent probing, which would look for the public Hub.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_TELEMETRY", True)


@pytest.fixture
def remote(tmp_path, make_adapter):
    """A folder endpoint: lorahub/<name> repositories, pickled weights and a card each."""
    root = tmp_path / "remote"

    def add(name: str, *, seed: int, files=(ADAPTER_CONFIG, PICKLED_WEIGHTS, MODEL_CARD)):
        adapter = make_adapter(seed=seed, safe_serialization=False)
        (adapter / MODEL_CARD).write_text(CARD.format(name=name))
        folder = root / "lorahub" / name
        folder.mkdir(parents=True)
        for filename in files:
            shutil.copy(adapter / filename, folder / filename)
        return adapter

    add.root = root
    return add


@pytest.fixture
def endpoint(remote):
    remote.root.mkdir(parents=True, exist_ok=True)
    with folder_hub(remote.root) as url:
        yield url


def run_import(owner, **request) -> ImportJob:
    job = import_job_submit(owner=owner, any_endpoint=True, dispatch=False, **request)
    return import_job_run(job_id=job.pk, worker_host="test")


def results(job: ImportJob) -> dict:
    return {r["repo_id"]: (r["status"], r["module"]) for r in job.results}


# --- From a folder endpoint: pickles, cards, failures -------------------------------


def test_pickled_weights_are_imported_as_safetensors_with_the_cards_metadata(
    remote, endpoint, other_user, base_model
):
    original = remote("flan_t5_large-anli_r1", seed=11)

    job = run_import(other_user, repo_ids=["lorahub/flan_t5_large-anli_r1"], endpoint=endpoint)

    assert job.status == JobStatus.SUCCEEDED and job.error_message == ""
    assert results(job) == {
        "lorahub/flan_t5_large-anli_r1": ("imported", "grace/flan_t5_large-anli_r1")
    }
    assert "weights_only" in job.results[0]["message"]
    module = Module.objects.get(owner=other_user, name="flan_t5_large-anli_r1")
    assert set(module.files.values_list("filename", flat=True)) == {
        ADAPTER_CONFIG, SAFETENSORS_WEIGHTS, MODEL_CARD,
    }  # fmt: skip
    pickled = torch.load(original / PICKLED_WEIGHTS, weights_only=True)
    stored = load_file(module_local_files(module)[SAFETENSORS_WEIGHTS])
    assert stored.keys() == pickled.keys()
    assert all(torch.equal(stored[name], pickled[name]) for name in pickled)
    assert module.base_model == base_model and module.license == "apache-2.0"
    assert set(module.tags.values_list("slug", flat=True)) == {"sentiment", "flan"}
    assert module.description.endswith("saved by an older PEFT as a pickle.")


def test_weights_already_imported_are_skipped(remote, endpoint, other_user, base_model):
    remote("qnli", seed=12)
    first = run_import(other_user, repo_ids=["lorahub/qnli"], endpoint=endpoint)

    again = run_import(other_user, repo_ids=["lorahub/qnli"], endpoint=endpoint)

    assert results(first) == {"lorahub/qnli": ("imported", "grace/qnli")}
    assert results(again) == {"lorahub/qnli": ("skipped", "grace/qnli")}
    assert again.status == JobStatus.SUCCEEDED
    assert Module.objects.filter(owner=other_user).count() == 1


def test_each_repository_reports_its_own_failure(remote, endpoint, other_user, base_model):
    remote("good", seed=13)
    remote("card-only", seed=14, files=(MODEL_CARD,))
    bad = remote("wrong-shape", seed=15)
    remote_copy = remote.root / "lorahub" / "wrong-shape"
    edit_config(bad, r=16)  # the config now disagrees with the tensors
    shutil.copy(bad / ADAPTER_CONFIG, remote_copy / ADAPTER_CONFIG)

    job = run_import(
        other_user,
        repo_ids=["lorahub/card-only", "lorahub/missing", "lorahub/wrong-shape", "lorahub/good"],
        endpoint=endpoint,
    )

    by_repo = {r["repo_id"]: r for r in job.results}
    assert [r["status"] for r in job.results] == ["failed", "failed", "failed", "imported"]
    assert "no adapter_config.json" in by_repo["lorahub/card-only"]["message"]
    assert "has no repository lorahub/missing" in by_repo["lorahub/missing"]["message"]
    assert by_repo["lorahub/wrong-shape"]["message"].startswith("files: ")
    assert job.status == JobStatus.SUCCEEDED
    assert job.error_message == "3 of 4 repositories failed"
    assert list(Module.objects.filter(owner=other_user).values_list("name", flat=True)) == ["good"]


def test_a_repository_whose_card_uses_yaml_aliases_fails_with_the_reason(
    remote, endpoint, other_user, base_model, capsys
):
    remote("laughs", seed=18)
    (remote.root / "lorahub" / "laughs" / MODEL_CARD).write_text(alias_bomb())
    remote("plain", seed=19)
    refusal = "files: README.md: has front matter with a YAML anchor or alias (&l0 or *l0, line 3)"

    job = run_import(other_user, repo_ids=["lorahub/laughs", "lorahub/plain"], endpoint=endpoint)
    with pytest.raises(CommandError, match="failed"):
        call_command("import_hub", "lorahub/laughs", "--owner", "grace", "--endpoint", endpoint)

    laughs, plain = job.results
    assert (laughs["status"], laughs["module"]) == ("failed", None)
    # The card also named the base model, which the config does not; both are said.
    assert refusal in laughs["message"]
    assert (plain["status"], plain["module"]) == ("imported", "grace/plain")
    assert job.status == JobStatus.SUCCEEDED and job.error_message == "1 of 2 repositories failed"
    assert refusal in capsys.readouterr().out
    assert list(Module.objects.filter(owner=other_user).values_list("name", flat=True)) == ["plain"]


def test_a_remote_config_with_a_pattern_that_could_burn_cpu_is_not_imported(
    remote, endpoint, other_user, base_model
):
    # Shaped like the attack's (?:.|.){23}.*proj, shorter so that a hub without the
    # rule imports it at once: it selects every module the adapter has.
    hostile = remote("hostile", seed=16)
    edit_config(hostile, target_modules=r"(?:.|.){12}.*proj")
    shutil.copy(hostile / ADAPTER_CONFIG, remote.root / "lorahub" / "hostile" / ADAPTER_CONFIG)

    job = run_import(other_user, repo_ids=["lorahub/hostile"], endpoint=endpoint)

    [result] = job.results
    assert result["status"] == "failed"
    assert result["message"].startswith(
        'files: adapter_config.json: "target_modules" repeats a group'
    )
    assert not Module.objects.filter(owner=other_user).exists()


def test_an_import_where_everything_failed_is_failed(endpoint, other_user):
    job = run_import(other_user, repo_ids=["lorahub/missing"], endpoint=endpoint)

    assert job.status == JobStatus.FAILED and job.failed_count == 1


def test_an_endpoint_that_cannot_list_fails_the_author_import(endpoint, other_user):
    job = run_import(other_user, author="lorahub", endpoint=f"{endpoint}/not-a-hub")

    assert job.status == JobStatus.FAILED and job.results == []
    assert job.error_message.startswith(f"listing lorahub failed: {endpoint}/not-a-hub answered")


def test_import_hub_command_imports_named_repositories_and_whole_authors(
    remote, endpoint, other_user, base_model, capsys
):
    remote("anli", seed=16)
    remote("qqp", seed=17)

    call_command("import_hub", "lorahub/anli", "--owner", "grace", "--endpoint", endpoint)
    call_command("import_hub", "--author", "lorahub", "--owner", "grace", "--endpoint", endpoint)

    out = capsys.readouterr().out
    commit = _Repository(remote.root / "lorahub" / "anli").sha
    assert f"imported lorahub/anli → grace/anli (commit {commit[:12]})" in out
    assert "skipped  lorahub/anli → grace/anli" in out
    assert "imported lorahub/qqp → grace/qqp" in out
    assert "done: 1 imported, 1 skipped, 0 failed" in out
    assert sorted(Module.objects.filter(owner=other_user).values_list("name", flat=True)) == [
        "anli",
        "qqp",
    ]
    assert ImportJob.objects.filter(owner=other_user, status=JobStatus.SUCCEEDED).count() == 2
    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("import_hub", "lorahub/anli", "--owner", "nobody", "--endpoint", endpoint)
    with pytest.raises(CommandError, match="failed"):
        call_command("import_hub", "lorahub/gone", "--owner", "grace", "--endpoint", endpoint)


# --- Provenance and the base model ----------------------------------------------------


def test_an_imported_module_records_where_it_came_from(
    remote, endpoint, other_user, base_model, client
):
    remote("anli", seed=24)
    commit = _Repository(remote.root / "lorahub" / "anli").sha
    # Credentials in the endpoint's URL are used, never shown.
    with_credentials = endpoint.replace("http://", "http://reader:pa55@")

    job = run_import(other_user, repo_ids=["lorahub/anli"], endpoint=with_credentials)

    module = Module.objects.get(owner=other_user, name="anli")
    assert results(job) == {"lorahub/anli": ("imported", "grace/anli")}
    assert job.results[0]["revision"] == commit
    assert (module.source_endpoint, module.source_repo) == (endpoint, "lorahub/anli")
    assert module.source_revision == commit
    page = client.get("/grace/anli/").content.decode()
    assert f'href="{endpoint}/lorahub/anli/tree/{commit}"' in page and "pa55" not in page
    assert client.get("/api/v1/modules/grace/anli/").json()["imported_from"] == {
        "endpoint": endpoint,
        "repo_id": "lorahub/anli",
        "revision": commit,
        "url": f"{endpoint}/lorahub/anli/tree/{commit}",
    }
    uploaded = module_import_folder(
        owner=other_user, name="local", folder=remote("local", seed=25), base_model=base_model
    )
    assert client.get(f"/api/v1/modules/{uploaded.full_name}/").json()["imported_from"] is None


def test_a_chosen_base_model_is_named_by_the_stored_config_card_and_registry(
    remote, endpoint, other_user, base_model, client
):
    adapter = remote("mnli", seed=26)
    edit_config(adapter, base_model_name_or_path="elsewhere/unregistered-llama")
    shutil.copy(adapter / ADAPTER_CONFIG, remote.root / "lorahub" / "mnli" / ADAPTER_CONFIG)
    (remote.root / "lorahub" / "mnli" / MODEL_CARD).unlink()  # the config alone names it

    refused = run_import(other_user, repo_ids=["lorahub/mnli"], endpoint=endpoint)
    job = run_import(
        other_user, repo_ids=["lorahub/mnli"], endpoint=endpoint, base_model="acme/tiny-llama"
    )

    assert (
        "'elsewhere/unregistered-llama', which is not registered" in (refused.results[0]["message"])
    )
    assert results(job) == {"lorahub/mnli": ("imported", "grace/mnli")}
    assert job.results[0]["message"].endswith(
        "; adapter_config.json now names acme/tiny-llama as its base model "
        "(it named 'elsewhere/unregistered-llama')"
    )
    module = Module.objects.get(owner=other_user, name="mnli")
    served = client.get("/grace/mnli/resolve/main/adapter_config.json")
    config = json.loads(b"".join(served.streaming_content))
    stored = module.files.get(filename=ADAPTER_CONFIG)
    assert served["X-Linked-Etag"] == f'"{stored.sha256}"'
    assert stored.sha256 != hashlib.sha256((adapter / ADAPTER_CONFIG).read_bytes()).hexdigest()
    assert config["base_model_name_or_path"] == "acme/tiny-llama"
    assert config["r"] == json.loads((adapter / ADAPTER_CONFIG).read_text())["r"]
    assert module.adapter_config["base_model_name_or_path"] == "acme/tiny-llama"
    assert module.base_model == base_model and module.card_data["base_model"] == "acme/tiny-llama"
    assert client.get("/api/models/grace/mnli").json()["cardData"]["base_model"] == (
        "acme/tiny-llama"
    )


def test_an_unknown_base_model_is_refused_before_anything_runs(
    endpoint, other_user, base_model, client
):
    token = Token.objects.create(user=other_user).key

    response = client.post(
        "/api/v1/imports/",
        {"repo_ids": ["lorahub/qnli"], "base_model": "nobody/nothing"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )

    assert response.status_code == 400
    assert response.json()["base_model"] == [
        "No base model 'nobody/nothing' on this hub; choose one of: acme/tiny-llama."
    ]
    with pytest.raises(CommandError, match="base_model: No base model 'nobody/nothing'"):
        call_command(
            "import_hub", "lorahub/qnli", "--owner", "grace", "--endpoint", endpoint,
            "--base-model", "nobody/nothing",
        )  # fmt: skip
    assert not ImportJob.objects.exists()


# --- Hub to hub, through a live hub process -------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_hub_imports_from_another_hub(
    isolated_files, tmp_path, user, other_user, base_model, make_adapter
):
    first = module_import_folder(
        owner=user, name="sentiment", folder=make_adapter(seed=21), base_model=base_model
    )
    module_update(module=first, tags=["sentiment", "english"], license="mit")
    module_import_folder(
        owner=user, name="summaries", folder=make_adapter(seed=22), base_model=base_model
    )
    module_import_folder(
        owner=user,
        name="hidden",
        folder=make_adapter(seed=23),
        base_model=base_model,
        visibility=Module.Visibility.PRIVATE,
    )

    with running_hub(media_root=isolated_files, log=tmp_path / "hub.log") as hub:
        named = run_import(other_user, repo_ids=["ada/sentiment"], endpoint=hub)
        whole_author = run_import(other_user, author="ada", endpoint=hub)

    assert results(named) == {"ada/sentiment": ("imported", "grace/sentiment")}
    assert results(whole_author) == {
        "ada/summaries": ("imported", "grace/summaries"),
        "ada/sentiment": ("skipped", "grace/sentiment"),
    }  # the private module is not listed to anyone but its owner
    copy = Module.objects.get(owner=other_user, name="sentiment")
    source_files = {f.filename: f.sha256 for f in first.files.all()}
    copy_files = {f.filename: f.sha256 for f in copy.files.all()}
    assert copy_files[SAFETENSORS_WEIGHTS] == source_files[SAFETENSORS_WEIGHTS]
    assert copy_files[ADAPTER_CONFIG] == source_files[ADAPTER_CONFIG]
    assert set(copy.tags.values_list("slug", flat=True)) == {"sentiment", "english"}
    assert copy.license == "mit" and copy.base_model == base_model
    # Both hubs are one here (one database, one key): its own worker is not counted.
    assert Module.objects.get(pk=first.pk).download_count == 0


# --- Web form, API and a worker ----------------------------------------------------------


# --- Cancelling ------------------------------------------------------------------------


def test_cancelling_a_queued_import_is_immediate_and_the_worker_skips_it(
    remote, endpoint, other_user, base_model
):
    remote("qnli", seed=12)
    job = import_job_submit(
        owner=other_user, repo_ids=["lorahub/qnli"], endpoint=endpoint, any_endpoint=True,
        dispatch=False,
    )  # fmt: skip

    cancelled = import_job_cancel(job=job)

    assert cancelled.status == JobStatus.CANCELLED and cancelled.finished_at is not None
    assert import_job_run(job_id=job.pk, worker_host="test") is None
    assert not Module.objects.filter(owner=other_user).exists()


def test_a_running_import_stops_before_its_next_repository_and_keeps_what_it_did(
    remote, endpoint, other_user, base_model
):
    remote("qnli", seed=12)
    remote("anli", seed=13)
    job = import_job_submit(
        owner=other_user, repo_ids=["lorahub/qnli", "lorahub/anli"], endpoint=endpoint,
        any_endpoint=True, dispatch=False,
    )  # fmt: skip

    def cancel_after_first(outcome):
        import_job_cancel(job=ImportJob.objects.get(pk=job.pk))

    job = import_job_run(job_id=job.pk, worker_host="test", on_result=cancel_after_first)

    assert job.status == JobStatus.CANCELLED
    assert results(job) == {"lorahub/qnli": ("imported", "grace/qnli")}
    assert "cancelled after 1 of 2 repositories" in job.error_message
    assert list(Module.objects.filter(owner=other_user).values_list("name", flat=True)) == ["qnli"]
    with pytest.raises(JobStateError, match="already cancelled"):
        import_job_cancel(job=job)


def test_the_api_and_the_page_cancel_only_your_unfinished_imports(
    client, other_user, user, allowed_endpoint
):
    queued = [
        import_job_submit(owner=other_user, repo_ids=[f"lorahub/{name}"], dispatch=False)
        for name in ("qnli", "anli")
    ]
    token = Token.objects.create(user=other_user).key
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    response = client.post(f"/api/v1/imports/{queued[0].pk}/cancel/", **auth)
    again = client.post(f"/api/v1/imports/{queued[0].pk}/cancel/", **auth)
    client.force_login(user)
    not_yours = client.post(f"/modules/import/{queued[1].pk}/cancel/")
    client.force_login(other_user)
    page = client.post(f"/modules/import/{queued[1].pk}/cancel/")

    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    assert not_yours.status_code == 404
    assert page.status_code == 302
    assert ImportJob.objects.get(pk=queued[1].pk).status == JobStatus.CANCELLED


@pytest.fixture
def allowed_endpoint(settings, endpoint):
    settings.HUB_IMPORT_ENDPOINTS = [endpoint]
    return endpoint


def test_the_api_refuses_endpoints_the_hub_does_not_list(client, other_user, allowed_endpoint):
    token = Token.objects.create(user=other_user).key

    response = client.post(
        "/api/v1/imports/",
        {"repo_ids": ["lorahub/qnli"], "endpoint": "http://169.254.169.254"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    anonymous = client.post("/api/v1/imports/", {"author": "lorahub"})

    assert response.status_code == 400
    assert "HUB_IMPORT_ENDPOINTS" in response.json()["endpoint"][0]
    assert anonymous.status_code == 401
    assert not ImportJob.objects.exists()


def test_the_form_queues_an_import_and_its_page_shows_progress(
    client, other_user, allowed_endpoint, django_capture_on_commit_callbacks
):
    client.force_login(other_user)

    with django_capture_on_commit_callbacks() as dispatched:
        response = client.post(
            "/modules/import/",
            {"repo_ids": "lorahub/qnli\nlorahub/anli", "author": "", "endpoint": allowed_endpoint,
             "visibility": "private"},
        )  # fmt: skip

    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/modules/import/{job.pk}/"
    assert len(dispatched) == 1
    assert job.repo_ids == ["lorahub/qnli", "lorahub/anli"] and job.visibility == "private"
    page = client.get(response["Location"]).content.decode()
    assert '<progress id="import-bar" max="2" value="0">' in page
    assert "0 / 2 repositories" in page
    assert client.get("/modules/import/").status_code == 200
    client.logout()
    assert client.get(response["Location"]).status_code == 302  # to the login page


def test_the_form_refuses_malformed_ids_with_a_400_that_shows_them_escaped(
    client, other_user, allowed_endpoint
):
    client.force_login(other_user)

    response = client.post(
        "/modules/import/",
        {"repo_ids": "lorahub/qnli\nnot-an-id\x1b[2J", "author": "", "endpoint": allowed_endpoint,
         "visibility": "public"},
    )  # fmt: skip

    assert response.status_code == 400
    page = response.content.decode()
    errors = page[page.index('id="id_repo_ids_error"') :].split("</ul>")[0]
    assert "Not repository ids (owner/name): &#x27;not-an-id\\x1b[2J&#x27;." in errors
    assert "\x1b" not in errors  # the text area gives the input back as it was typed
    assert not ImportJob.objects.exists()


def test_a_listed_id_with_a_trailing_line_break_is_not_imported(other_user, tmp_path):
    outcome = hub_import_repo(
        owner=other_user,
        repo_id="lorahub/qnli\n",
        endpoint="http://127.0.0.1:9",
        work_dir=tmp_path / "work",
    )

    assert (outcome.status, outcome.message) == (
        "failed",
        "'lorahub/qnli\\n' is not a repository id (owner/name)",
    )


@pytest.fixture
def worker(tmp_path, settings, isolated_files, monkeypatch):
    # The worker shares this test's files, and may download (the suite is offline).
    settings.MEDIA_ROOT = isolated_files
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    with broker_connection(settings.CELERY_BROKER_URL, settings.TEST_BROKER_DIR) as conn:
        conn.default_channel.queue_purge("default")
    log = tmp_path / "worker.log"
    with running_worker(
        broker_url=settings.CELERY_BROKER_URL,
        broker_dir=settings.TEST_BROKER_DIR,
        queues="default",
        log=log,
    ):
        yield log


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_api_import_runs_on_a_worker(
    client, remote, allowed_endpoint, other_user, base_model, worker
):
    remote("anli", seed=31)
    remote("qqp", seed=32)
    token = Token.objects.create(user=other_user).key
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    created = client.post(
        "/api/v1/imports/", {"author": "lorahub"}, content_type="application/json", **auth
    )
    assert created.status_code == 201, created.json()
    url = created.json()["url"]
    deadline = time.monotonic() + 240
    while (status := client.get(url, **auth).json())["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, worker.read_text()[-4000:]
        time.sleep(0.5)

    assert status["status"] == "succeeded", (status, worker.read_text()[-4000:])
    assert status["worker_host"].startswith("test@")
    assert (status["total"], status["completed"], status["progress"]) == (2, 2, 1.0)
    assert {r["module"] for r in status["results"]} == {"grace/anli", "grace/qqp"}
    assert status["imported"] == 2 and status["html_url"].endswith(f"/{status['id']}/")
    assert "A LoRA module trained on qqp" in Module.objects.get(owner=other_user, name="qqp").card
    listed = client.get("/api/v1/imports/", **auth).json()["results"]
    assert [job["id"] for job in listed] == [status["id"]]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_import_whose_worker_was_killed_resumes_on_a_fresh_worker_without_doubles(
    remote, other_user, base_model, tmp_path, settings, isolated_files, monkeypatch
):
    settings.MEDIA_ROOT = isolated_files
    settings.HUB_JOB_STALE_SECONDS = 3
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    names = ["qnli", "anli", "qqp"]
    for seed, name in enumerate(names, start=40):
        remote(name, seed=seed)
    broker_reset(settings.CELERY_BROKER_URL, settings.TEST_BROKER_DIR)

    with folder_hub(remote.root, download_seconds=1.0) as slow_endpoint:
        job = import_job_submit(
            owner=other_user,
            repo_ids=[f"lorahub/{name}" for name in names],
            endpoint=slow_endpoint,
            any_endpoint=True,
        )
        with running_worker(**worker_options(settings, tmp_path / "killed.log", "killed")) as first:
            job = wait_for_import(job, lambda j: j.current_step >= 1 and not j.is_final)
            kill_worker(first)
        # Redis hands the unacknowledged task on after this; the filesystem broker drops it.
        fresh = worker_options(settings, tmp_path / "fresh.log", "fresh")
        fresh["env"] = {**fresh["env"], "CELERY_VISIBILITY_TIMEOUT": "3"}
        with running_worker(**fresh):

            def taken_over(j: ImportJob) -> bool:
                if j.status == JobStatus.RUNNING and j.worker_host.startswith("killed@"):
                    sweep_jobs()  # beat's sweep: re-queues the silent job once
                return j.is_final

            job = wait_for_import(job, taken_over)
    broker_reset(settings.CELERY_BROKER_URL, settings.TEST_BROKER_DIR)

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert job.attempt == 2 and job.worker_host.startswith("fresh@")
    assert [r["repo_id"] for r in job.results] == [f"lorahub/{name}" for name in names]
    assert {r["status"] for r in job.results} == {"imported"}
    assert sorted(Module.objects.filter(owner=other_user).values_list("name", flat=True)) == sorted(
        names
    )
    assert [e["event"] for e in job.events][:3] == ["queued", "started", "requeued"]
    assert job.events[-1]["event"] == "succeeded"


def worker_options(settings, log, name: str) -> dict:
    return {
        "broker_url": settings.CELERY_BROKER_URL,
        "broker_dir": settings.TEST_BROKER_DIR,
        "queues": "default",
        "log": log,
        "hostname": f"{name}@%h",
        "env": {"HF_HUB_OFFLINE": "0"},
    }


def wait_for_import(job: ImportJob, done, timeout: float = 240) -> ImportJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if done(job):
            return job
        time.sleep(0.1)
    pytest.fail(f"import {job.status}, step {job.current_step}, {job.error_message!r}")
