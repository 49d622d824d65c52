"""Composition jobs: submission rules, running in a worker, redelivery, the sweep."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from composition import results, services
from composition.models import CompositionJob, JobStatus
from composition.services import JobLimitExceeded, JobStateError
from hubsite import job_runs
from modules.models import Module, ModuleSource

pytestmark = pytest.mark.django_db


def run(job: CompositionJob) -> CompositionJob:
    """What the Celery task does, called directly (the worker path has its own test)."""
    results.composition_run(job_id=job.pk, attempt=job.attempt, worker_host="test@host")
    job.refresh_from_db()
    return job


def test_a_submitted_job_runs_and_stores_a_private_module_with_lineage(user, submission):
    job = services.composition_submit(owner=user, submission=submission(name="mixed"))
    assert job.status == JobStatus.QUEUED

    job = run(job)

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert job.current_step == 4 and len(job.loss_history) == 4
    assert job.best_loss == min(job.loss_history)
    module = job.result_module
    assert (module.owner, module.name, module.visibility) == (
        user,
        "mixed",
        Module.Visibility.PRIVATE,
    )
    weights = {c.module_name: c.weight for c in job.candidates.all()}
    lineage = {s.source.full_name: s.weight for s in ModuleSource.objects.filter(composed=module)}
    assert lineage == weights and len(weights) == 3
    assert "lorahub/skill-0" in module.card and "## Sources" in module.card
    assert len(job.predictions) == 2
    assert {"output", "zero_shot_output", "correct", "zero_shot_correct"} <= set(job.predictions[0])
    assert job.zero_shot_accuracy is not None and job.accuracy is not None
    assert job.worker_host == "test@host" and job.device == "cpu"


def test_preselect_composes_the_best_k_and_records_every_candidates_loss(
    user, submission, tiny_modules
):
    job = services.composition_submit(
        owner=user, submission=submission(modules=tiny_modules, preselect=2)
    )

    job = run(job)

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert job.scored_candidates == 4 and job.current_step == 4
    assert job.select_seconds > 0
    candidates = list(job.candidates.all())
    assert all(c.solo_loss is not None for c in candidates)
    by_loss = sorted(candidates, key=lambda c: c.solo_loss)
    assert [c.selected for c in by_loss] == [True, True, False, False]
    assert [c.weight for c in by_loss[2:]] == [0.0, 0.0]
    sources = ModuleSource.objects.filter(composed=job.result_module)
    assert {s.source.full_name: s.weight for s in sources} == {
        c.module_name: c.weight for c in by_loss[:2]
    }
    assert "the 2 of 4 candidates with the lowest loss alone" in job.result_module.card


@pytest.mark.parametrize(("preselect", "message"), [(1, "at least 2"), (3, "fewer than the 3")])
def test_preselect_must_keep_between_two_and_fewer_than_the_candidates(
    user, submission, preselect, message
):
    with pytest.raises(ValidationError) as caught:
        services.composition_submit(owner=user, submission=submission(preselect=preselect))

    assert any(message in m for m in caught.value.message_dict["preselect"])
    assert not CompositionJob.objects.exists()


def test_a_finished_job_delivered_again_is_left_alone(user, submission):
    job = run(services.composition_submit(owner=user, submission=submission()))
    finished_at = job.finished_at

    job = run(job)

    assert (job.status, job.finished_at) == (JobStatus.SUCCEEDED, finished_at)
    assert Module.objects.filter(owner=user).count() == 1


def test_a_job_found_running_is_restarted_cleanly(user, submission):
    job = services.composition_submit(owner=user, submission=submission())
    # As if a worker died at step 2: the row says running, the message comes back.
    CompositionJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, current_step=2, loss_history=[9.0, 9.0], worker_host="dead@host"
    )

    job = run(job)

    assert job.status == JobStatus.SUCCEEDED
    assert len(job.loss_history) == 4 and 9.0 not in job.loss_history
    assert Module.objects.filter(owner=user).count() == 1


def test_a_superseded_attempt_does_not_run(user, submission):
    job = services.composition_submit(owner=user, submission=submission())
    CompositionJob.objects.filter(pk=job.pk).update(attempt=2)

    results.composition_run(job_id=job.pk, attempt=1, worker_host="late@host")

    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED


def test_cancelling_a_queued_job_is_immediate_and_the_worker_skips_it(user, submission):
    job = services.composition_submit(owner=user, submission=submission())

    services.composition_cancel(job=job)
    job = run(job)

    assert job.status == JobStatus.CANCELLED
    assert job.result_module is None
    with pytest.raises(JobStateError, match="already cancelled"):
        services.composition_cancel(job=job)


def test_a_running_job_asked_to_cancel_stops(user, submission, monkeypatch):
    monkeypatch.setattr(job_runs, "PROGRESS_INTERVAL_SECONDS", 0.0)
    job = services.composition_submit(owner=user, submission=submission(steps=50))
    original_step = results.ProgressReporter.step

    def cancel_after_two(self, report):
        original_step(self, report)
        if report.step == 2:
            CompositionJob.objects.filter(pk=job.pk).update(cancel_requested=True)

    monkeypatch.setattr(results.ProgressReporter, "step", cancel_after_two)
    job = run(job)

    assert job.status == JobStatus.CANCELLED
    assert 2 <= job.current_step < 50


def test_too_many_active_jobs_are_refused(user, submission, settings):
    settings.HUB_MAX_ACTIVE_JOBS = 2
    for _ in range(2):
        services.composition_submit(owner=user, submission=submission())

    with pytest.raises(JobLimitExceeded, match="already have 2 queued or running"):
        services.composition_submit(owner=user, submission=submission())


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"examples": []}, "examples", "at least one example"),
        ({"steps": 0}, "steps", "Use a value from 1 to 1000."),
        ({"optimizer": "Magic"}, "optimizer", "unknown optimiser 'Magic'"),
        ({"bound": 0}, "bound", "Use a value from 0.01 to 10."),
    ],
)
def test_bad_settings_are_field_errors(user, submission, overrides, field, message):
    with pytest.raises(ValidationError) as caught:
        services.composition_submit(owner=user, submission=submission(**overrides))

    assert any(message in m for m in caught.value.message_dict[field])
    assert not CompositionJob.objects.exists()


def test_too_long_or_too_many_examples_are_refused(user, submission, settings):
    settings.HUB_MAX_EXAMPLES = 2
    settings.HUB_MAX_EXAMPLE_CHARS = 20

    with pytest.raises(ValidationError) as caught:
        services.composition_submit(owner=user, submission=submission())

    errors = caught.value.message_dict["examples"]
    assert "at most 2 examples (3 given)" in errors
    assert "example 1 is longer than 20 characters" in errors


def test_modules_of_another_base_model_are_refused(user, submission, tiny_modules, base_model):
    Module.objects.filter(pk=tiny_modules[1].pk).update(base_model=base_model)
    tiny_modules[1].refresh_from_db()

    with pytest.raises(ValidationError) as caught:
        services.composition_submit(owner=user, submission=submission(modules=tiny_modules[:2]))

    assert caught.value.message_dict["modules"] == [
        "lorahub/skill-1 adapts acme/tiny-llama, not tiny/llama"
    ]


def test_one_module_is_not_enough(user, submission, tiny_modules):
    with pytest.raises(ValidationError, match="choose at least 2 modules"):
        services.composition_submit(owner=user, submission=submission(modules=tiny_modules[:1]))


def test_the_hub_picks_k_at_random_reproducibly(user, submission):
    first = services.composition_submit(
        owner=user, submission=submission(modules=[], pick=2, pick_method="random", seed=7)
    )
    again = services.composition_submit(
        owner=user, submission=submission(modules=[], pick=2, pick_method="random", seed=7)
    )

    names = [c.module_name for c in first.candidates.all()]
    assert len(names) == 2 and first.picked_at_random
    assert names == [c.module_name for c in again.candidates.all()]


def test_picking_with_fewer_than_two_compatible_modules_says_so(user, submission):
    # Other people's private modules are not candidates.
    Module.objects.update(visibility=Module.Visibility.PRIVATE)

    with pytest.raises(
        ValidationError, match="fewer than 2 compatible modules exist for tiny/llama"
    ):
        services.composition_submit(owner=user, submission=submission(modules=[], pick=5))


def test_the_sweep_requeues_a_silent_job_once_then_fails_it(user, submission, settings):
    settings.HUB_JOB_STALE_SECONDS = 60
    job = services.composition_submit(owner=user, submission=submission())
    long_ago = timezone.now() - timedelta(minutes=5)
    CompositionJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, heartbeat_at=long_ago, worker_host="gone@host", current_step=1
    )

    assert job_runs.sweep()["CompositionJob"] == (1, 0)
    job.refresh_from_db()
    assert (job.status, job.attempt) == (JobStatus.QUEUED, 2)

    CompositionJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, heartbeat_at=long_ago)
    assert job_runs.sweep()["CompositionJob"] == (0, 1)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "gone@host" in job.error_message and "stopped responding" in job.error_message


def test_the_sweep_leaves_jobs_with_a_fresh_heartbeat(user, submission):
    job = services.composition_submit(owner=user, submission=submission())
    CompositionJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, heartbeat_at=timezone.now()
    )

    assert job_runs.sweep()["CompositionJob"] == (0, 0)


def test_publishing_makes_the_result_public(user, submission, tiny_modules):
    Module.objects.filter(pk__in=[m.pk for m in tiny_modules]).update(license="mit")
    job = run(services.composition_submit(owner=user, submission=submission()))

    module = services.composition_publish(job=job)

    assert module.visibility == Module.Visibility.PUBLIC


def test_every_offered_optimiser_exists_in_nevergrad():
    import nevergrad as ng

    from composition.engine.types import OPTIMIZERS
    from composition.forms import CompositionForm

    assert set(OPTIMIZERS) <= set(ng.optimizers.registry)
    offered = {value for value, _ in CompositionForm.base_fields["optimizer"].choices}
    assert offered <= set(OPTIMIZERS)


@pytest.mark.slow
def test_web_processes_do_not_load_the_engine_libraries():
    import subprocess
    import sys

    from django.conf import settings

    code = (
        "import sys, django; django.setup(); import hubsite.urls, composition.api, modules.api\n"
        "heavy = [m for m in ('torch', 'nevergrad', 'transformers', 'peft') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env={"DJANGO_SETTINGS_MODULE": "hubsite.settings", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
