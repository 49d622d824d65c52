"""Training jobs: what a request must satisfy, the run in a worker, cancel, the sweep."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from composition.engine.types import Example
from composition.models import JobStatus, TrainingJob
from composition.training import services
from composition.training.services import JobLimitExceeded, JobStateError
from hubsite import job_runs
from modules.models import Module

pytestmark = pytest.mark.django_db


def run(job: TrainingJob) -> TrainingJob:
    """What the Celery task does, called directly (the worker path has its own test)."""
    services.training_run(job_id=job.pk, attempt=job.attempt, worker_host="test@host")
    job.refresh_from_db()
    return job


def field_errors(submit) -> dict:
    with pytest.raises(ValidationError) as raised:
        submit()
    return raised.value.message_dict


def test_a_submitted_job_trains_and_registers_a_private_module(user, training_submission):
    job = services.training_submit(owner=user, submission=training_submission(steps=4))
    assert (job.status, job.target_modules) == (JobStatus.QUEUED, ["q_proj", "v_proj"])

    job = run(job)

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert job.current_step == 4 and len(job.loss_history) == 4
    tail = job.loss_history[-10:]
    assert job.final_loss == pytest.approx(sum(tail) / len(tail))
    assert job.worker_host == "test@host" and job.device == "cpu" and job.train_seconds > 0
    module = job.result_module
    assert (module.owner, module.name, module.visibility) == (
        user,
        "tiny-skill",
        Module.Visibility.PRIVATE,
    )
    assert (module.r, module.lora_alpha) == (4, 8)
    assert "three test examples (3 examples; 4 steps × batch 2" in module.card
    assert f"{job.final_loss:.4f}" in module.card


def test_public_requests_give_public_modules(user, training_submission):
    job = run(services.training_submit(owner=user, submission=training_submission(public=True)))

    assert job.result_module.is_public


def test_a_job_found_running_is_restarted_cleanly(user, training_submission):
    job = services.training_submit(owner=user, submission=training_submission())
    TrainingJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, current_step=2, loss_history=[99.0, 99.0]
    )

    job = run(job)

    assert job.status == JobStatus.SUCCEEDED
    assert len(job.loss_history) == 3 and 99.0 not in job.loss_history
    assert Module.objects.filter(owner=user).count() == 1


def test_finished_and_superseded_deliveries_do_nothing(user, training_submission):
    done = run(services.training_submit(owner=user, submission=training_submission()))
    finished_at = done.finished_at
    assert run(done).finished_at == finished_at

    job = services.training_submit(owner=user, submission=training_submission(name="other"))
    TrainingJob.objects.filter(pk=job.pk).update(attempt=2)
    services.training_run(job_id=job.pk, attempt=1, worker_host="late@host")
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert Module.objects.filter(owner=user).count() == 1


def test_identical_requests_link_the_module_already_trained(user, training_submission):
    first = run(services.training_submit(owner=user, submission=training_submission(name="a")))
    second = run(services.training_submit(owner=user, submission=training_submission(name="b")))

    assert second.status == JobStatus.SUCCEEDED
    assert second.result_module == first.result_module
    assert "already registered as ada/a" in second.error_message


def test_a_name_taken_while_the_job_ran_fails_it_cleanly(user, training_submission, module):
    job = services.training_submit(owner=user, submission=training_submission(name="late"))
    Module.objects.filter(pk=module.pk).update(name="late")

    job = run(job)

    assert job.status == JobStatus.FAILED
    assert "already have a module named ada/late" in job.error_message
    assert job.result_module is None and Module.objects.filter(owner=user).count() == 1


def test_cancelling_a_queued_job_is_immediate_and_the_worker_skips_it(user, training_submission):
    job = services.training_submit(owner=user, submission=training_submission())

    services.training_cancel(job=job)
    job = run(job)

    assert job.status == JobStatus.CANCELLED and job.result_module is None
    with pytest.raises(JobStateError, match="already cancelled"):
        services.training_cancel(job=job)


def test_a_running_job_asked_to_cancel_stops(user, training_submission, monkeypatch):
    monkeypatch.setattr(job_runs, "PROGRESS_INTERVAL_SECONDS", 0.0)
    job = services.training_submit(owner=user, submission=training_submission(steps=200))
    original_step = services.TrainingProgress.step

    def cancel_after_two(self, report):
        original_step(self, report)
        if report.step == 2:
            services.training_cancel(job=job)

    monkeypatch.setattr(services.TrainingProgress, "step", cancel_after_two)
    job = run(job)

    assert job.status == JobStatus.CANCELLED
    assert 2 <= job.current_step < 200 and job.result_module is None
    assert not Module.objects.filter(owner=user).exists()


def test_a_failing_engine_fails_the_job_with_its_message(user, training_submission, monkeypatch):
    from composition.engine.types import EngineError

    def broken(**kwargs):
        raise EngineError("the base model's weights are unreadable")

    monkeypatch.setattr(services, "training_train", broken)
    job = run(services.training_submit(owner=user, submission=training_submission()))

    assert job.status == JobStatus.FAILED
    assert job.error_message == "the base model's weights are unreadable"


def test_too_many_active_trainings_are_refused(user, training_submission, settings):
    settings.HUB_MAX_ACTIVE_JOBS = 2
    for name in ("one", "two"):
        services.training_submit(owner=user, submission=training_submission(name=name))

    with pytest.raises(JobLimitExceeded, match="already have 2 queued or running trainings"):
        services.training_submit(owner=user, submission=training_submission(name="three"))


def test_a_name_in_use_by_an_active_job_or_a_module_is_refused(user, training_submission, module):
    services.training_submit(owner=user, submission=training_submission(name="busy"))

    busy = field_errors(
        lambda: services.training_submit(owner=user, submission=training_submission(name="BUSY"))
    )
    taken = field_errors(
        lambda: services.training_submit(
            owner=user, submission=training_submission(name="tiny-adapter")
        )
    )

    assert busy == {"name": ["A training job of yours is already making this name."]}
    assert taken == {"name": ["You already have a module named ada/tiny-adapter."]}


def test_example_limits(user, training_submission, settings):
    settings.HUB_MAX_TRAINING_EXAMPLES = 2
    settings.HUB_MAX_EXAMPLE_CHARS = 20
    examples = [Example("short", "a"), Example("x" * 30, "b"), Example("y" * 30, "c")]

    errors = field_errors(
        lambda: services.training_check(
            owner=user, submission=training_submission(examples=examples)
        )
    )["examples"]

    assert errors == [
        "at most 2 examples (3 given)",
        "examples longer than 20 characters (input + target): 2, 3",
    ]
    # The command line (limits=False) is not capped.
    services.training_check(
        owner=user, submission=training_submission(examples=examples), limits=False
    )


def test_every_setting_is_checked(user, training_submission):
    bad = training_submission(
        name="",
        examples=[],
        rank=0,
        alpha=5000,
        steps=0,
        batch_size=0,
        warmup_steps=-1,
        max_length=2,
        seed=-1,
        dropout=1.5,
        learning_rate=0,
        target_modules=["not_a_layer"],
    )

    errors = field_errors(lambda: services.training_check(owner=user, submission=bad))

    assert set(errors) == {
        "name", "examples", "rank", "alpha", "steps", "batch_size", "warmup_steps",
        "max_length", "seed", "dropout", "learning_rate", "target_modules",
    }  # fmt: skip
    assert errors["target_modules"] == [
        "tiny/llama has no layers named not_a_layer; choose among "
        + ", ".join(sorted(training_submission().base_model.linear_shapes))
    ]
    assert not TrainingJob.objects.exists()


def test_warmup_may_not_exceed_the_steps(user, training_submission):
    errors = field_errors(
        lambda: services.training_check(
            owner=user, submission=training_submission(steps=5, warmup_steps=6)
        )
    )
    assert errors == {"warmup_steps": ["must not be more than the steps"]}


def test_seq2seq_families_default_to_their_own_projections(user, training_submission, tiny_base):
    tiny_base.family = "t5"
    tiny_base.linear_shapes = {"q": [[8, 8]], "v": [[8, 8]], "o": [[8, 8]]}

    targets = services.training_check(owner=user, submission=training_submission())

    assert targets == ("q", "v")


def test_stale_jobs_are_requeued_once_then_failed(user, training_submission, settings):
    settings.HUB_JOB_STALE_SECONDS = 60
    job = services.training_submit(owner=user, submission=training_submission())
    long_ago = timezone.now() - timedelta(seconds=120)
    TrainingJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, heartbeat_at=long_ago, worker_host="gone@host", current_step=2
    )

    assert job_runs.sweep()["TrainingJob"] == (1, 0)
    job.refresh_from_db()
    assert (job.status, job.attempt) == (JobStatus.QUEUED, 2)
    assert job.error_message.startswith("the worker (gone@host) stopped responding")
    assert job.error_message.endswith("at step 2 of 3; re-queued once")

    TrainingJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, heartbeat_at=long_ago)
    assert job_runs.sweep()["TrainingJob"] == (0, 1)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "stopped responding" in job.error_message
    # The re-queue stays on record after the job failed.
    assert [(e["event"], e["attempt"]) for e in job.events] == [
        ("queued", 1),
        ("requeued", 2),
        ("failed", 2),
    ]

    fresh = services.training_submit(owner=user, submission=training_submission(name="fresh"))
    TrainingJob.objects.filter(pk=fresh.pk).update(
        status=JobStatus.RUNNING, heartbeat_at=timezone.now()
    )
    assert job_runs.sweep()["TrainingJob"] == (0, 0)


def test_the_periodic_sweep_covers_training_jobs(user, training_submission, settings):
    from hubsite.tasks import sweep_jobs

    settings.HUB_JOB_STALE_SECONDS = 60
    job = services.training_submit(owner=user, submission=training_submission())
    TrainingJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, heartbeat_at=timezone.now() - timedelta(seconds=120)
    )

    sweep_jobs()

    job.refresh_from_db()
    assert (job.status, job.attempt) == (JobStatus.QUEUED, 2)


def test_a_base_model_without_the_family_defaults_asks_for_targets(
    user, training_submission, tiny_base
):
    tiny_base.linear_shapes = {"c_attn": [[8, 24]]}

    errors = field_errors(
        lambda: services.training_check(owner=user, submission=training_submission())
    )

    assert errors == {
        "target_modules": [
            "tiny/llama lacks the llama family's usual targets (q_proj, v_proj); "
            "name the layers to adapt (choose among c_attn)"
        ]
    }
