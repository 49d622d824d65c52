"""One module, ``owner/name``: read, change or delete it, download its folder
or one file, like it."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from modules.api.common import TagsField, field_errors, owned_module, visible_module
from modules.api.serializers import ModuleDetailOutputSerializer
from modules.downloads import module_file_response, module_zip_response
from modules.models import Module
from modules.services import module_delete, module_like, module_unlike, module_update


class ModuleUpdateInputSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True, max_length=300)
    card = serializers.CharField(
        required=False, allow_blank=True, help_text="README.md with YAML front matter"
    )
    tags = TagsField(required=False)
    license = serializers.CharField(required=False, allow_blank=True, max_length=64)
    visibility = serializers.ChoiceField(choices=Module.Visibility.choices, required=False)


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
