"""Limits on password guessing: log-in attempts (the form, the admin's form and the
API's token endpoint) and sign-up attempts.

Each attempt is counted twice, for the client's address and for the account
name it names, in the "throttle" cache; beyond either limit the answer is a
429 with ``Retry-After``. Every web process must see the same counts, so that
cache is a database table by default (``HUB_THROTTLE_CACHE_URL``): a cache in
each process's memory would let gunicorn's workers each allow the full limit.
The counts are DRF's throttle histories; two processes updating one at the
same instant can lose an attempt, so a burst of parallel requests may get a
few past a limit, never many.
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
from collections.abc import Callable, Sequence
from functools import wraps

from django.conf import settings
from django.core.cache import caches
from django.shortcuts import render
from rest_framework.throttling import SimpleRateThrottle


class AttemptThrottle(SimpleRateThrottle):
    """Attempts of one kind (``action``) per client address or per account name (``per``)."""

    action = ""  # "login" or "signup"
    per = ""  # "ip" or "account"
    cache_format = "throttle:%(scope)s:%(ident)s"

    def __init__(self):
        # Read at each request, so a changed setting applies at once.
        self.cache = caches["throttle"]
        self.scope = f"{self.action}-{self.per}"
        self.rate = getattr(settings, f"HUB_{self.action.upper()}_RATE_PER_{self.per.upper()}")
        self.num_requests, self.duration = self.rate  # (attempts, seconds)

    def get_cache_key(self, request, view) -> str | None:
        ident = self.get_ident(request) if self.per == "ip" else submitted_username(request)
        if not ident:
            return None
        # Hashed: an account name may be anything up to the form's length limit.
        digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
        return self.cache_format % {"scope": self.scope, "ident": digest}

    def wait(self) -> float | None:
        """Seconds until the oldest attempt that counts against the limit expires."""
        if len(self.history) < self.num_requests:
            return None
        oldest_counted = self.history[self.num_requests - 1]
        return max(self.duration - (self.now - oldest_counted), 1.0)


class LoginPerIp(AttemptThrottle):
    action, per = "login", "ip"


class LoginPerAccount(AttemptThrottle):
    action, per = "login", "account"


class SignupPerIp(AttemptThrottle):
    action, per = "signup", "ip"


class SignupPerAccount(AttemptThrottle):
    action, per = "signup", "account"


LOGIN = (LoginPerIp, LoginPerAccount)
SIGNUP = (SignupPerIp, SignupPerAccount)


def submitted_username(request) -> str:
    """The account name a form or API request names, normalised so case does not evade a limit."""
    data = request.data if hasattr(request, "data") else request.POST
    value = data.get("username", "") if hasattr(data, "get") else ""
    return unicodedata.normalize("NFKC", str(value)).strip().casefold()


def seconds_to_wait(request, throttles: Sequence[type[AttemptThrottle]]) -> int | None:
    """Count this attempt; None if it may go on, else the seconds before the next may.

    Like DRF's own check, every throttle sees the attempt.
    """
    waits = []
    for throttle_class in throttles:
        throttle = throttle_class()
        if not throttle.allow_request(request, None):
            waits.append(throttle.wait() or throttle.duration)
    return math.ceil(max(waits)) if waits else None


def limit_attempts(throttles: Sequence[type[AttemptThrottle]]) -> Callable:
    """Decorate a form view: a POST beyond the limits gets a 429 page with ``Retry-After``."""

    def decorator(view):
        @wraps(view)
        def limited(request, *args, **kwargs):
            if request.method == "POST":
                wait = seconds_to_wait(request, throttles)
                if wait is not None:
                    return too_many_attempts(request, wait)
            return view(request, *args, **kwargs)

        return limited

    return decorator


def too_many_attempts(request, wait: int):
    response = render(
        request,
        "registration/too_many_attempts.html",
        {"wait": _in_words(wait), "back": request.get_full_path()},
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response


def _in_words(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"
