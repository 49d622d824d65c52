"""Ranges of job settings (HUB_SETTING_RANGES), read alike by forms, serializers, services."""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings


def setting_range(kind: str, name: str) -> tuple[float, float]:
    return settings.HUB_SETTING_RANGES[kind][name]


def bounds(kind: str, name: str) -> dict:
    """``min_value`` and ``max_value`` of a form or serializer field."""
    low, high = setting_range(kind, name)
    return {"min_value": low, "max_value": high}


def out_of_range(kind: str, values: Mapping[str, float | None]) -> dict[str, list[str]]:
    """Errors per field for the values outside their range (None: not given, not checked)."""
    errors: dict[str, list[str]] = {}
    for name, (low, high) in settings.HUB_SETTING_RANGES[kind].items():
        value = values.get(name)
        if value is not None and not low <= value <= high:
            errors[name] = [f"Use a value from {low:g} to {high:g}."]
    return errors
