from django.urls import path

from composition import api, api_publish

urlpatterns = [
    path("", api.CompositionListCreateApi.as_view(), name="api-composition-list"),
    path("<int:job_id>/", api.CompositionDetailApi.as_view(), name="api-composition-detail"),
    path("<int:job_id>/cancel/", api.CompositionCancelApi.as_view(), name="api-composition-cancel"),
    path(
        "<int:job_id>/adapter/", api.CompositionAdapterApi.as_view(), name="api-composition-adapter"
    ),
    path(
        "<int:job_id>/publish/",
        api_publish.CompositionPublishApi.as_view(),
        name="api-composition-publish",
    ),
]
