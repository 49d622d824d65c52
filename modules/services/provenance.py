"""Where an imported module came from, and a config made to name its chosen base model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from modules.models import Module
from modules.validation import ADAPTER_CONFIG


@dataclass(frozen=True)
class HubSource:
    """An imported module's origin: endpoint, repository id and the commit read."""

    endpoint: str
    repo_id: str
    revision: str


def module_record_source(*, module: Module, source: HubSource) -> None:
    """Record where ``module`` was imported from (shown on its page and in the API)."""
    Module.objects.filter(pk=module.pk).update(
        source_endpoint=source.endpoint,
        source_repo=source.repo_id,
        source_revision=source.revision,
    )
    module.source_endpoint = source.endpoint
    module.source_repo = source.repo_id
    module.source_revision = source.revision


def adapter_config_naming(config_path: Path, identifier: str, work_dir: Path) -> Path:
    """A copy of ``adapter_config.json`` whose ``base_model_name_or_path`` is ``identifier``.

    Written as PEFT's ``save_pretrained`` writes it (sorted keys, two-space
    indent); a config that already names it, or that is not a JSON object
    (validation then says why), is returned as it is.
    """
    try:
        config = json.loads(config_path.read_bytes())
    except ValueError:
        return config_path
    if not isinstance(config, dict) or config.get("base_model_name_or_path") == identifier:
        return config_path
    config["base_model_name_or_path"] = identifier
    work_dir.mkdir(parents=True, exist_ok=True)
    rewritten = work_dir / ADAPTER_CONFIG
    rewritten.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return rewritten
