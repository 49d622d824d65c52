"""A module's history: its commits and the files each recorded (see services/revisions.py).

Kept apart from models.py, which re-exports them; they refer to Module by name.
"""

from django.conf import settings
from django.db import models


class ModuleCommit(models.Model):
    """One state of a module's files: an upload, a push or an edit of its card.

    ``commit_id`` is 40 hex digits, as a Hub client expects; the newest commit
    is ``main``. Its files are listed in ModuleCommitFile, which keeps every
    blob a commit refers to from being deleted while the module exists.
    """

    module = models.ForeignKey("modules.Module", on_delete=models.CASCADE, related_name="commits")
    commit_id = models.CharField(max_length=40)
    message = models.CharField(max_length=500)
    description = models.TextField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["module", "commit_id"], name="module_commit_unique")
        ]

    def __str__(self) -> str:
        return f"{self.module_id}@{self.commit_id[:12]}"


class ModuleCommitFile(models.Model):
    """A file as one commit recorded it; same fields as ModuleFile, so either serves."""

    commit = models.ForeignKey(ModuleCommit, on_delete=models.CASCADE, related_name="files")
    filename = models.CharField(max_length=64)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    storage_path = models.CharField(max_length=200, db_index=True)

    class Meta:
        ordering = ["filename"]
        constraints = [
            models.UniqueConstraint(fields=["commit", "filename"], name="commit_file_unique")
        ]

    def __str__(self) -> str:
        return f"{self.commit_id}:{self.filename}"
