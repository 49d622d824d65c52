from django.core.management.base import BaseCommand

from hubsite.debris import debris_remove
from modules.uploads import format_bytes


class Command(BaseCommand):
    help = (
        "Remove what crashes left on disk: upload temp files, job work folders and storage "
        "staging files older than HUB_DEBRIS_MAX_AGE_SECONDS (work in progress is never touched)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--max-age",
            type=float,
            default=None,
            help="seconds since the last write (default: the settings' bounds)",
        )

    def handle(self, *args, max_age, **options):
        removed = debris_remove(max_age=max_age)
        self.stdout.write(f"Removed {removed.paths} stale paths ({format_bytes(removed.bytes)}).")
