from django.contrib import admin

from modules.models import BaseModel


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    list_display = ["identifier", "family", "task_type", "parameter_count", "updated_at"]
    list_filter = ["family", "task_type"]
    search_fields = ["identifier"]
