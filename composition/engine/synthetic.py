"""Randomly initialised models, tokenizers and LoRA modules, built offline.

For tests and benchmarks: timings and code paths do not depend on trained
weights, and nothing here needs the network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    LlamaConfig,
    PreTrainedTokenizerFast,
    T5Config,
)

WORDS = [
    "yes",
    "no",
    "true",
    "false",
    "a",
    "b",
    "c",
    "d",
    "the",
    "answer",
    "is",
    "question",
    "options",
    "which",
    "what",
    "who",
    "sentence",
    "contains",
    "not",
    "an",
    "of",
    "to",
    "and",
    "in",
    "sum",
    "plus",
    "minus",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "red",
    "green",
    "blue",
    "cat",
    "dog",
    "bird",
    "before",
    "after",
]


def build_word_tokenizer(folder: Path, *, seq2seq: bool) -> PreTrainedTokenizerFast:
    """A word-level tokenizer: T5's special-token layout, or a Llama-like one."""
    specials = ["<pad>", "</s>", "<unk>"] if seq2seq else ["<unk>", "<s>", "</s>", "<pad>"]
    vocab = {token: i for i, token in enumerate([*specials, *WORDS, "(", ")", ".", "?", ":", ","])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()]
    )
    if seq2seq:
        core.post_processor = processors.TemplateProcessing(
            single="$A </s>", special_tokens=[("</s>", vocab["</s>"])]
        )
    else:
        core.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", vocab["<s>"])]
        )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="</s>",
        bos_token=None if seq2seq else "<s>",
    )
    tokenizer.save_pretrained(folder)
    return tokenizer


def build_tiny_llama(folder: Path, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_word_tokenizer(folder, seq2seq=False)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    return folder


def build_tiny_t5(folder: Path, seed: int = 0, **shape: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_word_tokenizer(folder, seq2seq=True)
    # ``shape`` may set vocab_size beyond the tokenizer's, to time a real model's size.
    dims = {
        "vocab_size": len(tokenizer),
        "d_model": 32,
        "d_kv": 8,
        "d_ff": 64,
        "num_layers": 2,
        "num_heads": 4,
        **shape,
    }
    config = T5Config(
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        **dims,
    )
    torch.manual_seed(seed)
    AutoModelForSeq2SeqLM.from_config(config).save_pretrained(folder)
    return folder


def build_lora(
    base_dir: Path,
    out_dir: Path,
    *,
    seed: int,
    task_type: str,
    targets: tuple[str, ...],
    rank: int = 4,
    alpha: int = 8,
    base_id: str = "tiny/base",
    std: float = 0.3,
    options: dict[str, Any] | None = None,
) -> Path:
    """A PEFT LoRA module with random A *and* B (a fresh one has B = 0).

    ``options`` go to PEFT's ``LoraConfig`` as well (``use_rslora``, ``rank_pattern``…).
    """
    [folder] = build_loras(
        base_dir, [out_dir], seeds=[seed], task_type=task_type, targets=targets,
        rank=rank, alpha=alpha, base_id=base_id, std=std, options=options,
    )  # fmt: skip
    return folder


def build_loras(
    base_dir: Path,
    out_dirs: list[Path],
    *,
    seeds: list[int],
    task_type: str,
    targets: tuple[str, ...],
    rank: int = 4,
    alpha: int = 8,
    base_id: str = "tiny/base",
    std: float = 0.3,
    options: dict[str, Any] | None = None,
) -> list[Path]:
    """Several random modules, loading the base model once."""
    from peft import LoraConfig, get_peft_model

    auto = AutoModelForSeq2SeqLM if task_type == "SEQ_2_SEQ_LM" else AutoModelForCausalLM
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        target_modules=list(targets),
        task_type=task_type,
        init_lora_weights=False,
        **(options or {}),
    )
    peft_model = get_peft_model(auto.from_pretrained(base_dir), config)
    for out_dir, seed in zip(out_dirs, seeds, strict=True):
        torch.manual_seed(seed)
        with torch.no_grad():
            for name, parameter in peft_model.named_parameters():
                if "lora_" in name:
                    parameter.normal_(0, std)
        peft_model.save_pretrained(str(out_dir))
        config_path = out_dir / "adapter_config.json"
        saved = json.loads(config_path.read_text())
        saved["base_model_name_or_path"] = base_id
        config_path.write_text(json.dumps(saved))
    return out_dirs
