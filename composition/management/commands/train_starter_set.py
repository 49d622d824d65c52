"""Train the starter module set: one LoRA module per upstream task.

Resumable: a task whose folder is complete is skipped, so the set can be
finished over several runs. The settings here are the recipe of the
committed set; rerunning with them retrains it.
"""

import json
import shutil
import time
from pathlib import Path

import torch
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from composition.engine.cards import training_card
from composition.engine.training import default_target_modules, train_lora
from composition.engine.types import Example, ModelRef, TrainingSettings
from modules.services import EMBEDDED_BASE_MODEL, embedded_model_dir

DATA_DIR = Path(settings.BASE_DIR) / "data" / "upstream"
STARTER_DIR = Path(settings.BASE_DIR) / "modules" / "starter"
STARTER_OWNER = "lorahub"
RECIPE = TrainingSettings(
    rank=16,
    alpha=32,
    dropout=0.1,
    target_modules=default_target_modules("llama"),
    steps=100,
    batch_size=8,
    learning_rate=1e-3,
    warmup_steps=10,
    max_length=256,
    seed=0,
)


class Command(BaseCommand):
    help = "Train (or finish training) one starter LoRA module per task in data/upstream."

    def add_arguments(self, parser):
        parser.add_argument("--only", nargs="*", help="task names (default: every task)")
        parser.add_argument("--steps", type=int, default=RECIPE.steps)
        parser.add_argument("--out", type=Path, default=STARTER_DIR)

    def handle(self, *args, only, steps, out, **options):
        tasks = sorted(p.stem for p in DATA_DIR.glob("*.jsonl"))
        unknown = set(only or ()) - set(tasks)
        if unknown:
            raise CommandError(f"unknown tasks: {', '.join(sorted(unknown))}")
        chosen = [t for t in tasks if not only or t in only]
        todo = [t for t in chosen if not (out / t / "README.md").exists()]
        self.stdout.write(f"{len(chosen) - len(todo)} of {len(chosen)} trained; {len(todo)} to go")
        base = ModelRef(EMBEDDED_BASE_MODEL, embedded_model_dir())
        recipe = TrainingSettings(**{**RECIPE.__dict__, "steps": steps})
        for number, task in enumerate(todo, start=1):
            self._train_one(base, task, recipe, out / task, f"[{number}/{len(todo)}]")

    def _train_one(
        self, base: ModelRef, task: str, recipe: TrainingSettings, folder: Path, tag: str
    ):
        rows = [json.loads(line) for line in (DATA_DIR / f"{task}.jsonl").open()]
        examples = [Example(r["input"], r["target"]) for r in rows]
        started = time.perf_counter()

        def report(step):
            if step.step % 10 == 0 or step.step == step.total:
                elapsed = time.perf_counter() - started
                progress = f"step {step.step}/{step.total} loss {step.loss:.3f}"
                self.stdout.write(f"{tag} {task}: {progress} ({elapsed:.0f} s)")
                # Runs last hours, usually into a log file: show each line at once.
                self.stdout.flush()

        staging = folder.with_name(folder.name + ".partial")
        # Left by a run stopped mid-module; nothing in it can be trusted.
        shutil.rmtree(staging, ignore_errors=True)
        result = train_lora(
            base, examples, staging, recipe, on_step=report, save_dtype=torch.bfloat16
        )
        card = training_card(
            title=f"{STARTER_OWNER}/{task}",
            base_model=base.identifier,
            result=result,
            data_source=f"BIG-bench task `{task}` (data/upstream/{task}.jsonl)",
            example_count=len(examples),
            license="apache-2.0",
            datasets=["bigbench"],
            tags=["starter", "bigbench", task],
            description=f"Starter module of the hub, trained on the BIG-bench task `{task}`.",
        )
        # The card is written last: its presence marks the module as done.
        (staging / "README.md").write_text(card)
        staging.rename(folder)
        self.stdout.write(self.style.SUCCESS(f"{tag} {task}: done, loss {result.final_loss:.3f}"))
