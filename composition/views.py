"""Pages of composition jobs: the form, the live job page, the list."""

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from composition import services
from composition.charts import composition_phase, loss_chart_context
from composition.engine.examples import FORMATS, parse_examples
from composition.forms import CompositionForm
from composition.models import CompositionJob
from composition.selectors import (
    composition_job_get,
    job_candidates,
    licenses_in_words,
    source_licenses,
)
from composition.services import SETTING_FIELDS
from modules.forms import COMMON_LICENSES

PREVIEW_ROWS = 50


@login_required
def compose_new(request):
    form = CompositionForm(
        request.POST or None, request.FILES or None, user=request.user, initial=_initial(request)
    )
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            job, status = submit_form(request, form, services.composition_submit)
            if job is not None:
                messages.success(request, f"Composition #{job.pk} is queued.")
                return redirect(job)
    return render(request, "composition/new.html", {"form": form}, status=status)


def submit_form(request, form, submit) -> tuple[object | None, int]:
    """Queue a valid form's job with ``submit``; a refusal lands on the form.

    Returns the job (None when refused) and the status the page answers with:
    400 for a refused form, 429 when the user has too many jobs waiting.
    """
    try:
        return submit(owner=request.user, submission=form.submission()), 200
    except ValidationError as exc:
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
        return None, 400
    except services.JobLimitExceeded as exc:
        form.add_error(None, str(exc))
        return None, 429


def _initial(request) -> dict:
    """The base model asked for, or the settings of an earlier job ("compose again")."""
    source_id = request.GET.get("from")
    if not (source_id and source_id.isdigit()):
        base_model = request.GET.get("base_model", "")
        return {"base_model": base_model} if base_model.isdigit() else {}
    job = CompositionJob.objects.filter(pk=source_id, owner=request.user).first()
    if job is None:
        return {}
    return {
        "base_model": job.base_model,
        **_selection_of(job),
        "examples": "\n".join(json.dumps(e) for e in job.examples),
        "heldout": "\n".join(json.dumps(e) for e in job.heldout),
        **{field: getattr(job, field) for field in SETTING_FIELDS},
    }


def _selection_of(job: CompositionJob) -> dict:
    """The modules of an earlier job as the form asks for them.

    A job whose hub-picked pool is larger than anyone may tick is asked for
    again as a pick of the same k: ticking the whole pool would be refused.
    """
    modules = [c.module_id for c in job.candidates.all() if c.module_id]
    if job.preselect and len(modules) > settings.HUB_MAX_CANDIDATES:
        return {"selection": "pick", "pick": job.preselect, "pick_method": job.preselect_method}
    return {"modules": modules}


@login_required
@require_POST
def parse_preview(request):
    """What the server makes of pasted examples: rows and per-row errors."""
    fmt = request.POST.get("format", "jsonl")
    if fmt not in FORMATS:
        return JsonResponse({"error": f"unknown format {fmt!r}"}, status=400)
    examples, errors = parse_examples(request.POST.get("text", ""), fmt)
    return JsonResponse(
        {
            "count": len(examples),
            "rows": [{"input": e.input, "target": e.target} for e in examples[:PREVIEW_ROWS]],
            "errors": [str(e) for e in errors],
        }
    )


def job_detail(request, job_id: int):
    try:
        job = composition_job_get(job_id=job_id, user=request.user)
    except CompositionJob.DoesNotExist as exc:
        raise Http404("No such composition.") from exc
    candidates = job_candidates(job=job, user=request.user)
    chart = loss_chart_context(
        job.loss_history, kind="best", y_name="objective", x_name="evaluation", second="best so far"
    )
    return render(
        request,
        "composition/job.html",
        {
            "job": job,
            "candidates": candidates,
            "is_owner": job.owner_id == request.user.pk,
            "phase": composition_phase(job),
            "licenses": COMMON_LICENSES,
            "source_licenses": licenses_in_words(
                source_licenses(c.module for c in services.composed_candidates(job))
            ),
            **chart,
        },
    )


@login_required
def job_list(request):
    jobs = CompositionJob.objects.filter(owner=request.user).select_related(
        "base_model", "result_module"
    )
    return render(request, "composition/list.html", {"jobs": jobs[:200]})


@login_required
@require_POST
def job_cancel(request, job_id: int):
    job = get_object_or_404(CompositionJob, pk=job_id, owner=request.user)
    try:
        services.composition_cancel(job=job)
    except services.JobStateError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Cancellation requested.")
    return redirect(job)


@login_required
@require_POST
def job_publish(request, job_id: int):
    job = get_object_or_404(CompositionJob, pk=job_id, owner=request.user)
    try:
        module = services.composition_publish(job=job, license=request.POST.get("license", ""))
    except services.JobStateError as exc:
        messages.error(request, str(exc))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{module.full_name} is now public ({module.license}).")
    return redirect(job)
