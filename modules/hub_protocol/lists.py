"""Listing and searching repositories, and the token's user."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet, Value
from django.db.models.functions import StrIndex, Upper
from django.db.models.lookups import GreaterThan
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from modules import cards
from modules.hub_protocol.common import (
    FULL_LIST_KEYS,
    INVALID_CREDENTIALS,
    LIST_KEYS,
    LIST_PAGE_MAX,
    LIST_SORTS,
    OWNER_IDS_INLINE,
    PIPELINE_TAGS,
    UNIVERSAL_TAGS,
    HubError,
    Repo,
    _expand_keys,
    _flag,
    _only,
    hub_user,
    hub_view,
    module_commit_sha,
    repo_info,
)
from modules.models import Module, ModuleFile, Tag
from modules.selectors import module_ids_if_few, module_visible_to

# --- Lists --------------------------------------------------------------------------

TRIGRAM = 3  # pg_trgm's unit: what its index can look up in a name

# What list items are built from (repo_info): not the card, config or search vector.
LIST_FIELDS = (
    "name", "owner__username", "base_model__identifier", "task_type", "license", "datasets",
    "visibility", "download_count", "like_count", "total_size", "created_at", "updated_at",
    "revision",
)  # fmt: skip


def hub_model_search(
    *,
    user,
    search: str = "",
    author: str = "",
    filters: list[str] | None = None,
    sort: str = "",
    ascending: bool = False,
) -> QuerySet[Module]:
    """Modules the user may see, filtered and ordered as the Hub's /api/models does.

    ``search`` is a substring of ``owner/name``; every ``filters`` entry must
    match: a tag, a pipeline tag, ``base_model:…``, ``license:…``, or one of
    the tags all modules carry (peft, lora, safetensors).
    """
    modules = module_visible_to(user)
    if search:
        modules = modules.filter(_repo_id_contains(search))
    if author:
        modules = modules.filter(owner__username=author)
    for value in filters or []:
        modules = modules.filter(_filter_condition(value))
    few = module_ids_if_few(modules) if search else None
    if few is not None:
        modules = module_visible_to(user).filter(pk__in=few)
    field = LIST_SORTS.get(sort, "download_count")
    order = (field, "id") if ascending else (f"-{field}", "-id")
    return modules.order_by(*order)


def _repo_id_contains(search: str) -> Q:
    """``owner/name`` contains ``search`` (any case), said in terms indexes answer.

    Neither a user name nor a module name has a slash, so a search without
    one is part of either name, and ``a/b`` is an owner whose name ends with
    ``a`` and a module whose name starts with ``b``. Matching the joined
    ``owner/name`` instead would read every module.
    """
    owner_end, slash, name_start = search.partition("/")
    if slash:
        if "/" in name_start:
            return Q(pk__in=[])
        return Q(owner__username__iendswith=owner_end, name__istartswith=name_start)
    owners = get_user_model().objects.filter(username__icontains=search).values_list("pk")
    owner_ids = [pk for (pk,) in owners[: OWNER_IDS_INLINE + 1]]
    # A short list of owners is written out, so the owner index can answer it.
    by_owner = Q(owner__in=owners) if len(owner_ids) > OWNER_IDS_INLINE else Q(owner__in=owner_ids)
    return name_contains(search) | by_owner


def name_contains(part: str) -> Q:
    """The module's name contains ``part`` (any case).

    A part shorter than a trigram gives the name's trigram index nothing to
    narrow: it would hand back every module to be checked again (over 0.8 s at
    100,000 modules, where the planner expects a handful). Said as an
    expression that index does not cover, the planner walks the sort order's
    index instead and stops at the page's end.
    """
    if len(part) >= TRIGRAM:
        return Q(name__icontains=part)
    return Q(GreaterThan(StrIndex(Upper("name"), Value(part.upper())), 0))


def _filter_condition(value: str) -> Q:
    for prefix in ("base_model:adapter:", "base_model:"):
        if value.startswith(prefix):
            return Q(base_model__identifier__iexact=value[len(prefix) :])
    if value.startswith("license:"):
        return Q(license__iexact=value[len("license:") :])
    if value.lower() in UNIVERSAL_TAGS:
        return Q()
    slug = cards.normalize_tag(value)
    # By the tag's id, so the planner knows how common that tag is.
    tag_id = Tag.objects.filter(slug=slug).values_list("pk", flat=True).first()
    tagged = Q(pk__in=Module.tags.through.objects.filter(tag_id=tag_id).values("module_id"))
    tagged = tagged if tag_id else Q(pk__in=[])
    task_types = [task for task, tag in PIPELINE_TAGS.items() if tag == value]
    return Q(tagged) | Q(task_type__in=task_types) if task_types else Q(tagged)


def _list_fields(keys: set[str]) -> list[str]:
    """The columns list items are built from: never the card, its data only when asked for."""
    fields = list(LIST_FIELDS)
    if "cardData" in keys:
        fields.append("card_data")
    return fields


def list_page(
    modules: QuerySet[Module], *, offset: int, limit: int, keys: set[str]
) -> tuple[list[Module], bool]:
    """The modules from ``offset`` on (at most ``limit``), and whether more follow.

    Their ids come first: walking the sort order past modules that do not
    match then reads an index alone (in download order, the index that has
    the visibility, owner and name), not a table row for each; then only the
    page's rows are read.
    """
    ids = list(modules.values_list("pk", flat=True)[offset : offset + limit + 1])
    # The same conditions again: a module made private meanwhile stays out.
    rows = modules.only(*_list_fields(keys)).in_bulk(ids[:limit])
    return [rows[pk] for pk in ids[:limit] if pk in rows], len(ids) > limit


def list_items(modules: list[Module], keys: set[str]) -> list[dict]:
    """The ``keys`` of each module's repository info, in three queries at most.

    Tags (and files, for ``sha`` or ``siblings``) are read for all the modules
    at once, as plain values: a page of a thousand has several thousand tags.
    """
    ids = [module.pk for module in modules]
    tags: dict[int, list[str]] = {pk: [] for pk in ids}
    tagged = Module.tags.through.objects.filter(module_id__in=ids).order_by("tag__slug")
    for module_id, slug in tagged.values_list("module_id", "tag__slug"):
        tags[module_id].append(slug)
    files: dict[int, list[ModuleFile]] = {pk: [] for pk in ids}
    with_files = bool(keys & {"sha", "siblings"})
    if with_files:
        for file in ModuleFile.objects.filter(module_id__in=ids).order_by("filename"):
            files[file.module_id].append(file)
    items = []
    for module in modules:
        module_files = files[module.pk]
        sha = (module.revision or module_commit_sha(module_files)) if with_files else ""
        repo = Repo(module=module, files=module_files, sha=sha)
        info = repo_info(repo, card_data="cardData" in keys, tag_slugs=tags[module.pk])
        items.append(_only(info, keys))
    return items


@require_GET
@hub_view
def model_list(request):
    """Modules as /api/models lists them, a page at a time with a ``Link`` to the next."""
    try:
        limit = min(max(int(request.GET.get("limit") or LIST_PAGE_MAX), 1), LIST_PAGE_MAX)
        offset = max(int(request.GET.get("offset") or 0), 0)
    except ValueError as exc:
        raise HubError(400, "limit and offset must be whole numbers") from exc
    modules = hub_model_search(
        user=hub_user(request),
        search=request.GET.get("search", "").strip(),
        author=request.GET.get("author", "").strip(),
        filters=request.GET.getlist("filter"),
        sort=request.GET.get("sort", ""),
        ascending=request.GET.get("direction") == "1",
    )
    expand = _expand_keys(request)
    if expand:
        keys = {"_id", "id", *expand}
    else:
        keys = set(FULL_LIST_KEYS if _flag(request, "full") else LIST_KEYS)
        if _flag(request, "cardData") or _flag(request, "full"):
            keys.add("cardData")
    page, more = list_page(modules, offset=offset, limit=limit, keys=keys)
    items = list_items(page, keys)
    response = JsonResponse(items, safe=False)
    if more:
        query = request.GET.copy()
        query["offset"] = str(offset + limit)
        # QueryDict's own encoding keeps every value of repeated parameters (filter=…).
        next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        response["Link"] = f'<{next_url}>; rel="next"'
    return response


@require_GET
@hub_view
def whoami(request):
    """The token's user, as ``huggingface_hub.whoami`` and ``login`` read it."""
    user = hub_user(request)
    if not user.is_authenticated:
        raise HubError(401, INVALID_CREDENTIALS)
    token_used = request.headers.get("Authorization", "") != ""
    return JsonResponse(
        {
            "type": "user",
            "id": str(user.pk),
            "name": user.get_username(),
            "fullname": user.get_full_name() or user.get_username(),
            "email": user.email or None,
            "isPro": False,
            "canPay": False,
            "orgs": [],
            "auth": {
                "type": "access_token" if token_used else "session",
                "accessToken": {"displayName": "LoraHub API token", "role": "write"},
            },
        }
    )
