"""Base models that modules on the hub adapt: list and detail."""

from rest_framework import generics, serializers

from modules.models import BaseModel
from modules.selectors import base_model_list
from modules.services import base_model_local_folder


class BaseModelOutputSerializer(serializers.ModelSerializer):
    served_as_repository = serializers.SerializerMethodField(
        help_text="whether the hub serves its weights as a Hub repository at its identifier "
        "(HF_ENDPOINT=this hub, then from_pretrained(identifier)); downloads count its "
        "config.json fetches"
    )

    class Meta:
        model = BaseModel
        fields = [
            "id",
            "identifier",
            "served_as_repository",
            "download_count",
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

    def get_served_as_repository(self, base_model: BaseModel) -> bool:
        return base_model_local_folder(base_model) is not None


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
