"""Base models that modules on the hub adapt: list and detail."""

from rest_framework import generics, serializers

from modules.models import BaseModel
from modules.selectors import base_model_list


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
