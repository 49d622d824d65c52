"""Checks of uploaded PEFT LoRA adapters, in plain Python (no Django).

Everything here reads files from a local folder and either returns typed
summaries or raises ``AdapterInvalid`` with one ``Problem`` per failed rule,
each naming the file, and the tensor where there is one, with what was
expected and what was found. Weights are never loaded to check them: the
safetensors header says everything the rules need. The one exception is the
conversion of a pickled ``adapter_model.bin``, done only with PyTorch's
restricted ``weights_only`` loader.

One module per concern: ``common`` (file names, results, failures),
``config`` (adapter_config.json), ``header`` (the safetensors header),
``tensors`` (LoRA pairs against config and base model), ``archive`` (.zip
uploads) and ``pickled`` (adapter_model.bin). Callers import from here.
"""

from modules.validation.archive import UNNAMED_ARCHIVE, extract_adapter_zip
from modules.validation.common import (
    ADAPTER_CONFIG,
    ADAPTER_FILES,
    CHUNK_BYTES,
    MAX_REPORTED_PROBLEMS,
    MODEL_CARD,
    PICKLED_WEIGHTS,
    SAFETENSORS_WEIGHTS,
    AdapterInvalid,
    AdapterSummary,
    BaseModelShape,
    LocalFile,
    LoraConfigInfo,
    Problem,
    TensorInfo,
    hash_file,
)
from modules.validation.config import MAX_CONFIG_BYTES, SUPPORTED_TASK_TYPES, read_lora_config
from modules.validation.header import DTYPE_SIZES, MAX_HEADER_BYTES, read_safetensors_header
from modules.validation.pickled import convert_pickled_weights
from modules.validation.tensors import (
    FLOAT_DTYPES,
    LAYER_CONTAINERS,
    LORA_TENSOR,
    MAX_MODULE_PATH_LENGTH,
    PEFT_PREFIX,
    check_lora_tensors,
    validate_adapter,
)

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_FILES",
    "CHUNK_BYTES",
    "DTYPE_SIZES",
    "FLOAT_DTYPES",
    "LAYER_CONTAINERS",
    "LORA_TENSOR",
    "MAX_CONFIG_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_MODULE_PATH_LENGTH",
    "MAX_REPORTED_PROBLEMS",
    "MODEL_CARD",
    "PEFT_PREFIX",
    "PICKLED_WEIGHTS",
    "SAFETENSORS_WEIGHTS",
    "SUPPORTED_TASK_TYPES",
    "UNNAMED_ARCHIVE",
    "AdapterInvalid",
    "AdapterSummary",
    "BaseModelShape",
    "LocalFile",
    "LoraConfigInfo",
    "Problem",
    "TensorInfo",
    "check_lora_tensors",
    "convert_pickled_weights",
    "extract_adapter_zip",
    "hash_file",
    "read_lora_config",
    "read_safetensors_header",
    "validate_adapter",
]
