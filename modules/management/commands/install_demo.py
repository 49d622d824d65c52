from django.core.management.base import BaseCommand

from modules.services import base_model_install_embedded


class Command(BaseCommand):
    help = "Install the demo content: the embedded SmolLM2 base model (converted once, cached)."

    def handle(self, *args, **options):
        self.stdout.write("Base model: converting/registering SmolLM2-135M-Instruct …")
        base_model = base_model_install_embedded()
        self.stdout.write(
            self.style.SUCCESS(
                f"Base model ready: {base_model.identifier} "
                f"({base_model.parameter_count / 1e6:.0f}M parameters, "
                f"weights in {base_model.weights_location})"
            )
        )
