from django.core.management.base import BaseCommand

from composition.services import composition_cards_refresh


class Command(BaseCommand):
    help = (
        "Rewrite the list of sources on the cards of published compositions so that they "
        "name no module that is not public (cards written by older versions of the hub, or "
        "naming a source made private since). Safe to run again."
    )

    def handle(self, *args, **options):
        changed = composition_cards_refresh()
        for module in changed:
            self.stdout.write(f"rewrote the card of {module.full_name}")
        self.stdout.write(self.style.SUCCESS(f"{len(changed)} card(s) rewritten"))
