"""Importing from a Hugging Face Hub: the web form, the job page and the REST API."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from hubsite import openapi
from hubsite.api import JobEventOutput
from hubsite.forms import PrintableErrors
from hubsite.job_runs import JobStateError
from modules.api.common import field_errors
from modules.hub_import_jobs import import_job_cancel, import_job_submit
from modules.models import BaseModel, ImportJob, Module

RECENT_JOBS = 20


class HubImportForm(PrintableErrors, forms.Form):
    repo_ids = forms.CharField(
        label="Repositories",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": "lorahub/flan_t5_large-anli_r1"}),
        help_text="One repository id (owner/name) per line.",
    )
    author = forms.CharField(
        label="…or every repository of",
        required=False,
        max_length=96,
        help_text="A user or organisation on the endpoint, e.g. lorahub.",
    )
    endpoint = forms.ChoiceField(label="From")
    visibility = forms.ChoiceField(
        choices=Module.Visibility.choices, initial=Module.Visibility.PUBLIC
    )
    base_model = forms.ChoiceField(
        label="Base model",
        required=False,
        help_text="Take every adapter for this base model: its adapter_config.json is "
        "rewritten to name it, as its card and page will.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["endpoint"].choices = [(url, url) for url in settings.HUB_IMPORT_ENDPOINTS]
        self.fields["base_model"].choices = [
            ("", "the one each adapter names"),
            *((i, i) for i in BaseModel.objects.values_list("identifier", flat=True)),
        ]

    def repo_id_list(self) -> list[str]:
        return self.cleaned_data["repo_ids"].replace(",", " ").split()


def _own_job(request, job_id: int) -> ImportJob:
    job = ImportJob.objects.select_related("owner").filter(pk=job_id).first()
    if job is None or job.owner_id != request.user.pk:
        raise Http404(f"No import {job_id}")
    return job


@login_required
@require_http_methods(["GET", "POST"])
def hub_import_page(request):
    form = HubImportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = import_job_submit(
                owner=request.user,
                repo_ids=form.repo_id_list(),
                author=form.cleaned_data["author"],
                endpoint=form.cleaned_data["endpoint"],
                visibility=form.cleaned_data["visibility"],
                base_model=form.cleaned_data["base_model"],
            )
        except DjangoValidationError as exc:
            for field, errors in exc.message_dict.items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
        else:
            messages.success(request, "Import queued; this page follows its progress.")
            return redirect(job)
    jobs = ImportJob.objects.filter(owner=request.user)[:RECENT_JOBS]
    status = 400 if request.method == "POST" else 200
    return render(request, "modules/hub_import.html", {"form": form, "jobs": jobs}, status=status)


@login_required
def hub_import_job_page(request, job_id: int):
    return render(request, "modules/hub_import_job.html", {"job": _own_job(request, job_id)})


@login_required
@require_POST
def hub_import_cancel(request, job_id: int):
    job = _own_job(request, job_id)
    try:
        import_job_cancel(job=job)
    except JobStateError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, "Cancellation requested: the import stops before its next repository."
        )
    return redirect(job)


# --- API ----------------------------------------------------------------------------


class HubImportInput(serializers.Serializer):
    repo_ids = serializers.ListField(
        child=serializers.CharField(), required=False, default=list, help_text="owner/name ids"
    )
    author = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="import all of this author"
    )
    endpoint = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="one of HUB_IMPORT_ENDPOINTS; the first by default",
    )
    visibility = serializers.ChoiceField(
        choices=Module.Visibility.choices, default=Module.Visibility.PUBLIC
    )
    base_model = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="a registered base model to take every adapter for, its adapter_config.json "
        "rewritten to name it; blank: the one each adapter names",
    )


class HubImportResultOutput(serializers.Serializer):
    repo_id = serializers.CharField()
    status = serializers.CharField(help_text="imported, skipped or failed")
    module = serializers.CharField(allow_null=True)
    message = serializers.CharField()
    revision = serializers.CharField(
        default="", help_text="the commit the endpoint reported for the files imported"
    )


class HubImportOutput(serializers.ModelSerializer):
    events = JobEventOutput(many=True, read_only=True)
    url = serializers.SerializerMethodField()
    html_url = serializers.SerializerMethodField()
    total = serializers.IntegerField()
    completed = serializers.IntegerField()
    progress = serializers.FloatField()
    imported = serializers.IntegerField(source="imported_count")
    skipped = serializers.IntegerField(source="skipped_count")
    failed = serializers.IntegerField(source="failed_count")
    results = HubImportResultOutput(many=True)
    base_model = serializers.SlugRelatedField(
        slug_field="identifier", read_only=True, allow_null=True
    )

    class Meta:
        model = ImportJob
        fields = [
            "id", "url", "html_url", "status", "endpoint", "author", "repo_ids", "visibility",
            "base_model", "created_at", "started_at", "finished_at", "heartbeat_at", "worker_host",
            "current_repo", "total", "completed", "progress", "imported", "skipped", "failed",
            "results", "error_message", "attempt", "events",
        ]  # fmt: skip

    def get_url(self, job) -> str:
        return reverse("api-import-detail", args=[job.pk], request=self.context.get("request"))

    def get_html_url(self, job) -> str:
        return self.context["request"].build_absolute_uri(job.get_absolute_url())


class HubImportCollectionApi(generics.ListAPIView):
    """Your imports (newest first), or start one."""

    serializer_class = HubImportOutput
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema is built without a user
            return ImportJob.objects.none()
        return ImportJob.objects.filter(owner=self.request.user)

    @extend_schema(
        request=HubImportInput,
        responses={201: HubImportOutput},
        examples=[
            OpenApiExample(
                "Two of the LoraHub paper's modules",
                value={"repo_ids": ["lorahub/flan_t5_large-anli_r1", "lorahub/flan_t5_large-qnli"]},
                request_only=True,
            ),
            OpenApiExample("An organisation", value={"author": "lorahub"}, request_only=True),
        ],
        description="Queue an import of modules from a Hugging Face Hub compatible endpoint. "
        "Poll the job's `url` for progress and per-repository results.",
    )
    def post(self, request):
        payload = HubImportInput(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            job = import_job_submit(owner=request.user, **payload.validated_data)
        except DjangoValidationError as exc:
            raise field_errors(exc) from exc
        output = HubImportOutput(job, context={"request": request})
        return Response(output.data, status=status.HTTP_201_CREATED)


class HubImportDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=HubImportOutput)
    def get(self, request, job_id: int):
        """An import's progress and its result per repository (yours only)."""
        try:
            job = _own_job(request, job_id)
        except Http404 as exc:
            raise NotFound(f"No import {job_id}.") from exc
        return Response(HubImportOutput(job, context={"request": request}).data)


class HubImportCancelApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None,
        responses={200: HubImportOutput, 409: openapi.error("the import has already ended")},
    )
    def post(self, request, job_id: int):
        """Cancel an import: a queued one at once, a running one before its next repository."""
        try:
            job = _own_job(request, job_id)
        except Http404 as exc:
            raise NotFound(f"No import {job_id}.") from exc
        try:
            job = import_job_cancel(job=job)
        except JobStateError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(HubImportOutput(job, context={"request": request}).data)
