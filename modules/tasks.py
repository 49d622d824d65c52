"""Celery tasks of the registry: thin wrappers that call services with plain ids."""

from celery import shared_task

from modules import hub_import_jobs


# On the "default" queue: downloads and validation, no accelerator. Acknowledged
# late, so a job whose worker died is delivered again and resumes where it stopped.
@shared_task(bind=True, acks_late=True)
def run_hub_import(self, job_id: int, attempt: int) -> None:
    hub_import_jobs.import_job_run(
        job_id=job_id, attempt=attempt, worker_host=self.request.hostname or ""
    )
