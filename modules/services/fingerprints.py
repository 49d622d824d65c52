"""Module fingerprints for candidate retrieval: computed at registration, or backfilled.

numpy only (``composition.engine.fingerprints``), one layer in memory at a
time: the web process that registers an upload stays light.
"""

from __future__ import annotations

import logging
from pathlib import Path

from composition.engine.fingerprints import fingerprint_safetensors
from composition.engine.types import EngineError
from modules.models import Module, ModuleFingerprint
from modules.validation import SAFETENSORS_WEIGHTS

logger = logging.getLogger(__name__)


def fingerprint_bytes(weights: Path, config: dict) -> bytes | None:
    """The stored form of the fingerprint of a weights file; None for what cannot be composed."""
    try:
        return fingerprint_safetensors(weights, config).to_bytes()
    except (EngineError, ValueError, KeyError, OSError) as exc:
        # The module stays usable; retrieval computes it later or ranks it last.
        logger.warning("no fingerprint for %s: %s", weights, exc)
        return None


def module_fingerprint_store(*, module: Module, data: bytes, weights_sha256: str) -> None:
    ModuleFingerprint.objects.update_or_create(
        module=module, defaults={"data": data, "weights_sha256": weights_sha256}
    )


def module_fingerprint_refresh(*, module: Module) -> bool:
    """Compute and store ``module``'s fingerprint from its stored weights; whether one was."""
    from modules.services.worker_files import module_local_files

    weights = module.files.filter(filename=SAFETENSORS_WEIGHTS).first()
    if weights is None:
        return False
    data = fingerprint_bytes(module_local_files(module)[SAFETENSORS_WEIGHTS], module.adapter_config)
    if data is None:
        return False
    module_fingerprint_store(module=module, data=data, weights_sha256=weights.sha256)
    return True


def modules_without_fingerprint():
    """Modules with no fingerprint yet (registered before fingerprints existed)."""
    return Module.objects.filter(fingerprint__isnull=True).order_by("id")
