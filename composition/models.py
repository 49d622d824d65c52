from django.db import models
from django.urls import reverse

from composition.engine.types import MERGES, CompositionSettings, TrainingSettings
from hubsite.jobs import FINAL_STATUSES, Job, JobStatus
from modules.models import BaseModel, Module

# The engine's defaults are the job rows' defaults too.
COMPOSITION = CompositionSettings()
TRAINING = TrainingSettings()

__all__ = [
    "FINAL_STATUSES",
    "CompositionCandidate",
    "CompositionJob",
    "GenerationRequest",
    "Job",
    "JobStatus",
    "TrainingJob",
    "WorkerCheck",
]


class WorkerCheck(Job):
    """A round trip through a queue to a worker, proving one is consuming it."""

    task_name = "composition.tasks.worker_check_answer"
    max_attempts = 1
    queue_timeout_seconds = 120
    kind_plural = "worker checks"

    queue = models.CharField(max_length=50)

    def dispatch_options(self) -> dict:
        return {"queue": self.queue}

    def __str__(self) -> str:
        return f"worker check #{self.pk} on {self.queue}: {self.status}"


class CompositionJob(Job):
    """A request to compose modules for a few examples, and its outcome."""

    task_name = "composition.tasks.gpu_run_composition"
    active_limit_setting = "HUB_MAX_ACTIVE_JOBS"
    kind_plural = "compositions"

    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="+")
    # Name of the module the result is stored as (owner/name).
    name = models.CharField(max_length=96)
    examples = models.JSONField(default=list, help_text='[{"input": …, "target": …}, …]')
    heldout = models.JSONField(default=list, blank=True)
    # "Let the hub pick k": the candidates were sampled at random (seeded).
    picked_at_random = models.BooleanField(default=False)

    steps = models.PositiveIntegerField(default=COMPOSITION.steps)
    l1 = models.FloatField(default=COMPOSITION.l1)
    bound = models.FloatField(default=COMPOSITION.bound)
    optimizer = models.CharField(max_length=40, default=COMPOSITION.optimizer)
    population = models.PositiveSmallIntegerField(default=COMPOSITION.population)
    seed = models.IntegerField(null=True, blank=True, default=COMPOSITION.seed)
    max_new_tokens = models.PositiveSmallIntegerField(default=COMPOSITION.max_new_tokens)
    # Compose only the k best candidates (None: all of them), ranked by
    # preselect_method: "loss" alone on the examples, or "retrieval" by fingerprint.
    preselect = models.PositiveSmallIntegerField(null=True, blank=True)
    preselect_method = models.CharField(max_length=20, default=COMPOSITION.preselect_method)
    # "compose", or "auto": validation on the examples picks the strategy.
    strategy = models.CharField(max_length=20, default=COMPOSITION.strategy)
    validation_folds = models.PositiveSmallIntegerField(default=COMPOSITION.validation_folds)
    early_stop = models.PositiveIntegerField(null=True, blank=True)
    # How modules are merged: "lorahub" (the paper's A and B averages) or "exact".
    merge = models.CharField(
        max_length=20, choices=[(m, m) for m in MERGES], default=COMPOSITION.merge
    )
    # Weights per module: one per group of layers (1: the paper's single weight).
    weight_groups = models.PositiveSmallIntegerField(default=COMPOSITION.weight_groups)

    # With preselect: candidates scored alone so far (the phase before the search).
    scored_candidates = models.PositiveIntegerField(default=0)
    best_loss = models.FloatField(null=True, blank=True)
    # Objective of every evaluated candidate, in order.
    loss_history = models.JSONField(default=list, blank=True)
    device = models.CharField(max_length=40, blank=True)
    warm_start = models.BooleanField(null=True)
    load_seconds = models.FloatField(null=True, blank=True)
    select_seconds = models.FloatField(null=True, blank=True)
    optimize_seconds = models.FloatField(null=True, blank=True)
    evaluate_seconds = models.FloatField(null=True, blank=True)
    validate_seconds = models.FloatField(null=True, blank=True)
    # With strategy "auto": what was chosen, why, and every strategy's
    # validation loss on the examples ({"compose": 0.41, "best_single": …}).
    chosen_strategy = models.CharField(max_length=20, blank=True)
    strategy_reason = models.TextField(blank=True)
    strategy_scores = models.JSONField(default=dict, blank=True)

    accuracy = models.FloatField(null=True, blank=True)
    zero_shot_accuracy = models.FloatField(null=True, blank=True)
    # [{"input", "target", "output", "correct", "zero_shot_output", "zero_shot_correct"}]
    predictions = models.JSONField(default=list, blank=True)
    # Several jobs may share a result: the same inputs and seed give the same module.
    result_module = models.ForeignKey(
        Module, on_delete=models.SET_NULL, null=True, blank=True, related_name="composition_jobs"
    )

    class Meta(Job.Meta):
        indexes = [models.Index(fields=["owner", "status"], name="job_owner_status")]

    def __str__(self) -> str:
        return f"composition #{self.pk} by {self.owner}: {self.status}"

    def get_absolute_url(self) -> str:
        return reverse("composition-job", args=[self.pk])


class CompositionCandidate(models.Model):
    """A module considered by a job, and the weight it received."""

    job = models.ForeignKey(CompositionJob, on_delete=models.CASCADE, related_name="candidates")
    module = models.ForeignKey(Module, on_delete=models.SET_NULL, null=True, related_name="+")
    # Kept so the job still reads well after a source module is deleted.
    module_name = models.CharField(max_length=200)
    position = models.PositiveSmallIntegerField()
    weight = models.FloatField(null=True, blank=True)
    # With weight_groups > 1: the weight of each group of layers (``weight`` is their mean).
    group_weights = models.JSONField(default=list, blank=True)
    # With preselect: the loss of this module alone on the examples. Once the
    # job ran: whether it was composed (one left out has weight 0).
    solo_loss = models.FloatField(null=True, blank=True)
    # With preselection by retrieval: its fingerprint's score against the examples.
    retrieval_score = models.FloatField(null=True, blank=True)
    selected = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["job", "position"]
        constraints = [
            models.UniqueConstraint(fields=["job", "position"], name="candidate_position_unique")
        ]

    def __str__(self) -> str:
        return f"{self.module_name} in job #{self.job_id}"


class GenerationRequest(Job):
    """Playground: inputs run through one module by a worker."""

    task_name = "composition.tasks.gpu_generate"
    # Interactive: a lost request is simply asked again, and one nobody took
    # within a minute fails with a message that says so.
    max_attempts = 1
    queue_timeout_seconds = 60
    active_limit_setting = "HUB_MAX_ACTIVE_PLAYGROUND"
    retry_after_seconds = 10
    kind_plural = "playground requests"

    module = models.ForeignKey(Module, on_delete=models.CASCADE, related_name="+")
    inputs = models.JSONField(default=list)
    outputs = models.JSONField(default=list, blank=True)
    max_new_tokens = models.PositiveSmallIntegerField(default=64)

    def __str__(self) -> str:
        return f"generation #{self.pk} with {self.module}: {self.status}"


class TrainingJob(Job):
    """A request to train a new LoRA module on a user's examples, and its outcome."""

    task_name = "composition.tasks.gpu_train_module"
    active_limit_setting = "HUB_MAX_ACTIVE_JOBS"
    kind_plural = "trainings"

    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="+")
    # Name of the module the result is registered as (owner/name).
    name = models.CharField(max_length=96)
    examples = models.JSONField(default=list, help_text='[{"input": …, "target": …}, …]')
    # Where the examples came from, in words, for the card ("upload train.jsonl").
    data_source = models.CharField(max_length=300, blank=True)
    make_public = models.BooleanField(default=False)

    rank = models.PositiveSmallIntegerField(default=TRAINING.rank)
    alpha = models.PositiveSmallIntegerField(default=TRAINING.alpha)
    dropout = models.FloatField(default=TRAINING.dropout)
    # Resolved at submission (the family's usual projections when none is given).
    target_modules = models.JSONField(default=list)
    steps = models.PositiveIntegerField(default=TRAINING.steps)
    batch_size = models.PositiveSmallIntegerField(default=TRAINING.batch_size)
    learning_rate = models.FloatField(default=TRAINING.learning_rate)
    warmup_steps = models.PositiveIntegerField(default=TRAINING.warmup_steps)
    max_length = models.PositiveIntegerField(default=TRAINING.max_length)
    seed = models.IntegerField(default=TRAINING.seed)

    # Training loss of every step, in order.
    loss_history = models.JSONField(default=list, blank=True)
    final_loss = models.FloatField(null=True, blank=True)
    train_seconds = models.FloatField(null=True, blank=True)
    device = models.CharField(max_length=40, blank=True)
    result_module = models.ForeignKey(
        Module, on_delete=models.SET_NULL, null=True, blank=True, related_name="training_jobs"
    )

    class Meta(Job.Meta):
        indexes = [models.Index(fields=["owner", "status"], name="training_owner_status")]

    def __str__(self) -> str:
        return f"training #{self.pk} by {self.owner}: {self.status}"

    def get_absolute_url(self) -> str:
        return reverse("training-job", args=[self.pk])

    @property
    def current_loss(self) -> float | None:
        return self.loss_history[-1] if self.loss_history else None
