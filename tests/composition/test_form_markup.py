"""Every field of the hub's forms has a name assistive technology can read."""

import pytest

from tests.form_markup import unlabelled_controls

PAGES = ["/compose/", "/train/", "/modules/new/", "/modules/import/", "/accounts/me/"]


@pytest.mark.parametrize("path", PAGES)
def test_every_field_is_labelled(client, user, tiny_modules, path):
    client.force_login(user)

    response = client.get(path)

    assert response.status_code == 200
    assert unlabelled_controls(response.content.decode()) == []


@pytest.mark.parametrize(
    "path", ["/accounts/login/", "/accounts/signup/", "/accounts/password_reset/"]
)
def test_every_field_of_the_account_forms_is_labelled(client, db, path):
    assert unlabelled_controls(client.get(path).content.decode()) == []


def test_a_refused_composition_marks_its_fields(client, user, tiny_modules):
    client.force_login(user)

    response = client.post("/compose/", {"selection": "choose", "steps": "0"})

    html = response.content.decode()
    assert response.status_code == 400
    assert 'id="id_steps_error"' in html
    assert "Steps must be at least 1." in html
    assert "Choose at least 2 modules." in html
