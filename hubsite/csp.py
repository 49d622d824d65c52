"""The Content-Security-Policy header, with the additions third-party pages need.

The site's policy is CONTENT_SECURITY_POLICY in the settings: its own pages
run no inline script or style. The API's documentation (Swagger UI, ReDoc)
and DRF's browsable API come from libraries whose pages set inline styles
(and ReDoc searches in a worker it makes from a blob): only those responses
get these additions. Their scripts are files the hub serves, as everywhere.
"""

from csp.constants import SELF, UNSAFE_INLINE
from csp.middleware import CSPMiddleware
from rest_framework.renderers import BrowsableAPIRenderer

ADDITIONS_BY_ROUTE = {
    "api-docs": {"style-src": [UNSAFE_INLINE]},
    "api-redoc": {"style-src": [UNSAFE_INLINE], "worker-src": [SELF, "blob:"]},
}
BROWSABLE_API_ADDITIONS = {"style-src": [UNSAFE_INLINE]}


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    def get_policy_parts(self, request, response, report_only=False):
        parts = super().get_policy_parts(request, response, report_only)
        additions = _additions(request, response)
        if additions:
            parts.update = {**additions, **(parts.update or {})}
        return parts


def _additions(request, response) -> dict | None:
    if isinstance(getattr(response, "accepted_renderer", None), BrowsableAPIRenderer):
        return BROWSABLE_API_ADDITIONS
    match = getattr(request, "resolver_match", None)
    return ADDITIONS_BY_ROUTE.get(match.url_name) if match else None
