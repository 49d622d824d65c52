"""Each job setting has one range and one default, shared by the form, the API and the service."""

import pytest
from django.conf import settings

from composition import services as composition_services
from composition.api import CompositionCreateInput
from composition.forms import CompositionForm
from composition.training import services as training_services
from composition.training.api import TrainingCreateInput
from composition.training.forms import TrainingForm
from hubsite.limits import out_of_range

KINDS = {
    "composition": (CompositionForm, CompositionCreateInput, composition_services.DEFAULTS),
    "training": (TrainingForm, TrainingCreateInput, training_services.DEFAULTS),
}
RANGED = [(kind, name) for kind in KINDS for name in settings.HUB_SETTING_RANGES[kind]]


@pytest.mark.parametrize("kind, name", RANGED)
def test_the_form_the_api_and_the_service_share_the_range_and_default(kind, name):
    form, serializer, defaults = KINDS[kind]
    low, high = settings.HUB_SETTING_RANGES[kind][name]
    form_field, api_field = form.base_fields[name], serializer().fields[name]

    assert (form_field.min_value, form_field.max_value) == (low, high)
    assert (api_field.min_value, api_field.max_value) == (low, high)
    assert form_field.initial == api_field.default == getattr(defaults, name)
    assert out_of_range(kind, {name: low}) == out_of_range(kind, {name: high}) == {}
    assert list(out_of_range(kind, {name: high * 2 + 1})) == [name]
    assert list(out_of_range(kind, {name: low - 1})) == [name]
