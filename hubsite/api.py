"""Root of the REST API, /api/v1/."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import Throttled
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.reverse import reverse

from hubsite.job_runs import JobLimitExceeded
from hubsite.throttling import LOGIN


class JobEventOutput(serializers.Serializer):
    """One entry of a job's history: queued, started, requeued, failed, cancelled…"""

    at = serializers.DateTimeField()
    event = serializers.CharField()
    attempt = serializers.IntegerField()
    message = serializers.CharField(allow_blank=True)


def job_limit_error(exc: JobLimitExceeded) -> Throttled:
    """A 429 with the refusal's own words and a Retry-After header."""
    error = Throttled(detail=str(exc))
    # DRF's handler turns ``wait`` into Retry-After; set here, it adds no
    # "expected available in" promise to the message.
    error.wait = exc.retry_after
    return error


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
            "compositions": link("api-composition-list"),
            "trainings": link("api-training-list"),
            "playground": link("api-playground"),
            "imports": link("api-import-list"),
            "auth_token": link("api-auth-token"),
            "schema": link("api-schema"),
            "docs": link("api-docs"),
            "redoc": link("api-redoc"),
        }
    )


class TokenCreateApi(ObtainAuthToken):
    """Your API token, for your user name and password.

    Attempts are limited per client address and per account name, as on the
    log-in form (the same counts): beyond them, 429 with ``Retry-After``.
    """

    throttle_classes = LOGIN
