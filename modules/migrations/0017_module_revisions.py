"""Module revisions: every module gets one commit recording its stored files.

The backfilled commit's id is the one the Hub protocol already gave the
module (a hash of its file names and contents), so clients that cached it
keep a valid revision.
"""

import hashlib

import django.db.models.deletion
import django.db.models.functions.text
from django.conf import settings
from django.db import migrations, models

import modules.models

BATCH = 2000


def _content_commit_id(files) -> str:
    digest = hashlib.sha1(b"lorahub-module-revision\n", usedforsecurity=False)
    for file in sorted(files, key=lambda f: f.filename):
        digest.update(f"{file.filename}\0{file.sha256}\n".encode())
    return digest.hexdigest()


def backfill_commits(apps, schema_editor):
    Module = apps.get_model("modules", "Module")
    ModuleCommit = apps.get_model("modules", "ModuleCommit")
    ModuleCommitFile = apps.get_model("modules", "ModuleCommitFile")
    last = 0
    while True:
        batch = list(
            Module.objects.filter(pk__gt=last, revision="")
            .order_by("pk")
            .prefetch_related("files")[:BATCH]
        )
        if not batch:
            return
        last = batch[-1].pk
        commits = []
        for module in batch:
            module.revision = _content_commit_id(module.files.all())
            commits.append(
                ModuleCommit(
                    module=module,
                    commit_id=module.revision,
                    message="Initial commit",
                    description="Recorded from the files stored before modules had a history.",
                    author_id=module.owner_id,
                    created_at=module.updated_at,
                )
            )
        ModuleCommit.objects.bulk_create(commits)
        ModuleCommitFile.objects.bulk_create(
            ModuleCommitFile(
                commit=commit,
                filename=file.filename,
                size=file.size,
                sha256=file.sha256,
                storage_path=file.storage_path,
            )
            for module, commit in zip(batch, commits, strict=True)
            for file in module.files.all()
        )
        Module.objects.bulk_update(batch, ["revision"])


class Migration(migrations.Migration):
    dependencies = [
        ("modules", "0016_listed_names_in_downloads_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="module",
            name="revision",
            field=models.CharField(blank=True, max_length=40),
        ),
        migrations.AddField(
            model_name="modulesource",
            name="source_revision",
            field=models.CharField(blank=True, max_length=40),
        ),
        migrations.CreateModel(
            name="ModuleCommit",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("commit_id", models.CharField(max_length=40)),
                ("message", models.CharField(max_length=500)),
                ("description", models.TextField(blank=True)),
                ("created_at", models.DateTimeField()),
                (
                    "author",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "module",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="commits",
                        to="modules.module",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-id"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("module", "commit_id"), name="module_commit_unique"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="ModuleCommitFile",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("filename", models.CharField(max_length=64)),
                ("size", models.BigIntegerField()),
                ("sha256", models.CharField(max_length=64)),
                ("storage_path", models.CharField(db_index=True, max_length=200)),
                (
                    "commit",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="files",
                        to="modules.modulecommit",
                    ),
                ),
            ],
            options={
                "ordering": ["filename"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("commit", "filename"), name="commit_file_unique"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="EmptyRepository",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "name",
                    models.CharField(
                        max_length=96, validators=[modules.models.module_name_validator]
                    ),
                ),
                (
                    "visibility",
                    models.CharField(
                        choices=[("public", "Public"), ("private", "Private")],
                        default="public",
                        max_length=10,
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "owner",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="empty_repositories",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        models.F("owner"),
                        django.db.models.functions.text.Lower("name"),
                        name="empty_repository_unique",
                    )
                ],
            },
        ),
        migrations.RunPython(backfill_commits, migrations.RunPython.noop, elidable=False),
    ]
