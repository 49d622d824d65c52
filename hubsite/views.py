"""Site-wide pages: home, health, sign-up and account."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from rest_framework.authtoken.models import Token

from hubsite.forms import SignupForm
from hubsite.health import run_checks
from hubsite.throttling import SIGNUP, limit_attempts
from modules.selectors import base_model_list


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
    return render(request, "registration/signup.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def account(request):
    if request.method == "POST":
        # A new token replaces the old one, which stops working at once.
        Token.objects.filter(user=request.user).delete()
        Token.objects.create(user=request.user)
        messages.success(request, "A new API token was created; the old one no longer works.")
        return redirect("account")
    token = Token.objects.filter(user=request.user).first()
    return render(request, "account.html", {"token": token})
