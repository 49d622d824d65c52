import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand

from modules.models import Module
from modules.services import ModuleDuplicate, base_model_install_embedded, module_import_folder

# Adapter folders (what PEFT's save_pretrained writes), one per module, when
# the hub ships a starter set; they are published by this account.
STARTER_DIR = Path(__file__).resolve().parents[2] / "starter"
STARTER_OWNER = "lorahub"


class Command(BaseCommand):
    help = (
        "Install the demo content: the embedded SmolLM2 base model (converted once, cached) "
        "and the starter modules in modules/starter/, when that folder exists."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--starter-dir",
            type=Path,
            default=STARTER_DIR,
            help="folder of starter adapter folders (default: modules/starter/)",
        )

    def handle(self, *args, starter_dir: Path, **options):
        self.stdout.write("Base model: converting/registering SmolLM2-135M-Instruct …")
        base_model = base_model_install_embedded()
        self.stdout.write(
            self.style.SUCCESS(
                f"Base model ready: {base_model.identifier} "
                f"({base_model.parameter_count / 1e6:.0f}M parameters, "
                f"weights in {base_model.weights_location})"
            )
        )
        if starter_dir.is_dir():
            self._install_starter_modules(starter_dir, base_model)

    def _install_starter_modules(self, starter_dir: Path, default_base_model) -> None:
        owner, created = get_user_model().objects.get_or_create(username=STARTER_OWNER)
        if created:
            owner.set_unusable_password()  # publishes, never logs in
            owner.save(update_fields=["password"])
        # A ".partial" folder is a module whose training has not finished.
        folders = sorted(
            p
            for p in starter_dir.iterdir()
            if (p / "adapter_config.json").is_file() and not p.name.endswith(".partial")
        )
        added = 0
        for folder in folders:
            if Module.objects.filter(owner=owner, name=folder.name).exists():
                continue
            try:
                module_import_folder(
                    owner=owner,
                    name=folder.name,
                    folder=folder,
                    base_model=None if _names_base_model(folder) else default_base_model,
                )
            except (ValidationError, ModuleDuplicate) as exc:
                self.stderr.write(f"Starter module {folder.name} skipped: {exc}")
            else:
                added += 1
        self.stdout.write(
            self.style.SUCCESS(f"Starter modules: {added} added, {len(folders)} in {starter_dir}")
        )


def _names_base_model(folder: Path) -> bool:
    config = json.loads((folder / "adapter_config.json").read_text())
    return bool(config.get("base_model_name_or_path"))
