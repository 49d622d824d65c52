from django import forms
from django.conf import settings
from django.contrib.auth.forms import (
    AuthenticationForm,
    PasswordChangeForm,
    PasswordResetForm,
    SetPasswordForm,
    UserCreationForm,
)
from django.core.exceptions import ValidationError
from django.urls import URLResolver, get_resolver

from hubsite.text import printable
from hubsite.wording import naming_the_field


class PrintableErrors:
    """A form mixin: errors show control characters as escapes, and stock messages
    ("This field is required.") name their field.

    Some errors repeat what was sent ("Select a valid choice. … is not one of
    the available choices"), and pages are read on terminals too (curl).
    """

    def add_error(self, field, error):
        super().add_error(field, error)
        for name, errors in self._errors.items():
            label = str(self[name].label) if name in self.fields else ""
            errors.data = [_printable_error(error, label) for error in errors.as_data()]


def _printable_error(error: ValidationError, label: str) -> ValidationError:
    message = next(iter(error))
    shown = printable(message)
    if label:
        shown = naming_the_field(shown, label)
    return error if shown == message else ValidationError(shown, code=error.code)


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


class SignupForm(PrintableErrors, UserCreationForm):
    email = forms.EmailField(
        required=False,
        label="E-mail (optional)",
        help_text="Only to send you a link if you forget your password; never shown.",
    )

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")

    def clean_username(self):
        # The field trims what was typed; a name is taken as typed or refused.
        typed = self.data.get(self.add_prefix("username"), "")
        if isinstance(typed, str) and typed != typed.strip():
            raise ValidationError("Remove the spaces before or after the user name.")
        username = super().clean_username()
        # Owner pages live at /<username>/: a name the site already uses for
        # its own pages (admin, api, compose…) would clash with them.
        if username.lower() in {s.lower() for s in site_path_segments()}:
            raise ValidationError("This name is used by the site itself; choose another.")
        return username


class LoginForm(PrintableErrors, AuthenticationForm):
    pass


class ResetRequestForm(PrintableErrors, PasswordResetForm):
    pass


class NewPasswordForm(PrintableErrors, SetPasswordForm):
    pass


class ChangePasswordForm(PrintableErrors, PasswordChangeForm):
    pass
