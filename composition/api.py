"""REST API of composition jobs: /api/v1/compositions/."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    extend_schema,
    extend_schema_field,
)
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.permissions import IsAuthenticated, IsAuthenticatedOrReadOnly
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from composition import services
from composition.engine.types import MERGES, PRESELECT_METHODS, STRATEGY_SETTINGS, Example
from composition.models import CompositionJob, JobStatus
from composition.selectors import (
    candidate_module_ids,
    composition_job_get,
    composition_jobs,
    job_candidates,
)
from hubsite import limits, openapi
from hubsite.api import JobEventOutput, job_limit_error
from modules.api.common import ModuleNameField, field_errors
from modules.downloads import module_zip_response
from modules.models import BaseModel, Module
from modules.selectors import module_visible_to, visible_module_ids

EXAMPLE_REQUEST = {
    "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "modules": ["lorahub/anachronisms", "lorahub/strategyqa", "lorahub/winowhy"],
    "examples": [
        {"input": "Is it plausible? Joao Moutinho caught the screen pass.", "target": "no"},
        {"input": "Is it plausible? Jamal Murray was perfect from the line.", "target": "yes"},
    ],
    "heldout": [{"input": "Is it plausible? Sam Darnold passed the puck.", "target": "no"}],
    "name": "sports-plausibility",
    "steps": 40,
    "l1": 0.05,
    "bound": 1.5,
    "optimizer": "NGOpt",
    "population": 1,
    "seed": 0,
    "max_new_tokens": 16,
    "preselect": None,
    "preselect_method": "loss",
    "strategy": "compose",
    "validation_folds": 5,
    "early_stop": None,
    "merge": "lorahub", "weight_groups": 1,
}  # fmt: skip


class ExampleSerializer(serializers.Serializer):
    input = serializers.CharField(trim_whitespace=False)
    target = serializers.CharField(trim_whitespace=False)


def _setting(name: str, field=serializers.IntegerField) -> serializers.Field:
    """A setting's field: its range from HUB_SETTING_RANGES, its default from the engine."""
    return field(default=getattr(services.DEFAULTS, name), **limits.bounds("composition", name))


class CompositionCreateInput(serializers.Serializer):
    base_model = serializers.CharField(help_text="Hub id of the base model")
    modules = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text='candidate modules, as "owner/name" or id',
    )
    pick = serializers.IntegerField(
        required=False, min_value=2, help_text="instead of modules: let the hub pick k"
    )
    pick_method = serializers.ChoiceField(
        choices=services.PICK_METHODS,
        default=services.DEFAULT_PICK_METHOD,
        help_text="with pick: rank every compatible module by loss alone on the examples (one "
        "forward pass each), by fingerprint against them (retrieval), or pick at random",
    )
    examples = ExampleSerializer(many=True)
    heldout = ExampleSerializer(many=True, required=False, default=list)
    name = ModuleNameField(required=False)
    steps = _setting("steps")
    l1 = _setting("l1", serializers.FloatField)
    bound = _setting("bound", serializers.FloatField)
    optimizer = serializers.CharField(default=services.DEFAULTS.optimizer)
    population = _setting("population")
    seed = serializers.IntegerField(default=services.DEFAULTS.seed, allow_null=True)
    max_new_tokens = _setting("max_new_tokens")
    preselect = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=2,
        help_text="compose only the k best candidates, ranked by preselect_method",
    )
    preselect_method = serializers.ChoiceField(
        choices=PRESELECT_METHODS,
        default=services.DEFAULTS.preselect_method,
        help_text="loss: each candidate alone on the examples (one forward pass each); "
        "retrieval: module fingerprints against the examples (one forward pass in all)",
    )
    strategy = serializers.ChoiceField(
        choices=STRATEGY_SETTINGS,
        default=services.DEFAULTS.strategy,
        help_text="auto: validation on the examples returns the best of the composition, the "
        "best single module, the uniform average and the base model",
    )
    validation_folds = _setting("validation_folds")
    early_stop = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        **limits.bounds("composition", "early_stop"),
        help_text="stop the search after this many steps without a lower validation loss",
    )
    merge = serializers.ChoiceField(choices=MERGES, default=services.DEFAULTS.merge, help_text=(
        '"lorahub" (the paper\'s; one rank and scaling) or "exact": ΔW = Σ wᵢ·sᵢ·BᵢAᵢ, any ranks'
    ))  # fmt: skip
    weight_groups = _setting("weight_groups")

    def validate_base_model(self, value: str) -> BaseModel:
        base_model = BaseModel.objects.filter(identifier=value).first()
        if base_model is None:
            raise serializers.ValidationError(f"unknown base model {value!r}")
        return base_model

    def validate(self, data):
        if bool(data.get("modules")) == ("pick" in data):
            raise serializers.ValidationError({"modules": "give either modules or pick, not both"})
        if data.get("modules"):
            data["modules"] = resolve_modules(data["modules"], self.context["request"].user)
        return data

    def submission(self) -> services.CompositionSubmission:
        data = dict(self.validated_data)
        data["examples"] = [Example(**e) for e in data["examples"]]
        data["heldout"] = [Example(**e) for e in data["heldout"]]
        return services.CompositionSubmission(**data)


def resolve_modules(references: list[str], user) -> list[Module]:
    visible = module_visible_to(user)
    modules, unknown = [], []
    for reference in references:
        owner, _, name = reference.partition("/")
        if name:
            found = visible.filter(owner__username=owner, name__iexact=name).first()
        else:
            found = visible.filter(pk=int(reference)).first() if reference.isdigit() else None
        if found is None:
            unknown.append(reference)
        modules.append(found)
    if unknown:
        raise serializers.ValidationError({"modules": [f"unknown module {r!r}" for r in unknown]})
    return modules


class CandidateOutput(serializers.Serializer):
    module = serializers.CharField(
        allow_null=True, help_text='"owner/name"; null when the module is private or was deleted'
    )
    visible = serializers.BooleanField()
    deleted = serializers.BooleanField()
    weight = serializers.FloatField(allow_null=True)
    group_weights = serializers.ListField(child=serializers.FloatField(), help_text=(
        "with weight_groups > 1: one weight per group of layers (weight is their mean)"
    ))  # fmt: skip
    selected = serializers.BooleanField(allow_null=True)
    solo_loss = serializers.FloatField(allow_null=True)
    retrieval_score = serializers.FloatField(allow_null=True)


class StrategyOutput(serializers.Serializer):
    requested = serializers.CharField(help_text='"compose" or "auto"')
    chosen = serializers.CharField(allow_null=True, help_text="null until an auto job finished")
    reason = serializers.CharField(allow_blank=True)
    validation_loss = serializers.DictField(
        child=serializers.FloatField(), help_text="per strategy, on the examples' folds"
    )


class CompositionOutput(serializers.ModelSerializer):
    events = JobEventOutput(many=True, read_only=True)
    url = serializers.SerializerMethodField()
    html_url = serializers.SerializerMethodField()
    base_model = serializers.CharField(source="base_model.identifier")
    progress = serializers.FloatField()
    candidates = serializers.SerializerMethodField()
    result_module = serializers.SerializerMethodField()
    adapter_url = serializers.SerializerMethodField()
    settings = serializers.SerializerMethodField()
    timings = serializers.SerializerMethodField()
    strategy = serializers.SerializerMethodField()
    example_count = serializers.SerializerMethodField()

    class Meta:
        model = CompositionJob
        fields = [
            "id", "url", "html_url", "name", "status", "base_model", "created_at", "started_at",
            "finished_at", "heartbeat_at", "worker_host", "device", "error_message",
            "current_step", "steps", "progress", "scored_candidates", "best_loss",
            "loss_history", "settings",
            "picked_at_random", "candidates", "example_count", "accuracy", "zero_shot_accuracy",
            "predictions", "timings", "strategy", "result_module", "adapter_url", "attempt",
            "events",
        ]  # fmt: skip

    def get_url(self, job) -> str:
        return reverse("api-composition-detail", args=[job.pk], request=self.context.get("request"))

    def get_html_url(self, job) -> str:
        return self.context["request"].build_absolute_uri(job.get_absolute_url())

    @extend_schema_field(CandidateOutput(many=True))
    def get_candidates(self, job) -> list[dict]:
        rows = job_candidates(
            job=job,
            user=self.context["request"].user,
            visible=self.context.get("visible_module_ids"),
        )
        return [
            {
                "module": row.name,
                "visible": row.visible,
                "deleted": row.deleted,
                "weight": row.weight,
                "group_weights": row.group_weights,
                "selected": row.selected,
                "solo_loss": row.solo_loss,
                "retrieval_score": row.retrieval_score,
            }
            for row in rows
        ]

    def get_result_module(self, job) -> str | None:
        return job.result_module.full_name if job.result_module else None

    def get_adapter_url(self, job) -> str | None:
        if not job.result_module:
            return None
        return reverse(
            "api-composition-adapter", args=[job.pk], request=self.context.get("request")
        )

    def get_settings(self, job) -> dict:
        return {f: getattr(job, f) for f in services.SETTING_FIELDS}

    def get_timings(self, job) -> dict:
        return {
            "warm_start": job.warm_start,
            "load_seconds": job.load_seconds,
            "select_seconds": job.select_seconds,
            "optimize_seconds": job.optimize_seconds,
            "evaluate_seconds": job.evaluate_seconds,
            "validate_seconds": job.validate_seconds,
        }

    @extend_schema_field(StrategyOutput)
    def get_strategy(self, job) -> dict:
        return {
            "requested": job.strategy,
            "chosen": job.chosen_strategy or None,
            "reason": job.strategy_reason,
            "validation_loss": job.strategy_scores,
        }

    def get_example_count(self, job) -> dict:
        return {"examples": len(job.examples), "heldout": len(job.heldout)}


def visible_job(request, job_id: int) -> CompositionJob:
    """The owner sees their jobs; anyone sees a job whose result was published."""
    try:
        return composition_job_get(job_id=job_id, user=request.user)
    except CompositionJob.DoesNotExist as exc:
        raise NotFound(f"No composition {job_id}.") from exc


class CompositionListCreateApi(generics.ListAPIView):
    """Your compositions (newest first), or submit a new one."""

    serializer_class = CompositionOutput
    permission_classes = [IsAuthenticated]
    filterset_fields = ["status"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema, built without a user
            return CompositionJob.objects.none()
        jobs = composition_jobs().filter(owner=self.request.user)
        base_model = self.request.query_params.get("base_model")
        if base_model:
            jobs = jobs.filter(base_model__identifier=base_model)
        return jobs

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        # Which candidates the user may see, for the whole page at once.
        visible = visible_module_ids(user=request.user, module_ids=candidate_module_ids(page))
        context = {**self.get_serializer_context(), "visible_module_ids": visible}
        return self.get_paginated_response(CompositionOutput(page, many=True, context=context).data)

    @extend_schema(
        request=CompositionCreateInput,
        responses={201: CompositionOutput, 429: openapi.error("too many active compositions")},
        examples=[
            OpenApiExample("Compose three modules", value=EXAMPLE_REQUEST, request_only=True)
        ],
        description="Queue a composition. Returns the job; poll its `url` for progress. "
        "400 with field errors for bad input, 429 when you have too many active jobs.",
    )
    def post(self, request):
        payload = CompositionCreateInput(data=request.data, context={"request": request})
        payload.is_valid(raise_exception=True)
        try:
            job = services.composition_submit(owner=request.user, submission=payload.submission())
        except DjangoValidationError as exc:
            raise field_errors(exc) from exc
        except services.JobLimitExceeded as exc:
            raise job_limit_error(exc) from exc
        output = CompositionOutput(job, context={"request": request})
        return Response(output.data, status=status.HTTP_201_CREATED)


class CompositionDetailApi(APIView):
    permission_classes = [IsAuthenticatedOrReadOnly]

    @extend_schema(responses=CompositionOutput)
    def get(self, request, job_id: int):
        job = visible_job(request, job_id)
        return Response(CompositionOutput(job, context={"request": request}).data)


class CompositionCancelApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None,
        responses={200: CompositionOutput, 409: openapi.error("the job has already ended")},
    )
    def post(self, request, job_id: int):
        """Cancel: a queued job stops at once, a running one after its current step."""
        job = visible_job(request, job_id)
        if job.owner_id != request.user.pk:
            raise PermissionDenied("Only the job's owner can cancel it.")
        try:
            job = services.composition_cancel(job=job)
        except services.JobStateError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(CompositionOutput(job, context={"request": request}).data)


class CompositionAdapterApi(APIView):
    permission_classes = [IsAuthenticatedOrReadOnly]

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY})
    def get(self, request, job_id: int):
        """The composed adapter as a zip of its PEFT folder."""
        job = visible_job(request, job_id)
        if job.status != JobStatus.SUCCEEDED or job.result_module is None:
            raise NotFound("This composition has no adapter (yet).")
        return module_zip_response(job.result_module)
