from django.db import models


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
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["identifier"]

    def __str__(self) -> str:
        return self.identifier

    @property
    def targetable_modules(self) -> list[str]:
        return sorted(self.linear_shapes)
