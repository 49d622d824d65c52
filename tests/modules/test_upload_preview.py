"""The upload form's in-browser preview reads adapters as the server does.

static/js/adapter-preview.js runs here under Node (same File, Blob and
DecompressionStream APIs as browsers) on real adapters, loose and zipped.
"""

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from django.conf import settings

from modules.storage import zip_stream
from modules.validation import ADAPTER_CONFIG, SAFETENSORS_WEIGHTS, validate_adapter
from tests.modules.adapters import edit_config, zip_folder

NODE = shutil.which("node")
# Each test runs the page's script in Node.js: a process per test.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NODE is None, reason="Node.js is not installed"),
]
PREVIEW_MODULE = Path(settings.BASE_DIR) / "static" / "js" / "adapter-preview.js"
SHAPES = {"acme/tiny-llama": {"q_proj": [[64, 64]], "v_proj": [[64, 32]]}}
SCRIPT = """
import { readFileSync } from "node:fs";
import { previewAdapter } from "%s";
const [base, ...paths] = JSON.parse(process.argv[1]);
const files = paths.map((p) => new File([readFileSync(p)], p.split("/").pop()));
try {
  console.log(JSON.stringify(await previewAdapter(files, %s, base)));
} catch (error) {
  console.log(JSON.stringify({ error: error.message }));
}
"""


def preview(*paths, base="acme/tiny-llama") -> dict:
    script = SCRIPT % (PREVIEW_MODULE.as_uri(), json.dumps(SHAPES))
    result = subprocess.run(
        [NODE, "--input-type=module", "-e", script, json.dumps([base, *map(str, paths)])],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_preview_of_loose_files_matches_the_servers_summary(adapter_dir):
    summary = validate_adapter(adapter_dir / ADAPTER_CONFIG, adapter_dir / SAFETENSORS_WEIGHTS)

    shown = preview(adapter_dir / ADAPTER_CONFIG, adapter_dir / SAFETENSORS_WEIGHTS)

    assert shown["rank"] == summary.config.r
    assert shown["loraAlpha"] == summary.config.lora_alpha
    assert shown["targetModules"] == list(summary.target_modules)
    assert shown["parameterCount"] == summary.parameter_count
    assert shown["adaptedModuleCount"] == summary.adapted_module_count
    assert shown["problems"] == []
    assert shown["card"] is False


def test_preview_reads_inside_a_deflated_zip(adapter_dir, tmp_path):
    archive = zip_folder(adapter_dir, tmp_path / "my-adapter.zip", prefix="my-adapter/")
    with zipfile.ZipFile(archive) as zf:
        assert zf.getinfo("my-adapter/adapter_model.safetensors").compress_type == 8

    shown = preview(archive)

    assert (shown["parameterCount"], shown["archive"], shown["card"]) == (
        1792,
        "my-adapter.zip",
        True,
    )


def test_preview_reads_the_hubs_own_zip64_downloads(adapter_dir, tmp_path, settings):
    # A module downloaded from the hub and uploaded again: stored entries, zip64 records.
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "hubsite.storages.AtomicFileSystemStorage",
            "OPTIONS": {"location": adapter_dir.parent},
        },
    }
    archive = tmp_path / "download.zip"
    entries = [
        (f"m/{name}", f"{adapter_dir.name}/{name}")
        for name in (ADAPTER_CONFIG, SAFETENSORS_WEIGHTS)
    ]
    archive.write_bytes(b"".join(zip_stream(entries, (2026, 1, 1, 0, 0, 0))))

    assert preview(archive)["parameterCount"] == 1792


def test_preview_flags_shapes_that_do_not_fit_the_chosen_base_model(make_adapter):
    folder = make_adapter(num_key_value_heads=4)

    shown = preview(folder / ADAPTER_CONFIG, folder / SAFETENSORS_WEIGHTS)

    assert shown["problems"] == [
        "model.layers.0.self_attn.v_proj is 64 → 64; v_proj of acme/tiny-llama is 64 → 32",
        "model.layers.1.self_attn.v_proj is 64 → 64; v_proj of acme/tiny-llama is 64 → 32",
    ]


def test_preview_names_the_base_model_the_config_names(adapter_dir):
    edit_config(adapter_dir, base_model_name_or_path="acme/tiny-llama")

    shown = preview(adapter_dir / ADAPTER_CONFIG, adapter_dir / SAFETENSORS_WEIGHTS, base="")

    assert shown["baseModel"] == "acme/tiny-llama"


def test_preview_of_pickled_weights_defers_to_the_server(make_adapter):
    folder = make_adapter(safe_serialization=False)

    shown = preview(folder / ADAPTER_CONFIG, folder / "adapter_model.bin")

    assert (shown["weightsFormat"], shown["rank"]) == ("pickle", 4)


def test_preview_without_a_config_says_so(adapter_dir):
    assert preview(adapter_dir / SAFETENSORS_WEIGHTS) == {"error": "adapter_config.json is missing"}
