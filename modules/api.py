"""REST API of the registry.

Each view serves one resource; each HTTP method on it is one action that
validates its input with its own serializer, calls one selector or service
and returns its own output serializer. Private modules answer 404 to anyone
but their owner, so their existence does not leak.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from hubsite import openapi
from modules.cards import split_tags
from modules.downloads import module_file_response, module_zip_response
from modules.models import (
    MODULE_NAME_PATTERN,
    BaseModel,
    Module,
    ModuleFile,
    module_name_validator,
    refuse_surrounding_whitespace,
)
from modules.pagination import ModulePagination
from modules.selectors import (
    RELEVANCE,
    SORTS,
    ModuleFilters,
    base_model_list,
    module_get,
    module_liked_by,
    module_search,
    module_sources,
    module_used_in,
    tag_list,
)
from modules.services import (
    ModuleDuplicate,
    module_delete,
    module_like,
    module_unlike,
    module_update,
    module_upload,
)

# --- Base models ----------------------------------------------------------------


class BaseModelOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = BaseModel
        fields = [
            "id",
            "identifier",
            "family",
            "task_type",
            "hidden_size",
            "num_layers",
            "parameter_count",
            "linear_shapes",
            "description",
            "created_at",
            "updated_at",
        ]


class BaseModelListApi(generics.ListAPIView):
    """Base models that modules on the hub adapt."""

    serializer_class = BaseModelOutputSerializer
    filterset_fields = ["family", "task_type"]

    def get_queryset(self):
        return base_model_list()


class BaseModelDetailApi(generics.RetrieveAPIView):
    """One base model, by its Hub identifier (``owner/name``)."""

    serializer_class = BaseModelOutputSerializer
    lookup_field = "identifier"

    def get_queryset(self):
        return base_model_list()


# --- Helpers --------------------------------------------------------------------


def visible_module(request, owner: str, name: str) -> Module:
    try:
        return module_get(owner=owner, name=name, user=request.user)
    except Module.DoesNotExist as exc:
        raise NotFound(f"No module {owner}/{name}.") from exc


def owned_module(request, owner: str, name: str) -> Module:
    module = visible_module(request, owner, name)
    if module.owner_id != request.user.pk:
        raise PermissionDenied(f"Only {module.owner.username} can change {module.full_name}.")
    return module


def field_errors(exc: DjangoValidationError) -> serializers.ValidationError:
    """A service's ValidationError as DRF's 400 with errors per field."""
    return serializers.ValidationError(
        exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
    )


class ModuleNameField(serializers.RegexField):
    """A module name as sent: spaces around it are refused, not trimmed away."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 96)
        kwargs.setdefault("error_messages", {"invalid": module_name_validator.message})
        super().__init__(MODULE_NAME_PATTERN, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            refuse_surrounding_whitespace(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc
        return value


class TagsField(serializers.ListField):
    """Tags as repeated fields or a list; each item may hold several, comma-separated."""

    child = serializers.CharField(max_length=200)

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = [data]
        items = super().to_internal_value(data)
        return [tag for item in items for tag in split_tags(item)]


# --- Output -----------------------------------------------------------------------


class ModuleFileOutputSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ModuleFile
        fields = ["filename", "size", "sha256", "download_url"]

    def get_download_url(self, file: ModuleFile) -> str:
        module = file.module
        path = reverse("api-module-file", args=[module.owner.username, module.name, file.filename])
        return self.context["request"].build_absolute_uri(path)


class ModuleOutputSerializer(serializers.ModelSerializer):
    full_name = serializers.CharField(read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)
    base_model = serializers.CharField(source="base_model.identifier", read_only=True)
    rank = serializers.IntegerField(source="r", read_only=True)
    tags = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    html_url = serializers.SerializerMethodField()

    class Meta:
        model = Module
        fields = [
            "full_name",
            "owner",
            "name",
            "base_model",
            "task_type",
            "rank",
            "lora_alpha",
            "target_modules",
            "parameter_count",
            "total_size",
            "license",
            "visibility",
            "description",
            "tags",
            "download_count",
            "like_count",
            "created_at",
            "updated_at",
            "url",
            "html_url",
        ]

    def get_tags(self, module: Module) -> list[str]:
        return [tag.slug for tag in module.tags.all()]

    def get_url(self, module: Module) -> str:
        path = reverse("api-module-detail", args=[module.owner.username, module.name])
        return self.context["request"].build_absolute_uri(path)

    def get_html_url(self, module: Module) -> str:
        return self.context["request"].build_absolute_uri(module.get_absolute_url())


class ModuleSourceOutputSerializer(serializers.Serializer):
    full_name = serializers.CharField(
        allow_null=True, help_text="null when the source is private or was deleted"
    )
    weight = serializers.FloatField()
    visible = serializers.BooleanField()
    deleted = serializers.BooleanField()


class ModuleUseOutputSerializer(serializers.Serializer):
    full_name = serializers.CharField()
    weight = serializers.FloatField(help_text="weight of this module in the composition")


class ModuleDetailOutputSerializer(ModuleOutputSerializer):
    files = ModuleFileOutputSerializer(many=True, read_only=True)
    download_url = serializers.SerializerMethodField()
    sources = serializers.SerializerMethodField()
    used_in = serializers.SerializerMethodField()
    liked = serializers.SerializerMethodField()

    class Meta(ModuleOutputSerializer.Meta):
        fields = [
            *ModuleOutputSerializer.Meta.fields,
            "card",
            "datasets",
            "adapter_config",
            "files",
            "download_url",
            "sources",
            "used_in",
            "liked",
        ]

    def get_download_url(self, module: Module) -> str:
        path = reverse("api-module-download", args=[module.owner.username, module.name])
        return self.context["request"].build_absolute_uri(path)

    @extend_schema_field(ModuleSourceOutputSerializer(many=True))
    def get_sources(self, module: Module) -> list[dict]:
        user = self.context["request"].user
        return [
            {
                "full_name": row["name"],
                "weight": row["weight"],
                "visible": row["module"] is not None,
                "deleted": row["deleted"],
            }
            for row in module_sources(module=module, user=user)
        ]

    @extend_schema_field(ModuleUseOutputSerializer(many=True))
    def get_used_in(self, module: Module) -> list[dict]:
        user = self.context["request"].user
        return [
            {"full_name": composed.full_name, "weight": composed.source_weight}
            for composed in module_used_in(module=module, user=user)
        ]

    def get_liked(self, module: Module) -> bool:
        return module_liked_by(module=module, user=self.context["request"].user)


# --- Modules ----------------------------------------------------------------------

SORT_CHOICES = [RELEVANCE, *SORTS]


class ModuleSearchInputSerializer(serializers.Serializer):
    search = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="words in name, tags or description",
    )
    base_model = serializers.CharField(required=False, help_text="base model identifier")
    task_type = serializers.ChoiceField(choices=BaseModel.TaskType.choices, required=False)
    rank = serializers.IntegerField(required=False, min_value=1)
    tag = serializers.CharField(required=False)
    owner = serializers.CharField(required=False, help_text="username")
    license = serializers.CharField(required=False)
    sort = serializers.ChoiceField(
        choices=SORT_CHOICES,
        required=False,
        help_text="relevance (the default with a search), downloads (the default without), "
        "likes, newest or updated",
    )


class ModuleUploadInputSerializer(serializers.Serializer):
    name = ModuleNameField(help_text="the module is published as owner/name")
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=False, use_url=False),
        allow_empty=False,
        help_text="adapter_config.json and adapter_model.safetensors (or adapter_model.bin), "
        "optionally README.md; or one .zip of the adapter folder",
    )
    base_model = serializers.SlugRelatedField(
        slug_field="identifier",
        queryset=BaseModel.objects.all(),
        required=False,
        allow_null=True,
        help_text="detected from adapter_config.json (base_model_name_or_path) when omitted",
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=300)
    tags = TagsField(required=False)
    license = serializers.CharField(required=False, allow_blank=True, max_length=64)
    visibility = serializers.ChoiceField(
        choices=Module.Visibility.choices, default=Module.Visibility.PUBLIC
    )


class ModuleUpdateInputSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True, max_length=300)
    card = serializers.CharField(
        required=False, allow_blank=True, help_text="README.md with YAML front matter"
    )
    tags = TagsField(required=False)
    license = serializers.CharField(required=False, allow_blank=True, max_length=64)
    visibility = serializers.ChoiceField(choices=Module.Visibility.choices, required=False)


DUPLICATE_RESPONSE = inline_serializer(
    "ModuleDuplicate",
    fields={"detail": serializers.CharField(), "existing": serializers.URLField()},
)
UPLOAD_EXAMPLE = OpenApiExample(
    "Upload an adapter folder",
    description="curl -H 'Authorization: Token …' -F name=sst2-sentiment "
    "-F base_model=HuggingFaceTB/SmolLM2-135M-Instruct -F tags=sentiment "
    "-F files=@adapter_config.json -F files=@adapter_model.safetensors "
    "-F files=@README.md http://127.0.0.1:8000/api/v1/modules/",
    value={
        "name": "sst2-sentiment",
        "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "tags": ["sentiment"],
        "files": ["adapter_config.json", "adapter_model.safetensors", "README.md"],
    },
    request_only=True,
    media_type="multipart/form-data",
)
INVALID_EXAMPLE = OpenApiExample(
    "Adapter that does not fit its base model",
    value={
        "files": [
            "adapter_model.safetensors: tensor 'base_model.model.model.layers.0.self_attn."
            "v_proj.lora_B.weight' has shape [576, 8]; expected [192, 8] (v_proj of "
            "HuggingFaceTB/SmolLM2-135M-Instruct is 576 → 192)"
        ]
    },
    response_only=True,
    status_codes=["400"],
)


class ModuleCollectionApi(APIView):
    """Modules: search, filter, sort and page through them; upload new ones."""

    parser_classes = [MultiPartParser, FormParser, JSONParser]
    # Also tells the schema that the list is paged.
    pagination_class = ModulePagination

    @extend_schema(
        operation_id="modules_list",
        summary="Search, filter and sort modules",
        description="Public modules, and your own private ones when authenticated. "
        "Paginated: count, next, previous, results.",
        parameters=[ModuleSearchInputSerializer],
        responses=ModuleOutputSerializer(many=True),
        examples=[
            OpenApiExample(
                "Search",
                description="/api/v1/modules/?search=sentiment&base_model=HuggingFaceTB/"
                "SmolLM2-135M-Instruct&rank=8&sort=downloads",
                value=None,
                response_only=True,
            )
        ],
    )
    def get(self, request):
        params = ModuleSearchInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        modules = module_search(
            query=data.get("search", ""),
            filters=ModuleFilters(
                base_model=data.get("base_model", ""),
                task_type=data.get("task_type", ""),
                rank=data.get("rank"),
                tag=data.get("tag", ""),
                owner=data.get("owner", ""),
                license=data.get("license", ""),
            ),
            sort="" if data.get("sort") == RELEVANCE else data.get("sort", ""),
            user=request.user,
        ).prefetch_related("tags")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(modules, request, view=self)
        output = ModuleOutputSerializer(page, many=True, context={"request": request})
        return paginator.get_paginated_response(output.data)

    @extend_schema(
        operation_id="modules_upload",
        summary="Upload a module",
        description="A PEFT LoRA adapter as multipart files: adapter_config.json and "
        "adapter_model.safetensors (or adapter_model.bin, converted with PyTorch's safe "
        "loader), optionally README.md; or one .zip of the adapter folder. Every file is "
        "checked before anything is stored; problems come back per field.",
        request={"multipart/form-data": ModuleUploadInputSerializer},
        responses={
            201: ModuleDetailOutputSerializer,
            400: openapi.field_errors("errors per field", examples=[INVALID_EXAMPLE]),
            409: OpenApiResponse(DUPLICATE_RESPONSE, description="same weights already uploaded"),
            413: openapi.error("larger than HUB_MAX_UPLOAD_BYTES"),
        },
        examples=[UPLOAD_EXAMPLE],
    )
    def post(self, request):
        serializer = ModuleUploadInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            module = module_upload(
                owner=request.user,
                name=data["name"],
                uploads=data["files"],
                base_model=data.get("base_model"),
                description=data.get("description", ""),
                tags=data.get("tags", []),
                license=data.get("license", ""),
                visibility=data["visibility"],
            )
        except DjangoValidationError as exc:
            raise field_errors(exc) from exc
        except ModuleDuplicate as exc:
            existing = request.build_absolute_uri(exc.existing.get_absolute_url())
            return Response(
                {"detail": str(exc), "existing": existing}, status=status.HTTP_409_CONFLICT
            )
        output = ModuleDetailOutputSerializer(module, context={"request": request})
        return Response(output.data, status=status.HTTP_201_CREATED)


class ModuleDetailApi(APIView):
    """One module, ``owner/name``: read it; its owner may change or delete it."""

    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(operation_id="modules_retrieve", responses=ModuleDetailOutputSerializer)
    def get(self, request, owner: str, name: str):
        module = visible_module(request, owner, name)
        return Response(ModuleDetailOutputSerializer(module, context={"request": request}).data)

    @extend_schema(
        operation_id="modules_update",
        request=ModuleUpdateInputSerializer,
        responses=ModuleDetailOutputSerializer,
        examples=[
            OpenApiExample(
                "Retag and relicense",
                value={"tags": ["sentiment", "reviews"], "license": "apache-2.0"},
                request_only=True,
            )
        ],
    )
    def patch(self, request, owner: str, name: str):
        module = owned_module(request, owner, name)
        serializer = ModuleUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            module = module_update(module=module, **serializer.validated_data)
        except DjangoValidationError as exc:
            raise field_errors(exc) from exc
        return Response(ModuleDetailOutputSerializer(module, context={"request": request}).data)

    @extend_schema(operation_id="modules_destroy", responses={204: None})
    def delete(self, request, owner: str, name: str):
        module_delete(module=owned_module(request, owner, name))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ModuleDownloadApi(APIView):
    """The module's folder as a zip (adapter_config.json, adapter_model.safetensors, README.md)."""

    @extend_schema(
        operation_id="modules_download",
        responses={(200, "application/zip"): OpenApiTypes.BINARY},
    )
    def get(self, request, owner: str, name: str):
        return module_zip_response(visible_module(request, owner, name))


class ModuleFileApi(APIView):
    """One file of a module, by name; from S3 storage, a redirect to a signed URL."""

    @extend_schema(
        operation_id="modules_file",
        description="README.md is text/markdown and adapter_config.json application/json, "
        "both UTF-8; the weights are application/octet-stream.",
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            (200, "text/markdown"): OpenApiTypes.STR,
            (200, "application/json"): OpenApiTypes.OBJECT,
            302: OpenApiResponse(description="from S3 storage: to a signed URL of the file"),
        },
    )
    def get(self, request, owner: str, name: str, filename: str):
        return module_file_response(visible_module(request, owner, name), filename)


LIKE_OUTPUT = inline_serializer(
    "ModuleLike",
    fields={"liked": serializers.BooleanField(), "like_count": serializers.IntegerField()},
)


class ModuleLikeApi(APIView):
    """Like a module (POST) or take the like back (DELETE)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="modules_like", request=None, responses=LIKE_OUTPUT)
    def post(self, request, owner: str, name: str):
        module = visible_module(request, owner, name)
        module_like(module=module, user=request.user)
        return self._state(module, liked=True)

    # A DELETE answers 204 unless told otherwise; this one says how many likes are left.
    @extend_schema(operation_id="modules_unlike", request=None, responses={200: LIKE_OUTPUT})
    def delete(self, request, owner: str, name: str):
        module = visible_module(request, owner, name)
        module_unlike(module=module, user=request.user)
        return self._state(module, liked=False)

    def _state(self, module: Module, *, liked: bool) -> Response:
        module.refresh_from_db(fields=["like_count"])
        return Response({"liked": liked, "like_count": module.like_count})


# --- Tags -------------------------------------------------------------------------


class TagOutputSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    module_count = serializers.IntegerField(help_text="modules you may see with this tag")


class TagListApi(APIView):
    """Tags of the modules you may see (public ones, and your own), most used first."""

    pagination_class = ModulePagination

    @extend_schema(operation_id="tags_list", responses=TagOutputSerializer(many=True))
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(tag_list(request.user), request, view=self)
        return paginator.get_paginated_response(TagOutputSerializer(page, many=True).data)
