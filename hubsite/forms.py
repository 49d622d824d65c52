from django.conf import settings
from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import ValidationError
from django.urls import URLResolver, get_resolver


def site_path_segments(patterns=None) -> set[str]:
    """First path segments the site itself uses (admin, api, compose, …)."""
    patterns = get_resolver().url_patterns if patterns is None else patterns
    segments = {settings.STATIC_URL.strip("/"), settings.MEDIA_URL.strip("/")}
    for pattern in patterns:
        first = str(pattern.pattern).lstrip("^").split("/")[0]
        if first and "<" not in first:
            segments.add(first)
        elif not first and isinstance(pattern, URLResolver):
            segments |= site_path_segments(pattern.url_patterns)
    return segments


class SignupForm(UserCreationForm):
    def clean_username(self):
        username = super().clean_username()
        # Owner pages live at /<username>/: a name the site already uses for
        # its own pages (admin, api, compose…) would clash with them.
        if username.lower() in {s.lower() for s in site_path_segments()}:
            raise ValidationError("This name is used by the site itself; choose another.")
        return username
