"""Routes of the registry: pages at the site root, API routes under /api/v1/.

Owner and module pages live at /<owner>/ and /<owner>/<name>/, as on the
Hugging Face Hub, so this module is included last: the site's own paths
(accounts/, admin/, api/…) are matched before any owner name.
"""

from django.urls import path

from modules import views
from modules.api import collection, detail, tags

urlpatterns = [
    path("modules/", views.module_list, name="module-list"),
    path("modules/new/", views.module_upload_page, name="module-upload"),
    path("tags/", views.tag_index, name="tag-list"),
    path("tags/<slug:slug>/", views.tag_detail, name="tag-detail"),
    path("<str:owner>/", views.owner_detail, name="owner-detail"),
    path("<str:owner>/<str:name>/", views.module_detail, name="module-detail"),
    path("<str:owner>/<str:name>/edit/", views.module_edit, name="module-edit"),
    path("<str:owner>/<str:name>/delete/", views.module_delete_page, name="module-delete"),
    path("<str:owner>/<str:name>/like/", views.module_like_toggle, name="module-like"),
    path("<str:owner>/<str:name>/download/", views.module_download, name="module-download"),
    path(
        "<str:owner>/<str:name>/files/<str:filename>",
        views.module_file,
        name="module-file",
    ),
]

api_urlpatterns = [
    path("modules/", collection.ModuleCollectionApi.as_view(), name="api-module-list"),
    path(
        "modules/<str:owner>/<str:name>/",
        detail.ModuleDetailApi.as_view(),
        name="api-module-detail",
    ),
    path(
        "modules/<str:owner>/<str:name>/download/",
        detail.ModuleDownloadApi.as_view(),
        name="api-module-download",
    ),
    path(
        "modules/<str:owner>/<str:name>/files/<str:filename>",
        detail.ModuleFileApi.as_view(),
        name="api-module-file",
    ),
    path(
        "modules/<str:owner>/<str:name>/like/",
        detail.ModuleLikeApi.as_view(),
        name="api-module-like",
    ),
    path("tags/", tags.TagListApi.as_view(), name="api-tag-list"),
]
