from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from composition.playground_api import PlaygroundCreateApi, PlaygroundDetailApi
from hubsite import api, errors, redoc, views
from hubsite.forms import ChangePasswordForm, LoginForm, NewPasswordForm, ResetRequestForm
from hubsite.throttling import LOGIN, SIGNUP, limit_attempts
from modules import hub_import_views, hub_protocol
from modules.api.base_models import BaseModelDetailApi, BaseModelListApi
from modules.urls import api_urlpatterns as module_api_urlpatterns

api_v1 = [
    path("", api.api_root, name="api-root"),
    path("base-models/", BaseModelListApi.as_view(), name="api-base-model-list"),
    path(
        "base-models/<path:identifier>/",
        BaseModelDetailApi.as_view(),
        name="api-base-model-detail",
    ),
    *module_api_urlpatterns,
    path("compositions/", include("composition.api_urls")),
    path("trainings/", include("composition.training.api_urls")),
    path("imports/", hub_import_views.HubImportCollectionApi.as_view(), name="api-import-list"),
    path(
        "imports/<int:job_id>/",
        hub_import_views.HubImportDetailApi.as_view(),
        name="api-import-detail",
    ),
    path(
        "imports/<int:job_id>/cancel/",
        hub_import_views.HubImportCancelApi.as_view(),
        name="api-import-cancel",
    ),
    path("playground/", PlaygroundCreateApi.as_view(), name="api-playground"),
    path(
        "playground/<int:request_id>/", PlaygroundDetailApi.as_view(), name="api-playground-detail"
    ),
    path("auth/token/", api.TokenCreateApi.as_view(), name="api-auth-token"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI's start-up script is served as a file (the split view), not inline;
    # what the two pages need beyond the site's policy is in hubsite/csp.py.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path(
        "redoc/",
        SpectacularRedocView.as_view(url_name="api-schema", template_name="api/redoc.html"),
        name="api-redoc",
    ),
    path("redoc/redoc.standalone.js", redoc.redoc_script, name="api-redoc-script"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    # Pages that name no icon (the API's documentation, the admin) get it here.
    path("favicon.ico", views.favicon, name="favicon"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/me/", views.account, name="account"),
    # Both log-in forms count attempts (before django.contrib.auth's and the admin's own routes).
    path(
        "accounts/login/",
        views.refused_form_is_400(
            limit_attempts(LOGIN)(auth_views.LoginView.as_view(authentication_form=LoginForm))
        ),
        name="login",
    ),
    # django.contrib.auth's other forms, refusals answered with 400 too. Reset
    # requests send mail: they count against the sign-up limit per address.
    path(
        "accounts/password_reset/",
        views.refused_form_is_400(
            limit_attempts(SIGNUP)(
                auth_views.PasswordResetView.as_view(
                    form_class=ResetRequestForm,
                    subject_template_name="registration/password_reset_subject.txt",
                    email_template_name="registration/password_reset_email.txt",
                )
            )
        ),
        name="password_reset",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        views.refused_form_is_400(
            auth_views.PasswordResetConfirmView.as_view(form_class=NewPasswordForm)
        ),
        name="password_reset_confirm",
    ),
    path(
        "accounts/password_change/",
        views.refused_form_is_400(
            auth_views.PasswordChangeView.as_view(form_class=ChangePasswordForm)
        ),
        name="password_change",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/login/", views.refused_form_is_400(limit_attempts(LOGIN)(admin.site.login))),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("compose/", include("composition.urls")),
    path("train/", include("composition.training.urls")),
    path("modules/import/", hub_import_views.hub_import_page, name="hub-import"),
    path(
        "modules/import/<int:job_id>/", hub_import_views.hub_import_job_page, name="hub-import-job"
    ),
    path(
        "modules/import/<int:job_id>/cancel/",
        hub_import_views.hub_import_cancel,
        name="hub-import-cancel",
    ),
    # The Hugging Face Hub protocol: /api/models…, /api/whoami-v2 and
    # /<owner>/<name>/resolve/…, which the module pages below would shadow.
    path("", include(hub_protocol.urlpatterns)),
    # Last: /<owner>/ and /<owner>/<name>/ must not shadow the paths above.
    path("", include("modules.urls")),
]

# Errors say why, as JSON under /api/ (hubsite/errors.py).
handler400 = errors.bad_request
handler403 = errors.permission_denied
handler404 = errors.page_not_found
handler500 = errors.server_error
