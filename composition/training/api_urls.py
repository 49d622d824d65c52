from django.urls import path

from composition.training import api

urlpatterns = [
    path("", api.TrainingListCreateApi.as_view(), name="api-training-list"),
    path("<int:job_id>/", api.TrainingDetailApi.as_view(), name="api-training-detail"),
    path("<int:job_id>/cancel/", api.TrainingCancelApi.as_view(), name="api-training-cancel"),
]
