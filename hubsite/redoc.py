"""ReDoc's script as the API documentation page loads it: the hub's copy, less its
one request to another site (the Redocly logo beside "API docs by Redocly").

The script is drf-spectacular-sidecar's, read once per process; the logo's
empty address makes ReDoc drop the image (its error handler hides it).
"""

from functools import cache

from django.contrib.staticfiles import finders
from django.http import HttpResponse
from django.views.decorators.cache import cache_control

BUNDLE = "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
REMOTE_LOGO = '"https://cdn.redoc.ly/redoc/logo-mini.svg"'


@cache
def local_bundle() -> bytes:
    with open(finders.find(BUNDLE), encoding="utf-8") as script:
        return script.read().replace(REMOTE_LOGO, '""').encode()


@cache_control(max_age=3600, public=True)
def redoc_script(request):
    return HttpResponse(local_bundle(), content_type="text/javascript; charset=utf-8")
