"""Pages of module training: the form, the live job page, the list."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from composition.charts import loss_chart_context
from composition.models import TrainingJob
from composition.training import selectors, services
from composition.training.forms import SETTING_FIELDS, TrainingForm
from composition.views import submit_form


@login_required
def training_new(request):
    form = TrainingForm(request.POST or None, request.FILES or None, initial=_initial(request))
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            job, status = submit_form(request, form, services.training_submit)
            if job is not None:
                messages.success(request, f"Training #{job.pk} is queued.")
                return redirect(job)
    return render(request, "composition/training/new.html", {"form": form}, status=status)


def _initial(request) -> dict:
    """The settings of an earlier job of the user's ("train again"), or the base model asked for."""
    source_id = request.GET.get("from", "")
    job = None
    if source_id.isdigit():
        job = TrainingJob.objects.filter(pk=source_id, owner=request.user).first()
    if job is None:
        base_model = request.GET.get("base_model", "")
        return {"base_model": base_model} if base_model.isdigit() else {}
    return {
        "base_model": job.base_model,
        "target_modules": ", ".join(job.target_modules),
        "public": job.make_public,
        **{field: getattr(job, field) for field in SETTING_FIELDS},
    }


def training_job_detail(request, job_id: int):
    job = selectors.training_job_visible(user=request.user, job_id=job_id)
    if job is None:
        raise Http404("No such training job.")
    chart = loss_chart_context(
        job.loss_history,
        kind="mean10",
        y_name="training loss",
        x_name="step",
        second="mean of the last 10 steps",
    )
    return render(
        request,
        "composition/training/job.html",
        {"job": job, "is_owner": job.owner_id == request.user.pk, **chart},
    )


@login_required
def training_job_list(request):
    jobs = selectors.training_jobs_of(user=request.user)
    return render(request, "composition/training/list.html", {"jobs": jobs[:200]})


@login_required
@require_POST
def training_job_cancel(request, job_id: int):
    job = get_object_or_404(TrainingJob, pk=job_id, owner=request.user)
    try:
        services.training_cancel(job=job)
    except services.JobStateError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Cancellation requested.")
    return redirect(job)
