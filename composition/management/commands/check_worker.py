import time

from django.core.management.base import BaseCommand, CommandError

from composition.models import JobStatus
from composition.selectors import worker_check_get
from composition.worker_checks import known_queues, worker_check_request


class Command(BaseCommand):
    help = "Send a check through a queue and wait until a worker answers it."

    def add_arguments(self, parser):
        parser.add_argument("--queue", default="gpu", choices=known_queues())
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")

    def handle(self, *args, queue, timeout, **options):
        check = worker_check_request(queue=queue)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            check = worker_check_get(check_id=check.pk)
            if check.status == JobStatus.SUCCEEDED:
                self.stdout.write(
                    self.style.SUCCESS(f"queue {queue}: answered by {check.worker_host}")
                )
                return
            time.sleep(0.2)
        raise CommandError(
            f"no worker answered on queue {queue!r} within {timeout:.0f} s "
            f"(check #{check.pk} is still {check.status})"
        )
