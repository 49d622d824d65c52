"""The merge setting and the composable flag, through services, API, form and pages."""

import json
import shutil

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from composition import results, services
from composition.engine.synthetic import build_loras
from composition.models import CompositionJob, JobStatus
from tests.composition.conftest import SHOTS, TINY_ID, examples_jsonl

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="session")
def rslora_rank8_dir(tiny_model_dir, tmp_path_factory):
    """A module no LoraHub merge can average with the rank-4 ones: rank 8, rslora."""
    [folder] = build_loras(
        tiny_model_dir, [tmp_path_factory.mktemp("rank8") / "m"], seeds=[7],
        task_type="CAUSAL_LM", targets=("q_proj", "v_proj"), base_id=TINY_ID, std=0.05,
        rank=8, alpha=8, options={"use_rslora": True},
    )  # fmt: skip
    return folder


def register(owner, base, folder, name, **config_changes):
    from modules.services import module_create

    config = json.loads((folder / "adapter_config.json").read_text())
    edited = folder.parent / f"{name}-config"
    edited.mkdir(exist_ok=True)
    (edited / "adapter_config.json").write_text(json.dumps({**config, **config_changes}))
    shutil.copy(folder / "adapter_model.safetensors", edited)
    return module_create(
        owner=owner,
        name=name,
        files={f.name: f for f in edited.iterdir()},
        base_model=base,
    )


@pytest.fixture
def rank8(user, tiny_base, tiny_modules, rslora_rank8_dir):
    return register(user, tiny_base, rslora_rank8_dir, "rank8-rslora")


@pytest.fixture
def saves_head(user, tiny_base, tiny_adapter_dirs):
    return register(
        user, tiny_base, tiny_adapter_dirs[3], "saves-head", modules_to_save=["lm_head"]
    )


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def run(job: CompositionJob) -> CompositionJob:
    results.composition_run(job_id=job.pk, attempt=job.attempt, worker_host="test@host")
    job.refresh_from_db()
    return job


def test_upload_decides_composable_and_the_page_and_api_say_why_not(client, api, saves_head, rank8):
    assert (rank8.composable, rank8.composable_reason) == (True, "")
    assert not saves_head.composable
    assert saves_head.composable_reason.startswith("modules_to_save is set")

    body = api.get("/api/v1/modules/ada/saves-head/").json()
    page = client.get(saves_head.get_absolute_url()).content.decode()

    assert body["composable"] is False and body["composable_reason"].startswith("modules_to_save")
    assert "no: modules_to_save is set" in page


def test_modules_that_cannot_be_composed_are_never_candidates(
    user, submission, saves_head, tiny_base
):
    offered = services.compatible_modules(owner=user, base_model=tiny_base)
    assert saves_head not in offered and offered.count() == 4

    with pytest.raises(ValidationError) as refused:
        services.composition_submit(
            owner=user, submission=submission(modules=[*submission().modules, saves_head])
        )

    [message] = refused.value.message_dict["modules"]
    assert message.startswith("ada/saves-head cannot be composed: modules_to_save is set")


def test_the_api_refuses_a_module_that_cannot_be_composed_by_name(api, saves_head, tiny_modules):
    response = api.post(
        "/api/v1/compositions/",
        {
            "base_model": TINY_ID,
            "modules": ["lorahub/skill-0", "ada/saves-head"],
            "examples": [{"input": e.input, "target": e.target} for e in SHOTS],
        },
        format="json",
    )

    assert response.status_code == 400
    assert "ada/saves-head cannot be composed" in response.json()["modules"][0]


def test_lorahub_merge_refuses_mixed_ranks_up_front_and_names_the_exact_merge(
    user, submission, rank8, tiny_modules
):
    with pytest.raises(ValidationError) as refused:
        services.composition_submit(
            owner=user, submission=submission(modules=[tiny_modules[0], rank8])
        )

    messages = refused.value.message_dict["modules"]
    assert "ada/rank8-rslora has rank 8, alpha 8, rslora" in messages[0]
    assert "lorahub/skill-0 has rank 4, alpha 8" in messages[0]
    assert 'merge "exact"' in messages[1]


def test_exact_merge_of_mixed_ranks_runs_and_stores_a_composable_module(
    client, user, submission, rank8, tiny_modules
):
    job = services.composition_submit(
        owner=user,
        submission=submission(modules=[tiny_modules[0], rank8], merge="exact", name="mixed"),
    )

    job = run(job)

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert job.merge == "exact"
    module = job.result_module
    assert (module.r, module.lora_alpha, module.composable) == (4 + 8, 12, True)
    assert "exact merge" in module.card
    client.force_login(user)
    page = client.get(job.get_absolute_url()).content.decode()
    assert "exact merge" in page and "<dt>Merge</dt><dd>exact</dd>" in page


def test_the_api_takes_the_merge_and_reports_it_in_the_settings(api, rank8, tiny_modules):
    payload = {
        "base_model": TINY_ID,
        "modules": ["lorahub/skill-0", "ada/rank8-rslora"],
        "examples": [{"input": e.input, "target": e.target} for e in SHOTS],
    }

    response = api.post("/api/v1/compositions/", {**payload, "merge": "exact"}, format="json")
    bad = api.post("/api/v1/compositions/", {**payload, "merge": "mean"}, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["settings"]["merge"] == "exact"
    assert bad.status_code == 400 and '"mean" is not a valid choice.' in bad.json()["merge"]


def test_picking_at_random_with_the_exact_merge_mixes_ranks(user, submission, rank8):
    exact = services._candidates(user, submission(pick=5, merge="exact"))
    lorahub = services._candidates(user, submission(pick=5))

    assert rank8 in exact and len(exact) == 5
    # The LoraHub merge picks among the largest group of one shape: the rank-4 ones.
    assert rank8 not in lorahub and len(lorahub) == 4


def test_the_form_offers_the_merge_and_only_composable_modules(
    client, user, saves_head, rank8, tiny_modules, tiny_base
):
    client.force_login(user)
    page = client.get(f"/compose/?base_model={tiny_base.pk}").content.decode()
    assert 'name="merge"' in page and "saves-head" not in page and "rank8-rslora" in page

    response = client.post(
        "/compose/",
        {
            "base_model": tiny_base.pk,
            "selection": "choose",
            "modules": [tiny_modules[0].pk, rank8.pk],
            "examples_format": "jsonl",
            "examples": examples_jsonl(SHOTS),
            "heldout_format": "jsonl",
            "steps": 2,
            "l1": 0.05,
            "bound": 1.5,
            "optimizer": "NGOpt",
            "population": 1,
            "seed": 0,
            "max_new_tokens": 4,
            "merge": "exact",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert CompositionJob.objects.get().merge == "exact"


def test_weight_groups_give_each_candidate_a_weight_per_group(api, user, submission):
    job = services.composition_submit(
        owner=user, submission=submission(weight_groups=2, name="grouped")
    )

    job = run(job)

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    for candidate in job.candidates.all():
        assert len(candidate.group_weights) == 2
        assert candidate.weight == pytest.approx(sum(candidate.group_weights) / 2)
    assert "2 weights per module" in job.result_module.card
    body = api.get(f"/api/v1/compositions/{job.pk}/").json()
    assert body["settings"]["weight_groups"] == 2
    assert all(len(c["group_weights"]) == 2 for c in body["candidates"])


@pytest.mark.parametrize("groups", [0, 65])
def test_weight_groups_out_of_range_are_a_field_error(api, tiny_modules, groups):
    response = api.post(
        "/api/v1/compositions/",
        {
            "base_model": TINY_ID,
            "modules": ["lorahub/skill-0", "lorahub/skill-1"],
            "examples": [{"input": e.input, "target": e.target} for e in SHOTS],
            "weight_groups": groups,
        },
        format="json",
    )

    assert response.status_code == 400 and "weight_groups" in response.json()
