"""Jobs that choose their modules by retrieval, or their strategy by validation on the examples."""

import pytest
from django.core.exceptions import ValidationError

from composition import services
from composition.engine.fingerprints import Fingerprint
from composition.models import JobStatus
from modules.models import ModuleFingerprint
from tests.composition.test_services import run

pytestmark = pytest.mark.django_db


def test_every_registered_module_gets_a_fingerprint_of_its_weights(tiny_modules):
    for module in tiny_modules:
        stored = ModuleFingerprint.objects.get(module=module)
        fingerprint = Fingerprint.from_bytes(bytes(stored.data))
        assert [path for path, _ in fingerprint.layers] == sorted(
            f"model.layers.{i}.self_attn.{p}" for i in range(2) for p in ("q_proj", "v_proj")
        )
        weights = module.files.get(filename="adapter_model.safetensors")
        assert stored.weights_sha256 == weights.sha256


def test_picking_by_retrieval_ranks_every_compatible_module_and_composes_the_best_k(
    user, submission, tiny_modules
):
    job = services.composition_submit(
        owner=user, submission=submission(modules=[], pick=2, pick_method="retrieval")
    )
    assert job.preselect == 2 and job.preselect_method == "retrieval"
    assert not job.picked_at_random and job.candidates.count() == len(tiny_modules)

    job = run(job)

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert job.scored_candidates == 4 and job.select_seconds > 0
    candidates = sorted(job.candidates.all(), key=lambda c: -c.retrieval_score)
    assert [c.selected for c in candidates] == [True, True, False, False]
    assert all(c.solo_loss is None for c in candidates)
    assert "most relevant to the examples by fingerprint" in job.result_module.card


def test_picking_by_default_ranks_every_compatible_module_by_its_loss_alone(
    user, submission, tiny_modules
):
    job = services.composition_submit(owner=user, submission=submission(modules=[], pick=3))
    assert (job.preselect, job.preselect_method) == (3, "loss")

    job = run(job)

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    candidates = sorted(job.candidates.all(), key=lambda c: c.solo_loss)
    assert len(candidates) == len(tiny_modules)
    assert [c.selected for c in candidates] == [True, True, True, False]


def test_modules_registered_before_fingerprints_get_one_when_first_ranked(
    user, submission, tiny_modules
):
    ModuleFingerprint.objects.all().delete()
    job = services.composition_submit(
        owner=user,
        submission=submission(modules=tiny_modules, preselect=3, preselect_method="retrieval"),
    )

    job = run(job)

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    fingerprinted = ModuleFingerprint.objects.filter(module__in=tiny_modules).count()
    assert fingerprinted == len(tiny_modules)
    # The composed module is registered with its own.
    assert ModuleFingerprint.objects.filter(module=job.result_module).exists()
    assert sum(c.selected for c in job.candidates.all()) == 3


def test_picking_by_loss_is_refused_beyond_its_pool_limit(user, submission, settings):
    settings.HUB_MAX_PICK_POOL = {"retrieval": 100, "loss": 3}

    with pytest.raises(ValidationError) as caught:
        services.composition_submit(
            owner=user, submission=submission(modules=[], pick=2, pick_method="loss")
        )

    [message] = caught.value.message_dict["pick_method"]
    assert "ranking by loss considers at most 3 modules and 4 are compatible" in message
    assert "rank by retrieval instead" in message


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"strategy": "best"}, "strategy", "unknown value 'best'"),
        ({"preselect_method": "oracle"}, "preselect_method", "unknown value 'oracle'"),
        ({"pick_method": "vibes", "modules": [], "pick": 2}, "pick_method", "unknown value"),
        ({"validation_folds": 1}, "validation_folds", "from 2 to 20"),
        ({"early_stop": 0}, "early_stop", "from 1 to 1000"),
    ],
)
def test_bad_selection_settings_are_field_errors(user, submission, overrides, field, message):
    with pytest.raises(ValidationError) as caught:
        services.composition_submit(owner=user, submission=submission(**overrides))

    assert any(message in m for m in caught.value.message_dict[field])


def test_auto_stores_every_strategys_validation_loss_and_why_one_was_chosen(user, submission):
    job = services.composition_submit(
        owner=user, submission=submission(strategy="auto", validation_folds=3, steps=6)
    )

    job = run(job)

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    scores = job.strategy_scores
    assert set(scores) == {"compose", "best_single", "uniform", "base"}
    assert job.chosen_strategy == min(scores, key=scores.get)
    assert "leave-one-out validation loss on the 3 examples" in job.strategy_reason
    assert job.validate_seconds > 0
    weights = [c.weight for c in job.candidates.order_by("position")]
    if job.chosen_strategy == "uniform":
        assert weights == pytest.approx([1 / 3] * 3)
    if job.chosen_strategy == "base":
        assert weights == [0.0, 0.0, 0.0]


def test_early_stop_is_stored_and_can_end_the_search(user, submission):
    job = services.composition_submit(
        owner=user,
        submission=submission(steps=40, early_stop=2, optimizer="RandomSearch"),
    )

    job = run(job)

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert job.early_stop == 2
    assert 2 <= len(job.loss_history) < 40
