"""What a worker hands the engine: rows of the registry turned into engine references."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from composition.engine.types import AdapterRef, ModelRef
from modules.models import BaseModel, Module


def base_model_ref(base_model: BaseModel) -> ModelRef:
    """Where a worker finds the base model: a local folder, or a Hub download."""
    location = Path(base_model.weights_location)
    if not location.is_dir():
        from huggingface_hub import snapshot_download

        location = Path(
            snapshot_download(base_model.weights_location, cache_dir=settings.MODEL_CACHE_DIR)
        )
    return ModelRef(base_model.identifier, location, base_model.task_type)


def module_ref(module: Module) -> AdapterRef:
    from modules.services import module_local_folder

    weights = module.files.filter(filename="adapter_model.safetensors").first()
    return AdapterRef(
        module.full_name, module_local_folder(module), weights.sha256 if weights else None
    )


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "cpu"
