"""Forms of the registry's pages."""

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from hubsite.forms import PrintableErrors
from modules.cards import split_tags
from modules.models import (
    MODULE_NAME_PATTERN,
    BaseModel,
    Module,
    module_name_validator,
    refuse_surrounding_whitespace,
)
from modules.selectors import RELEVANCE, SORTS, ModuleFilters

COMMON_LICENSES = [
    "apache-2.0", "mit", "bsd-3-clause", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0",
    "openrail", "llama3", "gemma", "other",
]  # fmt: skip
SORT_LABELS = {
    RELEVANCE: "Best match",
    "downloads": "Most downloaded",
    "likes": "Most liked",
    "newest": "Newest",
    "updated": "Recently updated",
}


class ModuleNameField(forms.RegexField):
    """A module name as typed: spaces around it are refused, not trimmed away."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 96)
        kwargs.setdefault("error_messages", {"invalid": module_name_validator.message})
        super().__init__(MODULE_NAME_PATTERN, **kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        refuse_surrounding_whitespace(value)
        return value


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field: an adapter's files, or one .zip of its folder."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class TagsField(forms.CharField):
    """Tags typed as one comma-separated line, cleaned to slugs."""

    def to_python(self, value):
        return split_tags(super().to_python(value))

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list | tuple) else value


class ModuleUploadForm(PrintableErrors, forms.Form):
    files = MultipleFileField(
        label="Adapter files",
        help_text="adapter_config.json and adapter_model.safetensors (or adapter_model.bin), "
        "optionally README.md — or one .zip of the adapter folder.",
    )
    name = ModuleNameField(
        help_text="Published as your-name/this-name. Letters, digits, '.', '_' and '-'.",
    )
    base_model = forms.ModelChoiceField(
        queryset=BaseModel.objects.all(),
        to_field_name="identifier",
        required=False,
        empty_label="Detect from adapter_config.json",
    )
    description = forms.CharField(
        max_length=300, required=False, help_text="One line for lists and search results."
    )
    tags = TagsField(required=False, help_text="Comma-separated, e.g. sentiment, reviews.")
    license = forms.CharField(
        max_length=64,
        required=False,
        widget=forms.TextInput(attrs={"list": "licenses"}),
        help_text="An SPDX-style id such as apache-2.0; the card's license when empty.",
    )
    visibility = forms.ChoiceField(
        choices=Module.Visibility.choices,
        initial=Module.Visibility.PUBLIC,
        widget=forms.RadioSelect,
        help_text="A private module is visible to you alone.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        limit = filesizeformat(settings.HUB_MAX_UPLOAD_BYTES).replace("\xa0", " ")
        self.fields["files"].help_text += f" Up to {limit} in all."


class ModuleEditForm(PrintableErrors, forms.Form):
    description = forms.CharField(max_length=300, required=False)
    tags = TagsField(required=False, help_text="Comma-separated; written into the card too.")
    license = forms.CharField(
        max_length=64, required=False, widget=forms.TextInput(attrs={"list": "licenses"})
    )
    visibility = forms.ChoiceField(choices=Module.Visibility.choices, widget=forms.RadioSelect)
    card = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 18, "spellcheck": "false"}),
        help_text="README.md: YAML front matter (base_model, tags, license, datasets…), "
        "then Markdown.",
    )

    def clean_card(self) -> str:
        # Browsers send text areas with CRLF line ends; the card keeps LF.
        return self.cleaned_data["card"].replace("\r\n", "\n")


class ModuleSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    base_model = forms.ModelChoiceField(
        queryset=BaseModel.objects.all(),
        to_field_name="identifier",
        required=False,
        empty_label="Any base model",
    )
    task_type = forms.ChoiceField(
        choices=[("", "Any task"), *BaseModel.TaskType.choices], required=False
    )
    rank = forms.TypedChoiceField(
        choices=[("", "Any rank")] + [(str(r), f"r = {r}") for r in (1, 2, 4, 8, 16, 32, 64, 128)],
        coerce=int,
        empty_value=None,
        required=False,
    )
    tag = forms.SlugField(required=False)
    owner = forms.CharField(required=False, max_length=150)
    license = forms.CharField(required=False, max_length=64)
    sort = forms.ChoiceField(
        choices=[(key, SORT_LABELS[key]) for key in (RELEVANCE, *SORTS)], required=False
    )

    def search_arguments(self) -> dict:
        """Keyword arguments of ``module_search`` for the form's (bound) data."""
        # An invalid filter (rank=abc) is left out; the valid ones still apply.
        self.is_valid()
        data = self.cleaned_data
        base_model = data.get("base_model")
        sort = data.get("sort") or ""
        return {
            "query": data.get("q") or "",
            "filters": ModuleFilters(
                base_model=base_model.identifier if base_model else "",
                task_type=data.get("task_type") or "",
                rank=data.get("rank"),
                tag=data.get("tag") or "",
                owner=data.get("owner") or "",
                license=data.get("license") or "",
            ),
            "sort": "" if sort == RELEVANCE else sort,
        }
