"""The composition form: modules, examples (table, paste or file) and settings."""

from django import forms

from composition.engine.examples import FORMATS, guess_format, parse_examples
from composition.engine.types import Example
from composition.services import (
    DEFAULT_PICK_METHOD,
    DEFAULTS,
    SETTING_FIELDS,
    CompositionSubmission,
    compatible_modules,
)
from hubsite import limits
from hubsite.forms import PrintableErrors
from modules.forms import ModuleNameField
from modules.models import BaseModel, Module

OPTIMIZERS = [
    ("NGOpt", "NGOpt — nevergrad's wizard (the LoraHub paper's choice)"),
    ("CMA", "CMA-ES — population search, batches well"),
    ("TwoPointsDE", "Differential evolution"),
    ("PSO", "Particle swarm"),
    ("OnePlusOne", "(1+1) evolution strategy"),
    ("RandomSearch", "Random search (baseline)"),
]
MERGES = [
    ("lorahub", "LoraHub — A and B averaged separately (the paper's; one rank and scaling)"),
    ("exact", "Exact — ΔW = Σ wᵢ·sᵢ·BᵢAᵢ (modules of any rank, alpha or rslora)"),
]
MAX_EXAMPLE_FILE_BYTES = 5 * 1024 * 1024
# Settings that fall back to their default when a form leaves them out; the
# others mean something when empty (no preselection, a random seed…).
DEFAULTED_WHEN_EMPTY = ("preselect_method", "strategy", "validation_folds")
PICK_METHODS = [
    ("loss", "loss alone on the examples (one forward pass per module)"),
    ("retrieval", "relevance to the examples (module fingerprints, seconds for thousands)"),
    ("random", "at random, with the seed (as in the LoraHub paper)"),
]
PRESELECT_METHODS = [
    ("loss", "loss alone on the examples (one forward pass each)"),
    ("retrieval", "relevance by fingerprint (one forward pass in all)"),
]
STRATEGIES = [
    ("compose", "compose (the LoraHub search)"),
    ("auto", "auto: the best of compose, best single, uniform, base on held-out folds"),
]


def _bounded(name: str, field=forms.IntegerField, **kwargs) -> forms.Field:
    """A setting's field: its range from HUB_SETTING_RANGES, its default from the engine."""
    return field(**limits.bounds("composition", name), initial=getattr(DEFAULTS, name), **kwargs)


def examples_field(**kwargs) -> forms.CharField:
    """Examples as JSONL, CSV or TSV text; errors name the rows."""
    widget = forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "mono"})
    return forms.CharField(strip=False, required=False, widget=widget, **kwargs)


class ExamplesInput:
    """For forms with examples fields: ``<name>``, ``<name>_format`` and ``<name>_file``."""

    def _parsed(
        self, name: str, required: bool, max_bytes: int = MAX_EXAMPLE_FILE_BYTES
    ) -> list[Example]:
        """The examples of field ``name`` (pasted, or its ``_file``); errors name the rows."""
        text = self.cleaned_data.get(name) or ""
        fmt = self.cleaned_data.get(f"{name}_format") or "jsonl"
        upload = self.cleaned_data.get(f"{name}_file")
        if upload:
            if upload.size > max_bytes:
                self.add_error(f"{name}_file", f"The file is larger than {max_bytes // 2**20} MB.")
                return []
            try:
                text = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                self.add_error(f"{name}_file", "The file is not UTF-8 text.")
                return []
            fmt = guess_format(upload.name)
            if fmt not in FORMATS:
                self.add_error(f"{name}_file", "Use a .jsonl, .csv or .tsv file.")
                return []
        if not text.strip():
            if required:
                self.add_error(name, "Give at least one example.")
            return []
        examples, errors = parse_examples(text, fmt)
        for error in errors[:10]:
            self.add_error(name, str(error))
        if len(errors) > 10:
            self.add_error(name, f"… and {len(errors) - 10} more rows with errors")
        return examples


class CompositionForm(PrintableErrors, ExamplesInput, forms.Form):
    base_model = forms.ModelChoiceField(queryset=BaseModel.objects.all(), empty_label=None)
    selection = forms.ChoiceField(
        choices=[("choose", "Choose modules"), ("pick", "Let the hub pick k")],
        widget=forms.RadioSelect,
        initial="choose",
        label="How to choose the modules",
    )
    modules = forms.ModelMultipleChoiceField(
        queryset=Module.objects.none(), required=False, widget=forms.CheckboxSelectMultiple
    )
    pick = forms.IntegerField(
        min_value=2, initial=20, required=False, label="How many modules the hub picks (k)"
    )
    pick_method = forms.ChoiceField(
        choices=PICK_METHODS,
        initial=DEFAULT_PICK_METHOD,
        required=False,
        widget=forms.RadioSelect,
        label="Picked by",
    )
    examples_format = forms.ChoiceField(
        choices=[(f, f.upper()) for f in FORMATS], initial="jsonl", label="Format of the text"
    )
    examples = examples_field(label="Examples as text")
    examples_file = forms.FileField(
        required=False, label="Examples file", help_text="a .jsonl, .csv or .tsv file"
    )
    heldout_format = forms.ChoiceField(
        choices=[(f, f.upper()) for f in FORMATS],
        initial="jsonl",
        label="Format of the held-out text",
    )
    heldout = examples_field(label="Held-out examples as text")
    heldout_file = forms.FileField(
        required=False, label="Held-out examples file", help_text="a .jsonl, .csv or .tsv file"
    )
    name = ModuleNameField(
        required=False, help_text="name of the composed module (default: composed-<date>)"
    )
    steps = _bounded("steps")
    l1 = _bounded("l1", forms.FloatField, label="L1 penalty")
    bound = _bounded("bound", forms.FloatField, label="Weight bound ±")
    optimizer = forms.ChoiceField(choices=OPTIMIZERS, initial=DEFAULTS.optimizer)
    population = _bounded("population", help_text="candidates evaluated per forward pass")
    weight_groups = _bounded(
        "weight_groups",
        required=False,
        help_text="weights per module: one per group of layers (1: the paper's)",
    )
    # Not required: a form posted without it (an older page) gets the paper's merge.
    merge = forms.ChoiceField(choices=MERGES, initial=DEFAULTS.merge, required=False, label="Merge")
    seed = forms.IntegerField(required=False, initial=DEFAULTS.seed)
    max_new_tokens = _bounded("max_new_tokens")
    preselect = forms.IntegerField(
        min_value=2,
        required=False,
        label="Compose the best k",
        help_text="optional: rank the candidates and compose only the best k",
    )
    preselect_method = forms.ChoiceField(
        choices=PRESELECT_METHODS,
        initial=DEFAULTS.preselect_method,
        required=False,
        label="Ranked by",
    )
    strategy = forms.ChoiceField(
        choices=STRATEGIES,
        initial=DEFAULTS.strategy,
        required=False,
        help_text="auto: validation on your examples returns the composition, the best single "
        "module, their uniform average or the base model, whichever predicts them best",
    )
    validation_folds = _bounded(
        "validation_folds", required=False, help_text="for auto and early stopping"
    )
    early_stop = forms.IntegerField(
        **limits.bounds("composition", "early_stop"),
        required=False,
        help_text="optional: stop after this many steps without a lower validation loss",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        base_model = self._chosen_base_model()
        modules = Module.objects.none()
        if base_model is not None:
            modules = compatible_modules(owner=user, base_model=base_model)
        self.fields["modules"].queryset = modules.select_related("owner").order_by(
            "owner__username", "name"
        )

    def _chosen_base_model(self) -> BaseModel | None:
        key = self.data.get("base_model") or self.initial.get("base_model")
        if isinstance(key, BaseModel):
            return key
        if key:
            return BaseModel.objects.filter(pk=key).first() if str(key).isdigit() else None
        return BaseModel.objects.order_by("identifier").first()

    def clean(self):
        data = super().clean()
        data["merge"] = data.get("merge") or DEFAULTS.merge
        data["weight_groups"] = data.get("weight_groups") or DEFAULTS.weight_groups
        for name, required in (("examples", True), ("heldout", False)):
            data[name] = self._parsed(name, required)
        if data.get("selection") == "pick":
            if not data.get("pick"):
                self.add_error("pick", "Say how many modules the hub should pick.")
        elif len(data.get("modules") or []) < 2:
            self.add_error("modules", "Choose at least 2 modules.")
        return data

    def submission(self) -> CompositionSubmission:
        data = self.cleaned_data
        pick = data["pick"] if data["selection"] == "pick" else None
        return CompositionSubmission(
            base_model=data["base_model"],
            examples=data["examples"],
            heldout=data["heldout"],
            modules=[] if pick else list(data["modules"]),
            pick=pick,
            pick_method=data["pick_method"] or DEFAULT_PICK_METHOD,
            name=data["name"],
            **{field: self._setting(field) for field in SETTING_FIELDS},
        )

    def _setting(self, name: str):
        """The value given, or the engine's default for a choice left out (older clients)."""
        value = self.cleaned_data[name]
        if value in (None, "") and name in DEFAULTED_WHEN_EMPTY:
            return getattr(DEFAULTS, name)
        return value
