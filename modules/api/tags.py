"""Tags of the modules you may see."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from modules.pagination import ModulePagination
from modules.selectors import tag_list


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
