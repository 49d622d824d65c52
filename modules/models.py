from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse

from hubsite.jobs import Job

# A module's history lives in its own module; these names are also this one's.
from modules.revision_models import ModuleCommit as ModuleCommit
from modules.revision_models import ModuleCommitFile as ModuleCommitFile


class BaseModel(models.Model):
    """A model that LoRA modules adapt, such as ``google/flan-t5-large``."""

    class TaskType(models.TextChoices):
        CAUSAL_LM = "CAUSAL_LM", "Causal LM"
        SEQ_2_SEQ_LM = "SEQ_2_SEQ_LM", "Seq2seq LM"

    identifier = models.CharField(
        max_length=200, unique=True, help_text="Hub id, e.g. HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    family = models.CharField(max_length=50, help_text="config.model_type, e.g. llama or t5")
    task_type = models.CharField(max_length=20, choices=TaskType.choices)
    hidden_size = models.PositiveIntegerField()
    num_layers = models.PositiveIntegerField()
    parameter_count = models.BigIntegerField()
    # {"q_proj": [[in, out]], ...}: what adapters are checked against.
    linear_shapes = models.JSONField(default=dict)
    # Where workers find the weights: a local folder, or a Hub id to download.
    weights_location = models.CharField(max_length=500)
    description = models.TextField(blank=True)
    # Fetches of its config.json through the Hub protocol (see modules.downloads).
    download_count = models.PositiveBigIntegerField(default=0)
    # The files of a local weights folder as the Hub protocol serves them, hashed
    # once: {filename: {"size", "mtime_ns", "sha256"}} (modules.hub_protocol.base_repos).
    served_files = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["identifier"]

    def __str__(self) -> str:
        return self.identifier

    @property
    def targetable_modules(self) -> list[str]:
        return sorted(self.linear_shapes)


# Module names, like Hub repository names: URL-safe, starting with a letter or digit.
# \Z, not $: $ also matches before a final line break.
MODULE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\Z"
module_name_validator = RegexValidator(
    MODULE_NAME_PATTERN,
    "Use 1 to 96 letters, digits, '.', '_' or '-', starting with a letter or digit.",
)
SURROUNDING_WHITESPACE = "Remove the spaces or line breaks before or after the name."


def refuse_surrounding_whitespace(value: str) -> None:
    """Names are taken as typed: " name" is refused, never trimmed into another name."""
    if value != value.strip():
        raise ValidationError(SURROUNDING_WHITESPACE, code="surrounding_whitespace")


class Tag(models.Model):
    """A topic modules are filed under; always a normalised slug (``text-generation``)."""

    slug = models.SlugField(max_length=50, unique=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def get_absolute_url(self) -> str:
        return reverse("tag-detail", args=[self.slug])


class Module(models.Model):
    """A LoRA adapter in PEFT format, named ``owner/name`` like a Hub repository."""

    class Visibility(models.TextChoices):
        PUBLIC = "public", "Public"
        PRIVATE = "private", "Private"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="modules"
    )
    name = models.CharField(max_length=96, validators=[module_name_validator])
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="modules")
    # One line for lists and search results; the card says the rest.
    description = models.CharField(max_length=300, blank=True)
    # The README.md text: YAML front matter in the Hub's convention, then Markdown.
    card = models.TextField(blank=True)
    # The card's front matter as JSON (the Hub's ``cardData``), parsed once when the card
    # is stored, so that listing or describing a module never parses its card.
    card_data = models.JSONField(default=dict, blank=True)
    r = models.PositiveIntegerField("rank")
    lora_alpha = models.FloatField()
    target_modules = models.JSONField(default=list)
    task_type = models.CharField(max_length=20, choices=BaseModel.TaskType.choices)
    adapter_config = models.JSONField(default=dict)
    # Whether compositions may use the module, decided at upload by the engine's
    # rule (composition.engine.composable) on its config; the reason when not.
    composable = models.BooleanField(default=True)
    composable_reason = models.CharField(max_length=500, blank=True)
    parameter_count = models.BigIntegerField()
    total_size = models.BigIntegerField(help_text="bytes of all files")
    license = models.CharField(max_length=64, blank=True)
    datasets = models.JSONField(default=list, blank=True)
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.PUBLIC
    )
    tags = models.ManyToManyField(Tag, related_name="modules", blank=True)
    download_count = models.PositiveBigIntegerField(default=0)
    # The id of the latest commit (what ``main`` names), kept in step with
    # ModuleCommit so that lists give every module's revision without a join.
    revision = models.CharField(max_length=40, blank=True)
    # Where an imported module came from, as the source reported it: its
    # endpoint, repository id and the commit the files were read at.
    source_endpoint = models.CharField(max_length=300, blank=True)
    source_repo = models.CharField(max_length=200, blank=True)
    source_revision = models.CharField(max_length=64, blank=True)
    # Kept in step with the Like rows, so lists sort by likes without counting.
    like_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Weighted name > tags > description, filled on PostgreSQL only.
    search_vector = SearchVectorField(null=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Case-insensitive, so ada/Summarizer and ada/summarizer cannot both exist.
            models.UniqueConstraint("owner", Lower("name"), name="module_owner_name_unique"),
        ]
        indexes = [
            # One index per sort order; the id breaks ties so pages are stable.
            models.Index(
                models.F("download_count").desc(), models.F("id").desc(), name="module_by_downloads"
            ),
            models.Index(
                models.F("like_count").desc(), models.F("id").desc(), name="module_by_likes"
            ),
            models.Index(
                models.F("created_at").desc(), models.F("id").desc(), name="module_by_created"
            ),
            models.Index(
                models.F("updated_at").desc(), models.F("id").desc(), name="module_by_updated"
            ),
            # Filters, each with the visibility every list checks, so that
            # counting the matches reads the index alone.
            models.Index(fields=["visibility", "base_model"], name="module_public_base"),
            models.Index(fields=["r", "visibility"], name="module_rank"),
            models.Index(fields=["license", "visibility"], name="module_license"),
            models.Index(fields=["task_type", "visibility"], name="module_task_type"),
            # PostgreSQL only (the migration skips it elsewhere): full-text search.
            GinIndex(fields=["search_vector"], name="module_search_vector"),
        ]

    def __str__(self) -> str:
        return self.full_name

    def get_absolute_url(self) -> str:
        return reverse("module-detail", args=[self.owner.username, self.name])

    @property
    def full_name(self) -> str:
        return f"{self.owner.username}/{self.name}"

    @property
    def is_public(self) -> bool:
        return self.visibility == self.Visibility.PUBLIC

    @property
    def source_url(self) -> str:
        """The imported repository at the commit it was read at ("" if not imported)."""
        if not self.source_repo:
            return ""
        url = f"{self.source_endpoint}/{self.source_repo}"
        return f"{url}/tree/{self.source_revision}" if self.source_revision else url


class SearchTerm(models.Model):
    """A word found in module names, tags or descriptions (PostgreSQL only).

    A query word whose stem no term has is taken for a typo and replaced by
    the most similar term (trigram similarity over this small table), which
    corrects typos without comparing the query against every module.
    """

    term = models.CharField(max_length=64, unique=True)
    # The term's English stem, as full-text search matches it ("review" for "reviews").
    lexeme = models.CharField(max_length=64, db_index=True, default="")

    class Meta:
        indexes = [
            GinIndex(fields=["term"], opclasses=["gin_trgm_ops"], name="search_term_trigram"),
        ]

    def __str__(self) -> str:
        return self.term


class ModuleFile(models.Model):
    """One file of a module, stored once per content at ``blobs/sha256/ab/cd/<sha256>``."""

    module = models.ForeignKey(Module, on_delete=models.CASCADE, related_name="files")
    filename = models.CharField(max_length=64)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, db_index=True)
    storage_path = models.CharField(max_length=200)

    class Meta:
        ordering = ["filename"]
        constraints = [
            models.UniqueConstraint(fields=["module", "filename"], name="module_file_unique")
        ]

    def __str__(self) -> str:
        return f"{self.module_id}:{self.filename}"


class Like(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="likes"
    )
    module = models.ForeignKey(Module, on_delete=models.CASCADE, related_name="likes")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "module"], name="like_unique")]

    def __str__(self) -> str:
        return f"{self.user_id} likes {self.module_id}"


class ModuleSource(models.Model):
    """One source of a composed module and the weight it was merged with."""

    composed = models.ForeignKey(Module, on_delete=models.CASCADE, related_name="sources")
    # A deleted source leaves its name behind, so the lineage still reads.
    source = models.ForeignKey(
        Module, on_delete=models.SET_NULL, null=True, blank=True, related_name="used_in"
    )
    source_name = models.CharField(max_length=200)
    # The source's commit the composition read: later pushes to it change nothing here.
    source_revision = models.CharField(max_length=40, blank=True)
    weight = models.FloatField()
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["composed", "position"], name="module_source_unique")
        ]

    def __str__(self) -> str:
        return f"{self.source_name} × {self.weight:g}"


class EmptyRepository(models.Model):
    """A repository made with ``create_repo`` that has no valid commit yet.

    It is not a module (a module always has validated files): it is seen only
    by its owner, through the Hub protocol, and becomes a module of the same
    name and visibility with its first valid push.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="empty_repositories"
    )
    name = models.CharField(max_length=96, validators=[module_name_validator])
    visibility = models.CharField(
        max_length=10, choices=Module.Visibility.choices, default=Module.Visibility.PUBLIC
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint("owner", Lower("name"), name="empty_repository_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.owner}/{self.name} (empty)"


class ImportJob(Job):
    """Modules imported from a Hugging Face Hub compatible endpoint, one repository at a time.

    Its steps are its repositories: ``current_step`` of them are done.
    """

    task_name = "modules.tasks.run_hub_import"
    kind_plural = "imports"

    endpoint = models.URLField(max_length=300)
    # Every repository of this author (user or organisation) on the endpoint,
    # listed by the worker when the job starts.
    author = models.CharField(max_length=96, blank=True)
    repo_ids = models.JSONField(default=list, blank=True)
    visibility = models.CharField(
        max_length=10, choices=Module.Visibility.choices, default=Module.Visibility.PUBLIC
    )
    # One entry per finished repository, in order: {"repo_id", "status"
    # (imported, skipped or failed), "module" ("owner/name" or null), "message"}.
    # A redelivered task resumes after the last entry.
    results = models.JSONField(default=list, blank=True)
    current_repo = models.CharField(max_length=200, blank=True)
    # Registered base model every imported adapter is taken for, its config rewritten
    # to name it; null: the one each adapter names.
    base_model = models.ForeignKey(
        BaseModel, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta(Job.Meta):
        indexes = [models.Index(fields=["owner", "status"], name="import_job_owner_status")]

    def __str__(self) -> str:
        return f"import #{self.pk} by {self.owner}: {self.status}"

    def get_absolute_url(self) -> str:
        return reverse("hub-import-job", args=[self.pk])

    @property
    def total(self) -> int:
        return len(self.repo_ids)

    @property
    def completed(self) -> int:
        return len(self.results)

    @property
    def imported_count(self) -> int:
        return self._count("imported")

    @property
    def skipped_count(self) -> int:
        return self._count("skipped")

    @property
    def failed_count(self) -> int:
        return self._count("failed")

    def _count(self, status: str) -> int:
        return sum(1 for result in self.results if result["status"] == status)


class ModuleFingerprint(models.Model):
    """A module's compact summary for candidate retrieval (composition/engine/fingerprints.py).

    Per adapted layer, the top right-singular direction of its update, in
    float16: a few tens of KiB, read in bulk when a composition ranks many
    candidates against its examples.
    """

    module = models.OneToOneField(
        Module, on_delete=models.CASCADE, primary_key=True, related_name="fingerprint"
    )
    data = models.BinaryField()
    # Hash of the weights it was computed from: a fingerprint never outlives them.
    weights_sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"fingerprint of module #{self.module_id}"
