"""REST API of the playground: /api/v1/playground/, a few inputs through one module."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from composition import playground
from composition.api import resolve_modules
from composition.models import GenerationRequest
from hubsite import openapi
from hubsite.api import JobEventOutput, job_limit_error
from hubsite.job_runs import JobLimitExceeded
from modules.api.common import field_errors


class PlaygroundInput(serializers.Serializer):
    module = serializers.CharField(help_text='"owner/name"')
    inputs = serializers.ListField(child=serializers.CharField(trim_whitespace=False), min_length=1)
    max_new_tokens = serializers.IntegerField(default=64)


class PlaygroundOutput(serializers.ModelSerializer):
    events = JobEventOutput(many=True, read_only=True)
    module = serializers.CharField(source="module.full_name")
    url = serializers.SerializerMethodField()

    class Meta:
        model = GenerationRequest
        fields = [
            "id", "url", "module", "status", "inputs", "outputs", "error_message",
            "created_at", "finished_at", "worker_host", "attempt", "events",
        ]  # fmt: skip

    def get_url(self, request) -> str:
        return reverse(
            "api-playground-detail", args=[request.pk], request=self.context.get("request")
        )


class PlaygroundCreateApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=PlaygroundInput,
        responses={201: PlaygroundOutput, 429: openapi.error("too many requests waiting")},
    )
    def post(self, request):
        """Run a few inputs through a module on a worker; poll the returned url."""
        payload = PlaygroundInput(data=request.data)
        payload.is_valid(raise_exception=True)
        [module] = resolve_modules([payload.validated_data["module"]], request.user)
        try:
            generation = playground.playground_request(
                user=request.user,
                module=module,
                inputs=payload.validated_data["inputs"],
                max_new_tokens=payload.validated_data["max_new_tokens"],
            )
        except DjangoValidationError as exc:
            raise field_errors(exc) from exc
        except JobLimitExceeded as exc:
            raise job_limit_error(exc) from exc
        output = PlaygroundOutput(generation, context={"request": request})
        return Response(output.data, status=status.HTTP_201_CREATED)


class PlaygroundDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=PlaygroundOutput)
    def get(self, request, request_id: int):
        generation = GenerationRequest.objects.filter(pk=request_id, owner=request.user).first()
        if generation is None:
            raise NotFound(f"No playground request {request_id}.")
        return Response(PlaygroundOutput(generation, context={"request": request}).data)
