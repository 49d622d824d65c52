"""Site-wide pages: home, health, sign-up and account."""

from functools import wraps

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from rest_framework.authtoken.models import Token

from hubsite.forms import SignupForm
from hubsite.health import run_checks
from hubsite.throttling import SIGNUP, limit_attempts
from modules.selectors import base_model_list


def refused_form_is_400(view):
    """Answer a POST whose form was refused with 400, as the hub's own form pages do.

    For Django's class-based form views (log-in, password changes), which
    render a refused form with 200: a script or a test can tell it from success.
    """

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        context = getattr(response, "context_data", None) or {}
        form = context.get("form")
        if request.method == "POST" and response.status_code == 200 and form and form.errors:
            response.status_code = 400
        return response

    return wrapped


def favicon(request):
    """For pages that name no icon (the API's documentation, the admin)."""
    return redirect(static("img/favicon.svg"), permanent=True)


def home(request):
    return render(request, "home.html", {"base_models": base_model_list()})


@never_cache
def healthz(request):
    checks = run_checks()
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )


@require_http_methods(["GET", "POST"])
@limit_attempts(SIGNUP)
def signup(request):
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        messages.success(request, f"Welcome, {user.username}! Your account is ready.")
        return redirect("home")
    status = 400 if request.method == "POST" else 200
    return render(request, "registration/signup.html", {"form": form}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def account(request):
    token = Token.objects.filter(user=request.user).first()
    if request.method == "POST":
        # A new token replaces the old one, which stops working at once: asked first.
        if token is not None and request.POST.get("confirm") != "replace":
            return render(request, "account_token_replace.html", {"token": token})
        Token.objects.filter(user=request.user).delete()
        Token.objects.create(user=request.user)
        done = "A new API token was created"
        messages.success(request, f"{done}; the old one no longer works." if token else f"{done}.")
        return redirect("account")
    return render(request, "account.html", {"token": token})
