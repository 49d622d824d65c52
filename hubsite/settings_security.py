"""How the hub is reached and defended: hosts, HTTPS behind a proxy, the
Content-Security-Policy and the limits on log-in and sign-up attempts.

Read from the environment like the rest of the settings; ``hubsite.settings``
imports every name defined here. The README's configuration table lists every
variable read here too.
"""

import re

import environ
from csp import constants as csp

env = environ.Env()


def _rate(text: str, variable: str) -> tuple[int, int]:
    """``"10/15m"`` as (10, 900): attempts per period in s, m, h or d."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*", text)
    if not match or int(match[1]) < 1 or int(match[2] or 1) < 1:
        raise environ.ImproperlyConfigured(
            f"{variable} must be attempts per period, such as 10/15m or 100/d, not {text!r}"
        )
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[3]]
    return int(match[1]), int(match[2] or 1) * unit


DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Absolute URL of the hub as users reach it; used in links the hub prints.
HUB_PUBLIC_URL = env.str("HUB_PUBLIC_URL", default="http://127.0.0.1:8000")

# --- HTTPS ------------------------------------------------------------------
# A hub users reach over https (and not in DEBUG) redirects plain HTTP, sends
# HSTS and marks its cookies Secure. TLS is expected to end at a reverse proxy
# that says so in X-Forwarded-Proto and appends the client's address to
# X-Forwarded-For. The embedded http://127.0.0.1 default does none of this.
SERVES_HTTPS = HUB_PUBLIC_URL.lower().startswith("https://") and not DEBUG
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=SERVES_HTTPS)
# Container health checks call /healthz over plain HTTP, past the proxy.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 86400 if SERVES_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Preloading asks browsers to ship the domain as HTTPS-only, hard to undo: an
# operator opts in, and Django's reminder (W021) is silenced until then.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SERVES_HTTPS
_proxy_ssl_header = env.str(
    "SECURE_PROXY_SSL_HEADER", default="X-Forwarded-Proto" if SERVES_HTTPS else ""
)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https") if _proxy_ssl_header else None
)
# Reverse proxies in front of the web processes that append the client's address
# to X-Forwarded-For (0: clients connect directly).
HUB_PROXY_COUNT = env.int("HUB_PROXY_COUNT", default=1 if SERVES_HTTPS else 0)

# Content-Security-Policy: scripts, styles and fonts from the hub alone (no inline
# script, style or handler in its pages), fetches to the hub; images from
# anywhere, since model cards link them. The API docs pages add what their
# bundles need (hubsite/csp.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp.SELF],
        "script-src": [csp.SELF],
        "style-src": [csp.SELF],
        "img-src": [csp.SELF, "data:", "https:", "http:"],
        "font-src": [csp.SELF],
        "connect-src": [csp.SELF],
        "object-src": [csp.NONE],
        "base-uri": [csp.SELF],
        "form-action": [csp.SELF],
        "frame-ancestors": [csp.NONE],
        "upgrade-insecure-requests": SERVES_HTTPS,
    }
}

# --- Attempt limits ---------------------------------------------------------
# Log-in (form, admin and API token) and sign-up attempts, per client address and
# per account name (hubsite/throttling.py), counted in the "throttle" cache. That
# cache must be shared by every web process: by default a table in the database
# (created by ``migrate``), which every worker and web node already shares;
# ``redis://…`` works too. Not ``locmemcache://``: each process would count alone.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "throttle": env.cache("HUB_THROTTLE_CACHE_URL", default="dbcache://hub_throttle"),
}
# A full table or file cache makes room by dropping expired entries first, then
# arbitrary ones: with Django's default (300) an attacker could flush a victim's
# count by sending attempts for many other names. Redis ignores this.
CACHES["throttle"].setdefault("OPTIONS", {}).setdefault("MAX_ENTRIES", 100_000)
HUB_LOGIN_RATE_PER_IP = _rate(
    env.str("HUB_LOGIN_RATE_PER_IP", default="30/10m"), "HUB_LOGIN_RATE_PER_IP"
)
HUB_LOGIN_RATE_PER_ACCOUNT = _rate(
    env.str("HUB_LOGIN_RATE_PER_ACCOUNT", default="10/10m"), "HUB_LOGIN_RATE_PER_ACCOUNT"
)
HUB_SIGNUP_RATE_PER_IP = _rate(
    env.str("HUB_SIGNUP_RATE_PER_IP", default="10/h"), "HUB_SIGNUP_RATE_PER_IP"
)
HUB_SIGNUP_RATE_PER_ACCOUNT = _rate(
    env.str("HUB_SIGNUP_RATE_PER_ACCOUNT", default="5/h"), "HUB_SIGNUP_RATE_PER_ACCOUNT"
)
