"""The module collection: search, filter, sort and page through modules; upload
new ones."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from hubsite import openapi
from modules.api.common import ModuleNameField, TagsField, field_errors
from modules.api.serializers import ModuleDetailOutputSerializer, ModuleOutputSerializer
from modules.models import BaseModel, Module
from modules.pagination import ModulePagination
from modules.selectors import RANKED_MATCHES, RELEVANCE, SORTS, ModuleFilters, module_search
from modules.services import ModuleDuplicate, module_upload

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
        help_text=f"relevance (the default with a search: the {RANKED_MATCHES:,} most "
        "downloaded matches by relevance, then the others by downloads), downloads (the "
        "default without), "
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
