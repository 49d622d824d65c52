"""What the registry's API views share: finding the module a URL names, a
service's errors as a 400 per field, and the fields for names and tags."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied

from modules.cards import split_tags
from modules.models import (
    MODULE_NAME_PATTERN,
    Module,
    module_name_validator,
    refuse_surrounding_whitespace,
)
from modules.selectors import module_get


def visible_module(request, owner: str, name: str) -> Module:
    try:
        return module_get(owner=owner, name=name, user=request.user)
    except Module.DoesNotExist as exc:
        raise NotFound(f"No module {owner}/{name}.") from exc


def owned_module(request, owner: str, name: str) -> Module:
    module = visible_module(request, owner, name)
    if module.owner_id != request.user.pk:
        raise PermissionDenied(f"Only {module.owner.username} can change {module.full_name}.")
    return module


def field_errors(exc: DjangoValidationError) -> serializers.ValidationError:
    """A service's ValidationError as DRF's 400 with errors per field."""
    return serializers.ValidationError(
        exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
    )


class ModuleNameField(serializers.RegexField):
    """A module name as sent: spaces around it are refused, not trimmed away."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 96)
        kwargs.setdefault("error_messages", {"invalid": module_name_validator.message})
        super().__init__(MODULE_NAME_PATTERN, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            refuse_surrounding_whitespace(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc
        return value


class TagsField(serializers.ListField):
    """Tags as repeated fields or a list; each item may hold several, comma-separated.

    Blank items are dropped: a form's empty Tags field sends one (the field is optional).
    """

    child = serializers.CharField(max_length=200, allow_blank=True)

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = [data]
        items = super().to_internal_value(data)
        return [tag for item in items for tag in split_tags(item)]
