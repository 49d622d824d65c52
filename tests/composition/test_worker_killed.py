"""A worker killed in the middle of a composition: the job ends, it never stays "running".

The worker tests start real worker processes on the test broker and end them with
SIGKILL, pool processes included, as a machine losing power or the kernel's
out-of-memory killer would: no handler runs, the task stays unacknowledged. What
happens next depends on the broker. The filesystem broker dropped the message when
the worker took it; Redis hands it to another worker once its visibility timeout
has passed. Either way the sweep that beat runs every minute re-queues a silent job
once and fails it the next time, and whichever comes first, the job ends exactly
once.
"""

import contextlib
import os
import signal
import time

import pytest
from django.conf import settings
from django.utils import timezone

from composition import results, services
from composition.models import CompositionJob, JobStatus
from hubsite import job_runs
from hubsite.tasks import sweep_jobs
from modules.models import Module, ModuleSource
from tests.workers import (
    broker_connection,
    broker_reset,
    kill_worker,
    pool_processes,
    running_worker,
)

# Many cheap steps on the tiny model: a few seconds of optimisation, so the job is
# still running when the test kills its worker, and a restart still finishes soon.
STEPS = 800
# Seconds of silence after which the test's sweep counts a job as stale.
STALE_SECONDS = 3
TIMEOUT = 180


@pytest.fixture
def broker():
    broker_reset(settings.CELERY_BROKER_URL, settings.TEST_BROKER_DIR)
    yield
    broker_reset(settings.CELERY_BROKER_URL, settings.TEST_BROKER_DIR)


@pytest.fixture
def start_worker(broker, tmp_path):
    """start_worker("name") starts a worker called name@host; all are stopped at the end."""
    logs, processes = [], []
    with contextlib.ExitStack() as stack:

        def start(name: str, **env: str):
            log = tmp_path / f"worker-{name}.log"
            logs.append(log)
            process = stack.enter_context(
                running_worker(
                    broker_url=settings.CELERY_BROKER_URL,
                    broker_dir=settings.TEST_BROKER_DIR,
                    queues="gpu",
                    log=log,
                    hostname=f"{name}@%h",
                    # One thread is the fastest for the tiny model, and the quietest.
                    env={"OMP_NUM_THREADS": "1", **env},
                )
            )
            processes.append(process)
            return process

        start.logs = logs
        yield start
        # Nothing left to finish: a warm shutdown would only cost seconds.
        for process in processes:
            if process.poll() is None:
                kill_worker(process)


@pytest.fixture
def stale_after(settings):
    settings.HUB_JOB_STALE_SECONDS = STALE_SECONDS


def submit(user, submission, **changes) -> CompositionJob:
    # RandomSearch: its steps cost next to nothing beyond the model's forward pass.
    values = {"name": "survivor", "steps": STEPS, "optimizer": "RandomSearch", **changes}
    return services.composition_submit(owner=user, submission=submission(**values))


def wait_until(job: CompositionJob, done, logs, what: str, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if done(job):
            return job
        time.sleep(0.1)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs)
    pytest.fail(
        f"{what}: job still {job.status} (attempt {job.attempt}, step {job.current_step}, "
        f"worker {job.worker_host!r}, error {job.error_message!r})\n{tails}"
    )


def running_on(host: str):
    """The job runs on that worker and has reported a step: a heartbeat from its engine."""

    def done(job: CompositionJob) -> bool:
        if job.is_final:
            pytest.fail(f"the job ended ({job.status}) before the worker could be killed")
        return (
            job.status == JobStatus.RUNNING
            and job.worker_host.startswith(f"{host}@")
            and job.current_step >= 1
            and job.heartbeat_at is not None
        )

    return done


def assert_finished_once(job: CompositionJob, user) -> None:
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    # Started over from the first step, not continued on top of the dead run's losses.
    assert job.current_step == STEPS and len(job.loss_history) == STEPS
    assert CompositionJob.objects.count() == 1
    assert job.candidates.count() == 3
    module = job.result_module
    assert Module.objects.filter(owner=user).count() == 1
    assert module.full_name == f"{user.username}/survivor"
    assert ModuleSource.objects.filter(composed=module).count() == 3
    # A copy of the task delivered late finds the job finished and leaves it alone.
    finished_at = job.finished_at
    time.sleep(1)
    job.refresh_from_db()
    assert (job.status, job.finished_at) == (JobStatus.SUCCEEDED, finished_at)
    assert Module.objects.filter(owner=user).count() == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_job_whose_worker_was_killed_finishes_on_a_fresh_worker(
    user, submission, start_worker, stale_after
):
    job = submit(user, submission)
    first = start_worker("killed")
    wait_until(job, running_on("killed"), start_worker.logs, "the first worker never ran it")

    kill_worker(first)
    # Redis hands the unacknowledged task to the fresh worker once this has passed.
    start_worker("fresh", CELERY_VISIBILITY_TIMEOUT=str(STALE_SECONDS))

    # Beat's sweep, until the fresh worker has the job: by the broker's redelivery
    # or by the sweep's re-queue, whichever comes first.
    def taken_over(job: CompositionJob) -> bool:
        if job.status == JobStatus.RUNNING and job.worker_host.startswith("killed@"):
            sweep_jobs()
            job.refresh_from_db()
        return job.status != JobStatus.RUNNING or job.worker_host.startswith("fresh@")

    job = wait_until(job, taken_over, start_worker.logs, "the job was not taken over")
    assert job.attempt == 2

    job = wait_until(job, lambda j: j.is_final, start_worker.logs, "the restart never ended")
    assert job.worker_host.startswith("fresh@")
    assert_finished_once(job, user)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_job_whose_worker_is_killed_twice_fails_with_the_reason(
    user, submission, start_worker, stale_after
):
    job = submit(user, submission)
    first = start_worker("killed")
    wait_until(job, running_on("killed"), start_worker.logs, "the first worker never ran it")

    kill_worker(first)
    job = wait_until(job, swept, start_worker.logs, "the sweep did not re-queue the job")
    assert (job.status, job.attempt) == (JobStatus.QUEUED, 2)
    assert "stopped responding" in job.error_message and "re-queued once" in job.error_message

    second = start_worker("killed-again")
    wait_until(job, running_on("killed-again"), start_worker.logs, "the re-queued job never ran")
    kill_worker(second)

    job = wait_until(job, swept, start_worker.logs, "the sweep did not fail the job")
    assert job.status == JobStatus.FAILED and job.finished_at is not None
    assert job.error_message.startswith("the worker (killed-again@")
    assert "stopped responding: no heartbeat since" in job.error_message
    assert f"of {STEPS}" in job.error_message
    assert job.result_module is None and not Module.objects.filter(owner=user).exists()


def swept(job: CompositionJob) -> bool:
    """Run beat's sweep once the job's heartbeat is stale; true once it moved the job."""
    if job.status == JobStatus.RUNNING:
        silent = (timezone.now() - job.heartbeat_at).total_seconds()
        if silent > STALE_SECONDS:
            sweep_jobs()
            job.refresh_from_db()
    return job.status != JobStatus.RUNNING


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_killed_pool_process_has_its_task_delivered_again(user, submission, start_worker):
    # The worker's main process survives and hands the unacknowledged task back to
    # the broker, which delivers it at once (acks_late, reject_on_worker_lost).
    job = submit(user, submission)
    worker = start_worker("pool")
    wait_until(job, running_on("pool"), start_worker.logs, "the worker never ran it")
    started_at = job.started_at

    for pid in pool_processes(worker):
        os.kill(pid, signal.SIGKILL)

    job = wait_until(job, lambda j: j.is_final, start_worker.logs, "the job never ended")
    assert job.started_at > started_at and job.attempt == 2
    assert_finished_once(job, user)


@pytest.mark.django_db(transaction=True)
def test_beat_sends_the_sweep_to_the_default_queue(broker):
    # The worker tests above run the sweep in the test process; this is the other
    # half: beat's scheduler sends it through the broker for a worker to run.
    from celery.beat import ScheduleEntry, Scheduler

    from hubsite.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["sweep-jobs"]
    scheduler = Scheduler(app=app, lazy=True)
    scheduler.apply_async(ScheduleEntry(name="sweep-jobs", app=app, **entry))

    with broker_connection(settings.CELERY_BROKER_URL, settings.TEST_BROKER_DIR) as conn:
        message = conn.SimpleQueue("default", no_ack=True).get(timeout=10)
    assert message.headers["task"] == "hubsite.tasks.sweep_jobs"


# --- The same rules, at the service level ---------------------------------------


def run(job: CompositionJob, attempt: int | None = None) -> CompositionJob:
    results.composition_run(job_id=job.pk, attempt=attempt or job.attempt, worker_host="next@host")
    job.refresh_from_db()
    return job


def died_running(job: CompositionJob, **changes) -> None:
    CompositionJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, worker_host="gone@host", current_step=3, **changes
    )


@pytest.mark.django_db
def test_a_task_delivered_again_restarts_the_job_as_its_second_attempt(user, submission):
    job = services.composition_submit(owner=user, submission=submission())
    died_running(job)

    job = run(job, attempt=1)

    assert (job.status, job.attempt, job.worker_host) == (JobStatus.SUCCEEDED, 2, "next@host")


@pytest.mark.django_db
def test_a_job_that_lost_its_worker_on_the_second_attempt_is_not_run_a_third_time(user, submission):
    job = services.composition_submit(owner=user, submission=submission())
    died_running(job, attempt=2)

    job = run(job, attempt=2)

    assert job.status == JobStatus.FAILED and job.finished_at is not None
    assert job.error_message == (
        "the worker (gone@host) stopped at step 3 of 4 on attempt 2 of 2; not started again"
    )
    assert not Module.objects.filter(owner=user).exists()


@pytest.mark.django_db
def test_a_copy_of_an_earlier_attempt_leaves_the_row_to_the_sweep(user, submission):
    job = services.composition_submit(owner=user, submission=submission())
    died_running(job, attempt=2)

    job = run(job, attempt=1)

    assert (job.status, job.attempt, job.worker_host) == (JobStatus.RUNNING, 2, "gone@host")


@pytest.mark.django_db
@pytest.mark.parametrize("sweep_outcome", [JobStatus.QUEUED, JobStatus.FAILED])
def test_a_run_the_sweep_gave_up_on_stops_and_writes_nothing(
    user, submission, monkeypatch, sweep_outcome
):
    # A worker that was only slow (a long download, a stalled disk) wakes up after
    # the sweep re-queued or failed its job: the row is no longer its to write.
    monkeypatch.setattr(job_runs, "PROGRESS_INTERVAL_SECONDS", 0.0)
    job = services.composition_submit(owner=user, submission=submission(steps=50))
    original_step = results.ProgressReporter.step

    def swept_at_step_two(self, report):
        original_step(self, report)
        if report.step == 2:
            CompositionJob.objects.filter(pk=job.pk).update(
                status=sweep_outcome, attempt=2, current_step=2, error_message="swept"
            )

    monkeypatch.setattr(results.ProgressReporter, "step", swept_at_step_two)
    job = run(job)

    assert (job.status, job.attempt, job.current_step) == (sweep_outcome, 2, 2)
    assert job.error_message == "swept" and job.finished_at is None
    assert not Module.objects.filter(owner=user).exists()
