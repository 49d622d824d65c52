"""The "Train a module" form: base model, name, examples (paste or file) and settings."""

from django import forms

from composition.engine.examples import FORMATS
from composition.forms import ExamplesInput, examples_field
from composition.training.services import DEFAULTS, TrainingSubmission
from hubsite import limits
from hubsite.forms import PrintableErrors
from modules.forms import ModuleNameField
from modules.models import BaseModel

MAX_TRAINING_FILE_BYTES = 50 * 2**20
# Settings named alike on the form, the job row and the submission.
SETTING_FIELDS = (
    "steps", "rank", "alpha", "dropout", "learning_rate", "batch_size", "warmup_steps",
    "max_length", "seed",
)  # fmt: skip


def _bounded(name: str, field=forms.IntegerField, **kwargs) -> forms.Field:
    """A setting's field: its range from HUB_SETTING_RANGES, its default from the engine."""
    return field(**limits.bounds("training", name), initial=getattr(DEFAULTS, name), **kwargs)


class TrainingForm(PrintableErrors, ExamplesInput, forms.Form):
    base_model = forms.ModelChoiceField(queryset=BaseModel.objects.all(), empty_label=None)
    name = ModuleNameField(help_text="name of the new module, registered as yours")
    examples_format = forms.ChoiceField(
        choices=[(f, f.upper()) for f in FORMATS], initial="jsonl", label="Format of the text"
    )
    examples = examples_field(
        label="Examples as text",
        help_text='one example a line: {"input": "…", "target": "…"} (or CSV/TSV with a header)',
    )
    examples_file = forms.FileField(
        required=False,
        label="Examples file",
        help_text="or upload a .jsonl, .csv or .tsv file (up to 50 MB)",
    )
    public = forms.BooleanField(
        required=False,
        label="Public",
        help_text="publish the module when it is trained (default: private)",
    )
    steps = _bounded("steps")
    rank = _bounded("rank", label="LoRA rank r")
    alpha = _bounded("alpha", label="LoRA alpha")
    dropout = _bounded("dropout", forms.FloatField)
    learning_rate = _bounded("learning_rate", forms.FloatField, label="Learning rate")
    batch_size = _bounded("batch_size")
    warmup_steps = _bounded("warmup_steps", label="Warm-up steps")
    max_length = _bounded("max_length", label="Max tokens per example")
    seed = _bounded("seed")
    target_modules = forms.CharField(
        required=False,
        label="Target modules",
        help_text="comma-separated layer names; blank: the family's usual attention "
        "projections (q_proj, v_proj for Llama-family models; q, v for T5)",
    )

    def clean(self):
        data = super().clean()
        data["examples"] = self._parsed("examples", True, max_bytes=MAX_TRAINING_FILE_BYTES)
        return data

    def data_source(self) -> str:
        upload = self.cleaned_data.get("examples_file")
        if upload:
            return f"uploaded file `{upload.name}`"
        return "examples pasted on the training form"

    def submission(self) -> TrainingSubmission:
        data = self.cleaned_data
        return TrainingSubmission(
            base_model=data["base_model"],
            name=data["name"],
            examples=data["examples"],
            data_source=self.data_source(),
            public=data["public"],
            target_modules=[t for t in data["target_modules"].split(",") if t.strip()],
            **{field: data[field] for field in SETTING_FIELDS},
        )
