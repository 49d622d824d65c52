from django.contrib import admin

from modules.models import BaseModel, ImportJob, Like, Module, ModuleFile, ModuleSource, Tag
from modules.services import module_delete, module_update


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    list_display = ["identifier", "family", "task_type", "parameter_count", "updated_at"]
    list_filter = ["family", "task_type"]
    search_fields = ["identifier"]


class ModuleFileInline(admin.TabularInline):
    model = ModuleFile
    extra = 0
    can_delete = False
    readonly_fields = ["filename", "size", "sha256", "storage_path"]


class ModuleSourceInline(admin.TabularInline):
    model = ModuleSource
    fk_name = "composed"
    extra = 0
    can_delete = False
    readonly_fields = ["position", "source", "source_name", "weight"]


@admin.register(Module)
class ModuleAdmin(admin.ModelAdmin):
    # Files and weights change only through the services, which keep storage
    # and rows in step; the admin edits what owners may edit.
    list_display = [
        "__str__",
        "base_model",
        "r",
        "visibility",
        "download_count",
        "like_count",
        "created_at",
    ]
    list_filter = ["visibility", "task_type", "base_model"]
    search_fields = ["name", "owner__username", "description"]
    list_select_related = ["owner", "base_model"]
    readonly_fields = [
        "owner", "name", "base_model", "r", "lora_alpha", "target_modules", "task_type",
        "adapter_config", "parameter_count", "total_size", "download_count", "like_count",
        "created_at", "updated_at",
    ]  # fmt: skip
    fields = [*readonly_fields[:3], "description", "license", "visibility", *readonly_fields[3:]]
    inlines = [ModuleFileInline, ModuleSourceInline]

    def delete_model(self, request, obj):
        module_delete(module=obj)  # removes the files no other module shares

    def delete_queryset(self, request, queryset):
        for module in queryset:
            module_delete(module=module)

    def save_model(self, request, obj, form, change):
        # Through the service, so the stored card and the search index follow.
        module_update(
            module=obj,
            description=obj.description,
            license=obj.license,
            visibility=obj.visibility,
        )


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["slug"]


@admin.register(Like)
class LikeAdmin(admin.ModelAdmin):
    list_display = ["user", "module", "created_at"]
    list_select_related = ["user", "module__owner"]
    raw_id_fields = ["user", "module"]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "endpoint", "status", "created_at", "finished_at"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in ImportJob._meta.fields]
