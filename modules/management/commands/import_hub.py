import socket

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from hubsite.jobs import JobStatus
from modules.hub_import import FAILED, IMPORTED, RepoOutcome
from modules.hub_import_jobs import import_job_run, import_job_submit
from modules.models import Module


class Command(BaseCommand):
    help = (
        "Import LoRA modules from the Hugging Face Hub or any endpoint that speaks its "
        "protocol (HF_ENDPOINT by default), e.g. "
        "'import_hub --owner lorahub --author lorahub' for all of the LoraHub paper's modules."
    )

    def add_arguments(self, parser):
        parser.add_argument("repo_ids", nargs="*", metavar="REPO_ID", help="owner/name")
        parser.add_argument(
            "--author", default="", help="also import every repository of this user or org"
        )
        parser.add_argument(
            "--owner", required=True, help="username the imported modules belong to"
        )
        parser.add_argument(
            "--endpoint",
            default=settings.HUB_IMPORT_DEFAULT_ENDPOINT,
            help="Hub-compatible endpoint (default: %(default)s)",
        )
        parser.add_argument(
            "--token",
            default=None,
            help="token for the endpoint (default: HF_TOKEN or the huggingface_hub login)",
        )
        parser.add_argument(
            "--visibility", choices=Module.Visibility.values, default=Module.Visibility.PUBLIC
        )
        parser.add_argument(
            "--base-model",
            default="",
            help="registered base model to take every adapter for, instead of the one it "
            "names; the stored adapter_config.json is rewritten to name it",
        )
        parser.add_argument(
            "--background",
            action="store_true",
            help="queue the import for a worker instead of running it here",
        )

    def handle(self, *args, repo_ids, author, owner, endpoint, token, visibility, **options):
        user = get_user_model().objects.filter(username=owner).first()
        if user is None:
            raise CommandError(f"No user {owner!r}; create it first (createsuperuser or sign-up).")
        if options["background"] and token:
            raise CommandError("--token applies to imports run here only.")
        try:
            job = import_job_submit(
                owner=user,
                repo_ids=repo_ids,
                author=author,
                endpoint=endpoint,
                visibility=visibility,
                base_model=options["base_model"],
                any_endpoint=True,
                dispatch=options["background"],
            )
        except ValidationError as exc:
            problems = [f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()]
            raise CommandError("; ".join(problems)) from exc
        if options["background"]:
            self.stdout.write(f"Import #{job.pk} queued; follow it at {job.get_absolute_url()}")
            return

        self.stdout.write(f"Import #{job.pk} from {job.endpoint} as {owner} …")
        job = import_job_run(
            job_id=job.pk,
            worker_host=socket.gethostname(),
            token=token,
            on_result=self._report,
        )
        summary = (
            f"{job.imported_count} imported, {job.skipped_count} skipped, {job.failed_count} failed"
        )
        if job.status != JobStatus.SUCCEEDED:
            raise CommandError(f"Import #{job.pk} failed: {job.error_message} ({summary})")
        self.stdout.write(self.style.SUCCESS(f"Import #{job.pk} done: {summary}"))

    def _report(self, outcome: RepoOutcome) -> None:
        detail = f" ({outcome.message})" if outcome.message else ""
        line = f"{outcome.status:8} {outcome.repo_id}"
        if outcome.module:
            line += f" → {outcome.module}"
        if outcome.revision:
            line += f" (commit {outcome.revision[:12]})"
        style = {IMPORTED: self.style.SUCCESS, FAILED: self.style.ERROR}.get(
            outcome.status, self.style.WARNING
        )
        self.stdout.write(style(line + detail))
