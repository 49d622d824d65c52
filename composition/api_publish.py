"""Publishing a composition through the API: the composed module made public, under
its sources' license or, when theirs differ, the one its owner chooses."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from composition import services
from composition.api import visible_job
from hubsite import openapi
from modules.api.common import field_errors


class PublishInput(serializers.Serializer):
    license = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=64,
        help_text="needed when the sources' licenses differ: the composed module's license",
    )


class CompositionPublishApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=PublishInput,
        responses={
            200: inline_serializer(
                "Published", {"module": serializers.CharField(), "license": serializers.CharField()}
            ),
            400: openapi.field_errors("no license chosen while the sources' licenses differ"),
            409: openapi.error("the job has no result to publish"),
        },
    )
    def post(self, request, job_id: int):
        """Make the composed module public (under the sources' license, or the one chosen)."""
        job = visible_job(request, job_id)
        if job.owner_id != request.user.pk:
            raise PermissionDenied("Only the job's owner can publish its result.")
        data = PublishInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            module = services.composition_publish(job=job, license=data.validated_data["license"])
        except services.JobStateError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except DjangoValidationError as exc:
            raise field_errors(exc) from exc
        return Response({"module": module.full_name, "license": module.license})
