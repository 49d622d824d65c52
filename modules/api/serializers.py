"""Output serializers of modules and their files, shared by the module views."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from modules.models import Module, ModuleFile
from modules.selectors import module_history, module_liked_by, module_sources, module_used_in


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
            "composable",
            "composable_reason",
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
    revision = serializers.CharField(
        allow_blank=True, help_text="the source's commit that was merged"
    )


class ModuleCommitFileOutputSerializer(serializers.Serializer):
    filename = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()


class ModuleCommitOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="commit_id", help_text="40 hex digits, as on the Hub")
    message = serializers.CharField()
    description = serializers.CharField()
    author = serializers.CharField(source="author.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    files = ModuleCommitFileOutputSerializer(many=True, source="files.all")


class ModuleUseOutputSerializer(serializers.Serializer):
    full_name = serializers.CharField()
    weight = serializers.FloatField(help_text="weight of this module in the composition")


class ModuleImportSourceOutputSerializer(serializers.Serializer):
    endpoint = serializers.CharField(source="source_endpoint")
    repo_id = serializers.CharField(source="source_repo")
    revision = serializers.CharField(
        source="source_revision", help_text="the commit the endpoint reported for the files read"
    )
    url = serializers.CharField(source="source_url")


class ModuleDetailOutputSerializer(ModuleOutputSerializer):
    files = ModuleFileOutputSerializer(many=True, read_only=True)
    imported_from = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()
    sources = serializers.SerializerMethodField()
    used_in = serializers.SerializerMethodField()
    liked = serializers.SerializerMethodField()
    history = serializers.SerializerMethodField()

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
            "imported_from",
            "liked",
            "revision",
            "history",
        ]

    @extend_schema_field(ModuleImportSourceOutputSerializer(allow_null=True))
    def get_imported_from(self, module: Module) -> dict | None:
        """Where an imported module came from; null for one uploaded or made here."""
        return ModuleImportSourceOutputSerializer(module).data if module.source_repo else None

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
                "revision": row["revision"],
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

    @extend_schema_field(ModuleCommitOutputSerializer(many=True))
    def get_history(self, module: Module) -> list[dict]:
        """Every commit, newest first; ``revision`` (the newest) is what ``main`` names."""
        return ModuleCommitOutputSerializer(module_history(module=module), many=True).data

    def get_liked(self, module: Module) -> bool:
        return module_liked_by(module=module, user=self.context["request"].user)
