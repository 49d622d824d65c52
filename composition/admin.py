from django.contrib import admin

from composition.models import (
    CompositionCandidate,
    CompositionJob,
    GenerationRequest,
    TrainingJob,
    WorkerCheck,
)


@admin.register(WorkerCheck)
class WorkerCheckAdmin(admin.ModelAdmin):
    list_display = ["id", "queue", "status", "worker_host", "created_at", "finished_at"]
    list_filter = ["queue", "status"]


class CandidateInline(admin.TabularInline):
    model = CompositionCandidate
    extra = 0
    can_delete = False
    readonly_fields = ["module", "module_name", "position", "weight"]


@admin.register(CompositionJob)
class CompositionJobAdmin(admin.ModelAdmin):
    # State is written by services and workers; the admin only looks.
    list_display = [
        "id",
        "owner",
        "name",
        "base_model",
        "status",
        "current_step",
        "steps",
        "created_at",
    ]
    list_filter = ["status", "base_model"]
    search_fields = ["name", "owner__username"]
    readonly_fields = [f.name for f in CompositionJob._meta.fields]
    inlines = [CandidateInline]


@admin.register(GenerationRequest)
class GenerationRequestAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "module", "status", "created_at"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in GenerationRequest._meta.fields]


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    # State is written by services and workers; the admin only looks.
    list_display = ["id", "owner", "name", "base_model", "status", "current_step", "steps"]
    list_filter = ["status", "base_model"]
    search_fields = ["name", "owner__username"]
    readonly_fields = [f.name for f in TrainingJob._meta.fields]
