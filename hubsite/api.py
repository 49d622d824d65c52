"""Root of the REST API, /api/v1/."""

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.reverse import reverse


@extend_schema(exclude=True)
@api_view(["GET"])
@permission_classes([AllowAny])
def api_root(request, format=None):
    def link(name: str) -> str:
        return reverse(name, request=request, format=format)

    return Response(
        {
            "base_models": link("api-base-model-list"),
            "modules": link("api-module-list"),
            "tags": link("api-tag-list"),
            "imports": link("api-import-list"),
            "trainings": link("api-training-list"),
            "auth_token": link("api-auth-token"),
            "schema": link("api-schema"),
            "docs": link("api-docs"),
            "redoc": link("api-redoc"),
        }
    )
