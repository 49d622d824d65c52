from django.core.management.base import BaseCommand

from modules.services import module_fingerprint_refresh, modules_without_fingerprint


class Command(BaseCommand):
    help = (
        "Compute the retrieval fingerprint of every module that has none (those registered "
        "before fingerprints existed); with --all, of every module again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="recompute existing ones too")
        parser.add_argument("--batch", type=int, default=200, help="modules read per query")

    def handle(self, *args, all: bool, batch: int, **options):
        from modules.models import Module

        modules = Module.objects.order_by("id") if all else modules_without_fingerprint()
        done = skipped = 0
        for module in modules.iterator(chunk_size=batch):
            if module_fingerprint_refresh(module=module):
                done += 1
            else:
                skipped += 1
        self.stdout.write(
            self.style.SUCCESS(f"Fingerprinted {done} modules")
            + (f"; {skipped} could not be (not composable LoRA weights)" if skipped else "")
        )
