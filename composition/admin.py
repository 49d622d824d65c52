from django.contrib import admin

from composition.models import WorkerCheck


@admin.register(WorkerCheck)
class WorkerCheckAdmin(admin.ModelAdmin):
    list_display = ["id", "queue", "status", "worker_host", "created_at", "finished_at"]
    list_filter = ["queue", "status"]
