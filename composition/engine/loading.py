"""Loading base models, kept in memory across jobs of one worker process."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from composition.engine.types import SEQ_2_SEQ_LM, ModelRef

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        # bf16 halves memory and time on accelerators; CPUs are faster and
        # exact in fp32.
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    resolved: torch.dtype = getattr(torch, dtype)
    return resolved


@dataclass
class LoadedModel:
    ref: ModelRef
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    dtype: torch.dtype
    load_seconds: float
    # Guards the model while one job has composed LoRA layers in it.
    lock: threading.Lock


class BaseModelCache:
    """Base models by (path, dtype, device), least recently used evicted first."""

    def __init__(self, max_models: int = 2):
        self.max_models = max_models
        # (folder, dtype, device) to the model.
        self._models: OrderedDict[tuple[str, str, str], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, ref: ModelRef, device: str = "auto", dtype: str = "auto"
    ) -> tuple[LoadedModel, bool]:
        """The loaded model and whether it was already in memory (a warm start)."""
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        key = (str(Path(ref.path).resolve()), str(torch_dtype), str(torch_device))
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key], True
            loaded = load_model(ref, torch_device, torch_dtype)
            self._models[key] = loaded
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
            return loaded, False

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


def load_model(ref: ModelRef, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    started = time.perf_counter()
    auto_class = AutoModelForSeq2SeqLM if ref.task_type == SEQ_2_SEQ_LM else AutoModelForCausalLM
    model = auto_class.from_pretrained(ref.path, dtype=dtype).to(device)
    model.eval()
    model.requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(ref.path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(
        ref=ref,
        model=model,
        tokenizer=tokenizer,
        device=device,
        dtype=dtype,
        load_seconds=time.perf_counter() - started,
        lock=threading.Lock(),
    )


# One cache per process: a worker keeps its base models between jobs.
base_model_cache = BaseModelCache()
