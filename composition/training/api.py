"""REST API of module training: /api/v1/trainings/."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated, IsAuthenticatedOrReadOnly
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from composition.api import ExampleSerializer
from composition.engine.examples import FORMATS, guess_format, parse_examples
from composition.engine.types import Example
from composition.models import TrainingJob
from composition.training import selectors, services
from composition.training.forms import MAX_TRAINING_FILE_BYTES
from hubsite import limits, openapi
from hubsite.api import JobEventOutput, job_limit_error
from modules.api.common import ModuleNameField, field_errors
from modules.models import BaseModel

DEFAULTS = services.DEFAULTS


def _setting(name: str, field=serializers.IntegerField) -> serializers.Field:
    """A setting's field: its range from HUB_SETTING_RANGES, its default from the engine."""
    return field(default=getattr(DEFAULTS, name), **limits.bounds("training", name))


EXAMPLE_REQUEST = {
    "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "name": "sports-plausibility",
    "examples": [
        {"input": "Is it plausible? Joao Moutinho caught the screen pass.", "target": "no"},
        {"input": "Is it plausible? Jamal Murray was perfect from the line.", "target": "yes"},
        {"input": "Is it plausible? Sam Darnold passed the puck.", "target": "no"},
    ],
    "steps": 100, "rank": 16, "alpha": 32, "dropout": 0.1, "learning_rate": 0.001,
    "batch_size": 8, "warmup_steps": 10, "max_length": 256, "seed": 0,
    "target_modules": ["q_proj", "v_proj"], "public": False,
}  # fmt: skip


class TrainingCreateInput(serializers.Serializer):
    base_model = serializers.CharField(help_text="Hub id of the base model")
    name = ModuleNameField(help_text="name of the new module (yours)")
    examples = ExampleSerializer(many=True, required=False)
    data = serializers.FileField(
        required=False, help_text="instead of examples: a .jsonl, .csv or .tsv file (multipart)"
    )
    public = serializers.BooleanField(default=False, help_text="publish the module when trained")
    steps = _setting("steps")
    rank = _setting("rank")
    alpha = _setting("alpha")
    dropout = _setting("dropout", serializers.FloatField)
    learning_rate = _setting("learning_rate", serializers.FloatField)
    batch_size = _setting("batch_size")
    warmup_steps = _setting("warmup_steps")
    max_length = _setting("max_length")
    seed = _setting("seed")
    target_modules = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        default=list,
        help_text="layer names; empty: the family's usual attention projections",
    )

    def validate_base_model(self, value: str) -> BaseModel:
        base_model = BaseModel.objects.filter(identifier=value).first()
        if base_model is None:
            raise serializers.ValidationError(f"unknown base model {value!r}")
        return base_model

    def validate_data(self, upload) -> dict:
        if upload.size > MAX_TRAINING_FILE_BYTES:
            raise serializers.ValidationError(
                f"the file is larger than {MAX_TRAINING_FILE_BYTES // 2**20} MB"
            )
        fmt = guess_format(upload.name or "")
        if fmt not in FORMATS:
            raise serializers.ValidationError("use a .jsonl, .csv or .tsv file")
        try:
            text = upload.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise serializers.ValidationError("the file is not UTF-8 text") from exc
        examples, errors = parse_examples(text, fmt)
        if errors:
            listed = [str(e) for e in errors[:10]]
            if len(errors) > 10:
                listed.append(f"… and {len(errors) - 10} more rows with errors")
            raise serializers.ValidationError(listed)
        return {"examples": examples, "source": f"uploaded file `{upload.name}`"}

    def validate(self, data):
        if ("examples" in data) == ("data" in data):
            raise serializers.ValidationError(
                {"examples": "give either examples (JSON) or a data file, not both or neither"}
            )
        return data

    def submission(self) -> services.TrainingSubmission:
        data = dict(self.validated_data)
        if "data" in data:
            parsed = data.pop("data")
            examples, source = parsed["examples"], parsed["source"]
        else:
            examples = [Example(**e) for e in data.pop("examples")]
            source = f"{len(examples)} examples sent through the API"
        return services.TrainingSubmission(examples=examples, data_source=source, **data)


class TrainingOutput(serializers.ModelSerializer):
    events = JobEventOutput(many=True, read_only=True)
    url = serializers.SerializerMethodField()
    html_url = serializers.SerializerMethodField()
    cancel_url = serializers.SerializerMethodField()
    owner = serializers.CharField(source="owner.username")
    base_model = serializers.CharField(source="base_model.identifier")
    progress = serializers.FloatField()
    current_loss = serializers.FloatField(allow_null=True)
    example_count = serializers.SerializerMethodField()
    settings = serializers.SerializerMethodField()
    result_module = serializers.SerializerMethodField()

    class Meta:
        model = TrainingJob
        fields = [
            "id", "url", "html_url", "cancel_url", "owner", "name", "status", "base_model",
            "created_at", "started_at", "finished_at", "heartbeat_at", "worker_host", "device",
            "error_message", "current_step", "steps", "progress", "current_loss", "final_loss",
            "loss_history", "train_seconds", "data_source", "example_count", "settings",
            "result_module", "attempt", "events",
        ]  # fmt: skip

    def get_url(self, job) -> str:
        return reverse("api-training-detail", args=[job.pk], request=self.context.get("request"))

    def get_html_url(self, job) -> str:
        return self.context["request"].build_absolute_uri(job.get_absolute_url())

    def get_cancel_url(self, job) -> str:
        return reverse("api-training-cancel", args=[job.pk], request=self.context.get("request"))

    def get_example_count(self, job) -> int:
        return len(job.examples)

    def get_settings(self, job) -> dict:
        fields = (
            "rank", "alpha", "dropout", "target_modules", "steps", "batch_size",
            "learning_rate", "warmup_steps", "max_length", "seed",
        )  # fmt: skip
        return {"public": job.make_public, **{f: getattr(job, f) for f in fields}}

    def get_result_module(self, job) -> str | None:
        return job.result_module.full_name if job.result_module else None


def _visible_job(request, job_id: int) -> TrainingJob:
    job = selectors.training_job_visible(user=request.user, job_id=job_id)
    if job is None:
        raise NotFound(f"No training job {job_id}.")
    return job


class TrainingListCreateApi(generics.ListAPIView):
    """Your training jobs (newest first), or submit a new one."""

    serializer_class = TrainingOutput
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    filterset_fields = ["status"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema is built without a user
            return TrainingJob.objects.none()
        return selectors.training_jobs_of(user=self.request.user)

    @extend_schema(
        request={
            "application/json": TrainingCreateInput,
            "multipart/form-data": TrainingCreateInput,
        },
        responses={201: TrainingOutput, 429: openapi.error("too many active trainings")},
        examples=[
            OpenApiExample(
                "Train on three examples",
                value=EXAMPLE_REQUEST,
                request_only=True,
                media_type="application/json",
            )
        ],
        description="Queue the training of a new LoRA module on a `gpu` worker. Send the "
        "examples as JSON, or a `data` file (.jsonl, .csv, .tsv) as multipart. Returns the job; "
        "poll its `url` for progress and the loss of every step. 400 with field errors for bad "
        "input, 429 when you have too many queued or running trainings.",
    )
    def post(self, request):
        payload = TrainingCreateInput(data=request.data, context={"request": request})
        payload.is_valid(raise_exception=True)
        try:
            job = services.training_submit(owner=request.user, submission=payload.submission())
        except DjangoValidationError as exc:
            raise field_errors(exc) from exc
        except services.JobLimitExceeded as exc:
            raise job_limit_error(exc) from exc
        output = TrainingOutput(job, context={"request": request})
        return Response(output.data, status=status.HTTP_201_CREATED)


class TrainingDetailApi(APIView):
    permission_classes = [IsAuthenticatedOrReadOnly]

    @extend_schema(responses=TrainingOutput)
    def get(self, request, job_id: int):
        """A training job: status, step, loss history and, when done, the module."""
        return Response(
            TrainingOutput(_visible_job(request, job_id), context={"request": request}).data
        )


class TrainingCancelApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None,
        responses={200: TrainingOutput, 409: openapi.error("the job has already ended")},
    )
    def post(self, request, job_id: int):
        """Cancel: a queued job stops at once, a running one after its current step."""
        job = _visible_job(request, job_id)
        if job.owner_id != request.user.pk:
            raise PermissionDenied("Only the job's owner can cancel it.")
        try:
            job = services.training_cancel(job=job)
        except services.JobStateError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(TrainingOutput(job, context={"request": request}).data)
