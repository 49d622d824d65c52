from django.urls import path

from composition import views

urlpatterns = [
    path("", views.compose_new, name="compose"),
    path("preview/", views.parse_preview, name="compose-preview"),
    path("jobs/", views.job_list, name="composition-list"),
    path("jobs/<int:job_id>/", views.job_detail, name="composition-job"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="composition-cancel"),
    path("jobs/<int:job_id>/publish/", views.job_publish, name="composition-publish"),
]
