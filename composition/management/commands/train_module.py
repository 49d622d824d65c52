"""Train a LoRA module on a file of examples and register it on the hub.

Runs in this process (no worker needed) and prints progress as it goes:

    python manage.py train_module --base HuggingFaceTB/SmolLM2-135M-Instruct \\
        --data sports.jsonl --name ada/sports-plausibility --steps 200
"""

import shutil
import tempfile
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from composition.engine.examples import FORMATS, guess_format, read_examples
from composition.engine.types import EngineError, TrainingSettings, TrainingStep
from composition.training import services
from hubsite.job_runs import job_work_root
from modules.models import BaseModel

DEFAULTS = TrainingSettings()


class Command(BaseCommand):
    help = "Train a LoRA module on examples (JSONL, CSV or TSV) and register it as owner/name."

    def add_arguments(self, parser):
        parser.add_argument("--base", required=True, help="identifier of a registered base model")
        parser.add_argument("--data", required=True, type=Path, help="a .jsonl, .csv or .tsv file")
        parser.add_argument("--name", required=True, help="owner/name of the new module")
        parser.add_argument("--steps", type=int, default=DEFAULTS.steps)
        parser.add_argument("--rank", type=int, default=DEFAULTS.rank)
        parser.add_argument("--alpha", type=int, default=DEFAULTS.alpha)
        parser.add_argument("--dropout", type=float, default=DEFAULTS.dropout)
        parser.add_argument("--lr", type=float, default=DEFAULTS.learning_rate)
        parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
        parser.add_argument("--warmup-steps", type=int, default=DEFAULTS.warmup_steps)
        parser.add_argument("--max-length", type=int, default=DEFAULTS.max_length)
        parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
        parser.add_argument(
            "--targets",
            default="",
            help="comma-separated layer names (default: the family's attention projections)",
        )
        parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1…")
        parser.add_argument(
            "--public", action="store_true", help="publish the module (default: private)"
        )
        parser.add_argument(
            "--report-every", type=int, default=0, help="print every N steps (default: ~20 lines)"
        )

    def handle(self, *args, **options):
        base_model = _base_model(options["base"])
        owner, name = _owner_and_name(options["name"])
        data: Path = options["data"]
        examples = _examples(data)
        submission = services.TrainingSubmission(
            base_model=base_model,
            name=name,
            examples=examples,
            data_source=f"`{data.name}`",
            public=options["public"],
            rank=options["rank"],
            alpha=options["alpha"],
            dropout=options["dropout"],
            target_modules=[t for t in options["targets"].split(",") if t.strip()],
            steps=options["steps"],
            batch_size=options["batch_size"],
            learning_rate=options["lr"],
            warmup_steps=options["warmup_steps"],
            max_length=options["max_length"],
            seed=options["seed"],
        )
        try:
            targets = services.training_check(owner=owner, submission=submission, limits=False)
        except ValidationError as exc:
            raise CommandError(_listed(exc)) from exc
        recipe = TrainingSettings(
            rank=submission.rank,
            alpha=submission.alpha,
            dropout=submission.dropout,
            target_modules=targets,
            steps=submission.steps,
            batch_size=submission.batch_size,
            learning_rate=submission.learning_rate,
            warmup_steps=submission.warmup_steps,
            max_length=submission.max_length,
            seed=submission.seed,
            device=options["device"],
        )
        full_name = f"{owner.get_username()}/{name}"
        self.stdout.write(
            f"Training {full_name} on {base_model.identifier}: {len(examples)} examples, "
            f"{recipe.steps} steps, rank {recipe.rank}, targets {', '.join(targets)}"
        )
        every = options["report_every"] or max(1, recipe.steps // 20)
        work = Path(tempfile.mkdtemp(prefix="train-module-", dir=job_work_root()))
        try:
            result = services.training_train(
                base_model=base_model,
                examples=examples,
                training_settings=recipe,
                out_dir=work / "adapter",
                on_step=self._reporter(every),
            )
            module = self._register(owner, name, base_model, result, submission)
        finally:
            # Nothing is left behind, whether the module was registered or not.
            shutil.rmtree(work, ignore_errors=True)
        self.stdout.write(
            self.style.SUCCESS(
                f"Registered {module.full_name} ({module.get_visibility_display().lower()}): "
                f"final loss {result.final_loss:.4f}, {result.seconds:.0f} s"
            )
        )

    def _reporter(self, every: int):
        started = time.perf_counter()

        def report(step: TrainingStep) -> None:
            if step.step % every == 0 or step.step in (1, step.total):
                elapsed = time.perf_counter() - started
                self.stdout.write(
                    f"step {step.step}/{step.total}  loss {step.loss:.4f}  ({elapsed:.0f} s)"
                )

        return report

    def _register(self, owner, name, base_model, result, submission):
        from modules.services import ModuleDuplicate

        try:
            return services.trained_module_register(
                owner=owner,
                name=name,
                base_model=base_model,
                result=result,
                data_source=submission.data_source,
                example_count=len(submission.examples),
                public=submission.public,
            )
        except ValidationError as exc:
            raise CommandError(f"the module was not registered: {_listed(exc)}") from exc
        except ModuleDuplicate as exc:
            raise CommandError(str(exc)) from exc


def _base_model(identifier: str) -> BaseModel:
    base_model = BaseModel.objects.filter(identifier=identifier).first()
    if base_model is None:
        known = ", ".join(BaseModel.objects.values_list("identifier", flat=True)) or "none"
        raise CommandError(f"unknown base model {identifier!r}; registered: {known}")
    return base_model


def _owner_and_name(full_name: str):
    owner_name, slash, name = full_name.partition("/")
    if not slash or not owner_name or not name or "/" in name:
        raise CommandError(f"--name must be owner/name, not {full_name!r}")
    owner = get_user_model().objects.filter(username=owner_name).first()
    if owner is None:
        raise CommandError(f"unknown owner {owner_name!r}: no user has this name")
    return owner, name


def _examples(path: Path):
    if guess_format(path.name) not in FORMATS:
        raise CommandError(f"{path}: use a .jsonl, .csv or .tsv file")
    try:
        return read_examples(path)
    except EngineError as exc:
        raise CommandError(str(exc)) from exc


def _listed(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(
            f"{field}: {message}"
            for field, messages in exc.message_dict.items()
            for message in messages
        )
    return "; ".join(exc.messages)
