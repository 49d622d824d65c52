"""Template filters of the registry's pages."""

from django import template
from django.utils.dateparse import parse_datetime

register = template.Library()


@register.filter
def compact(value) -> str:
    """1234 → 1.2k, 135000000 → 135M: counts that fit a card."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= limit:
            scaled = number / limit
            return f"{scaled:.1f}{suffix}" if scaled < 10 else f"{scaled:.0f}{suffix}"
    return f"{number:.0f}"


@register.filter
def weight(value) -> str:
    try:
        return f"{float(value):+.3f}"
    except (TypeError, ValueError):
        return ""


@register.simple_tag(takes_context=True)
def top_modules(context, sort: str, limit: int = 6) -> list:
    """Modules for a page outside the registry (the home page), in the given order."""
    from modules.selectors import module_search

    user = context["request"].user
    return list(module_search(sort=sort, user=user).prefetch_related("tags")[:limit])


@register.filter
def isodatetime(value):
    """An ISO 8601 text (as job events store times) as a datetime, for |date."""
    return parse_datetime(value) if isinstance(value, str) else value


@register.filter
def words(value) -> str:
    """A machine name in words: "cancel_requested" → "Cancel requested"."""
    return str(value).replace("_", " ").capitalize()
