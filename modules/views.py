"""Pages of the registry: browse, search, module pages, upload, edit, delete, like, download."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Sum
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from modules import cards
from modules.downloads import module_file_response, module_zip_response
from modules.forms import COMMON_LICENSES, ModuleEditForm, ModuleSearchForm, ModuleUploadForm
from modules.markdown import render_markdown
from modules.models import BaseModel, Module, Tag
from modules.pagination import CappedPaginator, RankedThenRest
from modules.selectors import (
    base_model_list,
    license_choices,
    module_get,
    module_history,
    module_liked_by,
    module_search,
    module_sources,
    module_used_in,
    owner_get,
    popular_tags,
    tag_get,
    tag_list,
)
from modules.services import (
    ModuleDuplicate,
    base_model_local_folder,
    module_delete,
    module_like,
    module_unlike,
    module_update,
    module_upload,
)
from modules.uploads import UploadTooLarge

PAGE_SIZE = 20


def _visible_module(request, owner: str, name: str) -> Module:
    try:
        return module_get(owner=owner, name=name, user=request.user)
    except Module.DoesNotExist as exc:
        raise Http404(f"No module {owner}/{name}") from exc


def _owned_module(request, owner: str, name: str) -> Module:
    module = _visible_module(request, owner, name)
    if module.owner_id != request.user.pk:
        raise PermissionDenied(f"Only {module.owner.username} can change {module.full_name}.")
    return module


def _page(request, modules):
    paginator = CappedPaginator(modules.prefetch_related("tags"), PAGE_SIZE)
    return paginator.get_page(request.GET.get("page"))


def _querystring_without_page(request) -> str:
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()


# --- Browsing ---------------------------------------------------------------------


def module_list(request, *, tag=None):
    data = request.GET.copy()
    if tag is not None:
        data["tag"] = tag.slug
    form = ModuleSearchForm(data)
    arguments = form.search_arguments()
    modules = module_search(**arguments, user=request.user)
    return render(
        request,
        "modules/list.html",
        {
            "form": form,
            "page": _page(request, modules),
            "query": arguments["query"],
            # Matches past this many are in download order, not by relevance.
            "ranked_window": modules.window if isinstance(modules, RankedThenRest) else None,
            "tag": tag,
            "base_models": base_model_list(),
            "popular_tags": popular_tags(),
            "licenses": license_choices(),
            "querystring": _querystring_without_page(request),
        },
    )


def tag_detail(request, slug: str):
    try:
        tag = tag_get(slug=slug, user=request.user)
    except Tag.DoesNotExist as exc:
        raise Http404(f"No tag {slug}") from exc
    return module_list(request, tag=tag)


def tag_index(request):
    return render(request, "modules/tags.html", {"tags": tag_list(request.user)[:500]})


def owner_detail(request, owner: str):
    try:
        person = owner_get(username=owner)
    except get_user_model().DoesNotExist as exc:
        raise Http404(f"No user {owner}") from exc
    modules = module_search(sort="updated", user=request.user).filter(owner=person)
    totals = modules.order_by().aggregate(
        count=Count("id"), downloads=Sum("download_count"), likes=Sum("like_count")
    )
    return render(
        request,
        "modules/owner.html",
        {
            "person": person,
            "page": _page(request, modules),
            "totals": totals,
            "querystring": _querystring_without_page(request),
        },
    )


# --- A module's page ----------------------------------------------------------------


def module_detail(request, owner: str, name: str):
    module = _visible_module(request, owner, name)
    # Only the Markdown is shown: the front matter's values are the module's fields.
    card_body = cards.card_body(module.card)
    download_url = request.build_absolute_uri(
        reverse("api-module-download", args=[module.owner.username, module.name])
    )
    history = module_history(module=module)
    # ?revision=<commit id>: the files as that commit recorded them.
    wanted = request.GET.get("revision")
    shown = next((c for c in history if c.commit_id == wanted != module.revision), None)
    return render(
        request,
        "modules/detail.html",
        {
            "module": module,
            "card_html": mark_safe(render_markdown(card_body)),  # sanitised by render_markdown
            "files": shown.files.all() if shown else module.files.all(),
            "shown_revision": shown.commit_id if shown else "",
            "history": history,
            "tags": module.tags.all(),
            "sources": module_sources(module=module, user=request.user),
            "used_in": module_used_in(module=module, user=request.user)[:50],
            "liked": module_liked_by(module=module, user=request.user),
            "is_owner": module.owner_id == request.user.pk,
            "download_url": download_url,
            "hub_endpoint": request.build_absolute_uri("/").rstrip("/"),
            "base_model_served": base_model_local_folder(module.base_model) is not None,
            "auto_class": "AutoModelForSeq2SeqLM"
            if module.task_type == BaseModel.TaskType.SEQ_2_SEQ_LM
            else "AutoModelForCausalLM",
        },
    )


def module_download(request, owner: str, name: str):
    return module_zip_response(_visible_module(request, owner, name))


def module_file(request, owner: str, name: str, filename: str):
    return module_file_response(_visible_module(request, owner, name), filename)


@require_POST
def module_like_toggle(request, owner: str, name: str):
    if not request.user.is_authenticated:
        return redirect_to_login(reverse("module-detail", args=[owner, name]))
    module = _visible_module(request, owner, name)
    if module_liked_by(module=module, user=request.user):
        module_unlike(module=module, user=request.user)
    else:
        module_like(module=module, user=request.user)
    return redirect(module)


# --- Upload -------------------------------------------------------------------------


@csrf_exempt  # checked below, once the body has been read under the size limit
def module_upload_page(request):
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if request.method == "POST":
        try:
            request.POST  # noqa: B018 - reads the body now, so too large becomes a 413 page
        except UploadTooLarge as exc:
            return _render_upload(
                request, ModuleUploadForm(), status=413, upload_error=str(exc.detail)
            )
    return _module_upload_checked(request)


@csrf_protect
@require_http_methods(["GET", "POST"])
def _module_upload_checked(request):
    form = ModuleUploadForm(request.POST or None, request.FILES or None)
    duplicate = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            module = module_upload(
                owner=request.user,
                name=data["name"],
                uploads=data["files"],
                base_model=data["base_model"],
                description=data["description"],
                tags=data["tags"],
                license=data["license"],
                visibility=data["visibility"],
            )
        except ValidationError as exc:
            _add_service_errors(form, exc)
        except ModuleDuplicate as exc:
            duplicate = exc.existing
            form.add_error("files", str(exc))
        else:
            messages.success(request, f"{module.full_name} is published.")
            return redirect(module)
    status = 400 if request.method == "POST" else 200
    return _render_upload(request, form, status=status, duplicate=duplicate)


def _render_upload(request, form, *, status: int = 200, duplicate=None, upload_error=""):
    base_models = {bm.identifier: bm.linear_shapes for bm in base_model_list()}
    return render(
        request,
        "modules/upload.html",
        {
            "form": form,
            "duplicate": duplicate,
            "upload_error": upload_error,
            "licenses": COMMON_LICENSES,
            "base_model_shapes": base_models,
            "max_upload_bytes": settings.HUB_MAX_UPLOAD_BYTES,
        },
        status=status,
    )


def _add_service_errors(form, exc: ValidationError) -> None:
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


# --- Owner's actions ------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def module_edit(request, owner: str, name: str):
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    module = _owned_module(request, owner, name)
    initial = {
        "description": module.description,
        "tags": list(module.tags.values_list("slug", flat=True)),
        "license": module.license,
        "visibility": module.visibility,
        "card": module.card,
    }
    form = ModuleEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        changed = {field: data[field] for field in form.changed_data}
        try:
            module_update(module=module, **changed)
        except ValidationError as exc:
            _add_service_errors(form, exc)
        else:
            messages.success(request, f"{module.full_name} is updated.")
            return redirect(module)
    return render(
        request,
        "modules/edit.html",
        {"module": module, "form": form, "licenses": COMMON_LICENSES},
        status=400 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
def module_delete_page(request, owner: str, name: str):
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    module = _owned_module(request, owner, name)
    if request.method == "POST":
        full_name = module.full_name
        module_delete(module=module)
        messages.success(request, f"{full_name} is deleted.")
        return redirect("owner-detail", owner=request.user.username)
    return render(request, "modules/delete.html", {"module": module})
