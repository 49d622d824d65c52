"""A composed module's license follows from its sources: theirs when they agree,
else the one its owner chooses on publishing (page and API)."""

from html import unescape

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from composition import results, services
from composition.models import CompositionJob
from modules.models import Module

pytestmark = pytest.mark.django_db


def composed(user, submission, tiny_modules, licenses) -> CompositionJob:
    for module, license in zip(tiny_modules, licenses, strict=False):
        Module.objects.filter(pk=module.pk).update(license=license)
    job = services.composition_submit(owner=user, submission=submission())
    results.composition_run(job_id=job.pk, attempt=job.attempt, worker_host="test@host")
    job.refresh_from_db()
    return job


def test_sources_that_agree_give_the_composed_module_their_license(user, submission, tiny_modules):
    job = composed(user, submission, tiny_modules, ["apache-2.0"] * 3)

    module = job.result_module
    assert module.license == "apache-2.0"
    assert "license: apache-2.0" in module.card and "license: other" not in module.card
    assert "License: apache-2.0, the license of all its sources." in module.card


def test_sources_that_differ_leave_the_choice_to_the_owner_on_the_job_page(
    client, user, submission, tiny_modules
):
    job = composed(user, submission, tiny_modules, ["apache-2.0", "mit", "mit"])
    assert job.result_module.license == ""
    assert "license: other" not in job.result_module.card
    client.force_login(user)

    page = unescape(client.get(f"/compose/jobs/{job.pk}/").content.decode())

    assert "Its sources' licenses differ: mit (2), apache-2.0 (1)." in page
    assert '<label for="publish-license">License of the composed module</label>' in page
    refused = unescape(
        client.post(f"/compose/jobs/{job.pk}/publish/", follow=True).content.decode()
    )
    assert "Choose a license: the sources' licenses differ (mit (2), apache-2.0 (1))." in refused
    assert not Module.objects.get(pk=job.result_module_id).is_public

    client.post(f"/compose/jobs/{job.pk}/publish/", {"license": "mit"})

    module = Module.objects.get(pk=job.result_module_id)
    assert module.is_public and module.license == "mit"
    assert "license: mit" in module.card
    assert "License: mit, chosen by its owner (its sources' licenses differ:" in module.card


def test_the_api_asks_for_a_license_when_the_sources_differ(user, submission, tiny_modules):
    job = composed(user, submission, tiny_modules, ["apache-2.0", "", "mit"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    url = f"/api/v1/compositions/{job.pk}/publish/"

    refused = api.post(url, {}, format="json")

    assert refused.status_code == 400
    assert refused.json() == {
        "license": [
            "Choose a license: the sources' licenses differ "
            "(apache-2.0 (1), mit (1), none given (1))."
        ]
    }
    published = api.post(url, {"license": "apache-2.0"}, format="json")
    assert published.status_code == 200
    assert published.json()["license"] == "apache-2.0"
