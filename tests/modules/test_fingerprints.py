"""Module fingerprints for candidate retrieval: at upload, and backfilled for older modules."""

import numpy as np
import pytest
from django.core.management import call_command

from composition.engine.adapters import AdapterCache
from composition.engine.fingerprints import Fingerprint, fingerprint_adapter
from composition.engine.types import AdapterRef
from modules.models import ModuleFingerprint
from modules.validation import ADAPTER_CONFIG, SAFETENSORS_WEIGHTS
from tests.modules.test_views import form_files

pytestmark = pytest.mark.django_db


def stored_fingerprint(module) -> Fingerprint:
    return Fingerprint.from_bytes(bytes(ModuleFingerprint.objects.get(module=module).data))


def test_an_uploaded_module_is_stored_with_the_fingerprint_of_its_weights(
    client, user, base_model, adapter_dir
):
    client.force_login(user)

    response = client.post(
        "/modules/new/",
        {
            "files": form_files(adapter_dir, ADAPTER_CONFIG, SAFETENSORS_WEIGHTS),
            "name": "fingerprinted",
            "base_model": "acme/tiny-llama",
            "visibility": "public",
        },
    )

    assert response.status_code == 302
    module = user.modules.get(name="fingerprinted")
    expected = fingerprint_adapter(AdapterCache().get(AdapterRef("x", adapter_dir)))
    stored = stored_fingerprint(module)
    assert stored.layers == expected.layers
    assert np.array_equal(stored.directions, expected.directions)


def test_the_backfill_fingerprints_modules_registered_before_and_leaves_others(module, capsys):
    before = bytes(ModuleFingerprint.objects.get(module=module).data)
    ModuleFingerprint.objects.all().delete()

    call_command("fingerprint_modules")

    assert "Fingerprinted 1 modules" in capsys.readouterr().out
    assert bytes(ModuleFingerprint.objects.get(module=module).data) == before
    call_command("fingerprint_modules")
    assert "Fingerprinted 0 modules" in capsys.readouterr().out


def test_weights_that_cannot_be_fingerprinted_give_none_rather_than_an_error(tmp_path):
    from modules.services.fingerprints import fingerprint_bytes

    weights = tmp_path / SAFETENSORS_WEIGHTS
    weights.write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")

    assert fingerprint_bytes(weights, {"r": 4, "lora_alpha": 8}) is None
