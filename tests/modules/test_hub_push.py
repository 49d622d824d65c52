"""Pushing to the hub with the real clients: PEFT's ``push_to_hub`` and ``HfApi``'s writes.

A hub process on loopback takes the pushes; the clients run in processes of
their own with ``HF_ENDPOINT`` pointing at it, as a user's would. The hub
runs with a small LFS threshold so that the weights take the Git LFS path
(preupload, batch, PUT, verify, commit) while small files go inline.
"""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token

from modules.models import EmptyRepository, Module
from modules.validation import ADAPTER_CONFIG, MODEL_CARD, SAFETENSORS_WEIGHTS
from tests.hub_server import running_hub
from tests.modules.adapters import TINY_LLAMA
from tests.modules.hub_client import run_hub_client

HF_HUB_0 = Path(settings.BASE_DIR) / "var" / "hfhub0" / "bin" / "python"
HF_HUB_0_VERSION = "0.36.2"
CARD_NAMING_THE_BASE_MODEL = "---\nbase_model: acme/tiny-llama\n---\n# A tiny adapter\n"

CLIENT_HELPERS = f"""
import hashlib
from pathlib import Path

TINY = {TINY_LLAMA!r}

def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()

# The exception's kinds and its text, as the user sees them ([] when the call succeeds).
def refusal(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except Exception as exc:
        return [kind.__name__ for kind in type(exc).__mro__] + [str(exc)]
    return []
"""

CLIENT_PEFT_PUSH = """
import torch
from huggingface_hub import HfApi, snapshot_download
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict
from transformers import LlamaConfig, LlamaForCausalLM

api = HfApi()

def base(**overrides):
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**{**TINY, **overrides}))

def trained(seed, **overrides):
    model = get_peft_model(base(**overrides), LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    model.peft_config["default"].base_model_name_or_path = "acme/tiny-llama"
    torch.manual_seed(seed)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    ids = torch.randint(0, TINY["vocab_size"], (2, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    return model

first_model = trained(1)
first_push = first_model.push_to_hub("ada/my-lora")
first_model.save_pretrained("first")
first_sha = api.model_info("ada/my-lora").sha
pulled = Path(snapshot_download("ada/my-lora"))

second_model = trained(2)
# PEFT's save_pretrained(push_to_hub=True) pushes nothing (peft 0.21): push_to_hub does.
second_model.save_pretrained("second")
second_model.push_to_hub("ada/my-lora", commit_message="Second training run")
second_sha = api.model_info("ada/my-lora").sha

again = PeftModel.from_pretrained(base(), "ada/my-lora", revision=first_sha)
expected = get_peft_model_state_dict(first_model)
loaded = get_peft_model_state_dict(again)

bad_shapes = refusal(trained(3, hidden_size=48).push_to_hub, "ada/my-lora")
after_refusal = api.model_info("ada/my-lora").sha

result = {
    "first_commit": [first_push.oid, first_sha],
    "pulled": {p.name: digest(p) for p in pulled.iterdir()},
    "saved": {p.name: digest(p) for p in Path("first").iterdir()},
    "second_sha": second_sha,
    "second_saved": digest(Path("second") / "adapter_model.safetensors"),
    "first_by_revision": sorted(loaded) == sorted(expected)
        and all(torch.equal(loaded[k], expected[k]) for k in expected),
    "history": [c.commit_id for c in api.list_repo_commits("ada/my-lora")],
    "bad_shapes": bad_shapes,
    "after_refusal": after_refusal,
}
"""


@pytest.fixture
def lfs_hub(transactional_db, isolated_files, tmp_path):
    """A hub that takes every file from 1 KiB through Git LFS."""
    env = {"HUB_LFS_THRESHOLD_BYTES": "1024"}
    with running_hub(media_root=isolated_files, log=tmp_path / "hub.log", env=env) as url:
        yield url


def token_of(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_peft_pushes_a_trained_adapter_and_reads_each_revision(
    lfs_hub, user, base_model, isolated_files, tmp_path
):
    seen = run_hub_client(
        CLIENT_HELPERS + CLIENT_PEFT_PUSH,
        endpoint=lfs_hub,
        home=tmp_path / "hf",
        token=token_of(user),
        env={"HF_HUB_DISABLE_XET": "1"},
    )

    module = Module.objects.get(owner=user, name="my-lora")
    first, second = seen["first_commit"][1], seen["second_sha"]
    assert seen["first_commit"][0] == first and first != second
    # Pulled back byte for byte; the README is the hub's, completed with its metadata.
    for filename in (ADAPTER_CONFIG, SAFETENSORS_WEIGHTS):
        assert seen["pulled"][filename] == seen["saved"][filename]
    assert MODEL_CARD in seen["pulled"]
    assert seen["first_by_revision"] is True
    assert seen["history"] == [second, first] == [c.commit_id for c in module.commits.all()]
    assert module.revision == second
    assert module.files.get(filename=SAFETENSORS_WEIGHTS).sha256 == seen["second_saved"]
    # The refused push: the registry's message in the client's exception, nothing changed.
    kinds, message = seen["bad_shapes"][:-1], seen["bad_shapes"][-1]
    assert "HfHubHTTPError" in kinds
    assert "adapter_model.safetensors" in message and "acme/tiny-llama" in message
    assert seen["after_refusal"] == second and module.commits.count() == 2
    # No blob of the refused push was kept, nor a staged LFS file.
    stored = {p.name for p in (isolated_files / "blobs").rglob("*") if p.is_file()}
    referenced = {
        f.sha256 for c in module.commits.all() for f in c.files.all()
    }  # every blob belongs to a commit
    assert stored == referenced
    assert not list(Path(settings.FILE_UPLOAD_TEMP_DIR).glob("lfs-*"))


CLIENT_API_WRITES = """
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download

api = HfApi()
result = {}
result["create_private"] = str(api.create_repo("ada/private-lora", private=True))
result["create_again"] = refusal(api.create_repo, "ada/private-lora")
result["create_exist_ok"] = refusal(api.create_repo, "ada/private-lora", exist_ok=True)
result["create_elsewhere"] = refusal(api.create_repo, "grace/mine")
result["create_dataset"] = refusal(api.create_repo, "ada/data", repo_type="dataset")
result["upload_folder"] = api.upload_folder(folder_path=ADAPTER, repo_id="ada/private-lora").oid
result["upload_file"] = api.upload_file(
    path_or_fileobj=b"---\\nlicense: mit\\ntags: [notes]\\n---\\n# Notes on this adapter\\n",
    path_in_repo="README.md", repo_id="ada/private-lora", commit_message="Say what it is",
).oid
result["card_at_upload"] = Path(hf_hub_download(
    "ada/private-lora", "README.md", revision=result["upload_file"])).read_text()
result["delete_file"] = api.delete_file("README.md", "ada/private-lora").oid
result["card_after_delete"] = Path(hf_hub_download("ada/private-lora", "README.md")).read_text()
result["delete_missing"] = refusal(api.delete_file, "nothing.txt", "ada/private-lora")
result["unknown_file"] = refusal(
    api.upload_file, path_or_fileobj=b"x", path_in_repo="notes.txt", repo_id="ada/private-lora")
result["bad_yaml"] = refusal(
    api.upload_file, path_or_fileobj=b"---\\n[not: yaml\\n---\\n", path_in_repo="README.md",
    repo_id="ada/private-lora")
result["create_commit"] = api.create_commit(
    "ada/private-lora",
    operations=[CommitOperationAdd("README.md", b"# Back again\\n"),
                CommitOperationAdd("adapter_config.json", ADAPTER + "/adapter_config.json")],
    commit_message="Card and config",
).oid
result["weights_deleted"] = refusal(
    api.create_commit, "ada/private-lora",
    operations=[CommitOperationDelete("adapter_model.safetensors")], commit_message="Break it")
result["made_public"] = refusal(api.update_repo_settings, "ada/private-lora", private=False)
result["public_info"] = api.model_info("ada/private-lora").private
result["made_private"] = refusal(api.update_repo_settings, "ada/private-lora", private=True)
result["history"] = [(c.commit_id, c.title) for c in api.list_repo_commits("ada/private-lora")]
api.create_repo("ada/to-delete")
result["delete_empty"] = refusal(api.delete_repo, "ada/to-delete")
result["delete_missing_repo"] = refusal(api.delete_repo, "ada/never")
"""

CLIENT_SHARED = """
from huggingface_hub import HfApi

HfApi().create_repo("ada/shared")
HfApi().upload_folder(folder_path=ADAPTER, repo_id="ada/shared")
"""

CLIENT_STRANGER = """
from huggingface_hub import HfApi

api = HfApi()
result = {
    "push_public": refusal(api.upload_file, path_or_fileobj=b"# Mine now\\n",
                           path_in_repo="README.md", repo_id="ada/shared"),
    "delete_public": refusal(api.delete_repo, "ada/shared"),
    "private_info": refusal(api.model_info, "ada/private-lora"),
    "push_private": refusal(api.upload_file, path_or_fileobj=b"# Mine now\\n",
                            path_in_repo="README.md", repo_id="ada/private-lora"),
    "listed": [m.id for m in api.list_models(author="ada")],
}
"""

CLIENT_OWNER_FINISH = """
from huggingface_hub import HfApi

api = HfApi()
api.delete_repo("ada/shared")
result = {"listed": [m.id for m in api.list_models(author="ada")],
          "deleted_info": refusal(api.model_info, "ada/shared")}
"""


def _api_writes(hub: str, python: str, user, other_user, tmp_path, make_adapter, env=None):
    adapter_dir, shared = make_adapter(), make_adapter(seed=11)
    for folder in (adapter_dir, shared):
        (folder / MODEL_CARD).write_text(CARD_NAMING_THE_BASE_MODEL)
    run = dict(endpoint=hub, python=python, env=env)
    owner, stranger = token_of(user), token_of(other_user)
    code = CLIENT_HELPERS + f"ADAPTER = {str(adapter_dir)!r}\n" + CLIENT_API_WRITES
    writes = run_hub_client(code, home=tmp_path / "owner", token=owner, **run)
    code = CLIENT_HELPERS + f"ADAPTER = {str(shared)!r}\n" + CLIENT_SHARED
    run_hub_client(code, home=tmp_path / "owner2", token=owner, **run)
    others = run_hub_client(
        CLIENT_HELPERS + CLIENT_STRANGER, home=tmp_path / "stranger", token=stranger, **run
    )
    finish = run_hub_client(
        CLIENT_HELPERS + CLIENT_OWNER_FINISH, home=tmp_path / "owner3", token=owner, **run
    )
    return writes, others, finish


def _check_api_writes(writes, others, finish, user):
    module = Module.objects.get(owner=user, name="private-lora")
    assert writes["create_private"].endswith("/ada/private-lora")
    assert "You already have a repository named ada/private-lora." in writes["create_again"][-1]
    assert writes["create_exist_ok"] == []
    assert "403" in writes["create_elsewhere"][-1]
    assert "under your own name only" in writes["create_elsewhere"][-1]
    assert "models (PEFT adapters) only" in writes["create_dataset"][-1]
    assert writes["upload_folder"] != writes["upload_file"] != writes["delete_file"]
    assert "# Notes on this adapter" in writes["card_at_upload"]
    assert "license: mit" in writes["card_at_upload"] and "notes" in writes["card_at_upload"]
    # Without a README the hub writes one, as for an upload without a card.
    assert "ada/private-lora" in writes["card_after_delete"]
    assert "EntryNotFoundError" in " ".join(writes["delete_missing"])
    assert "notes.txt: not part of a PEFT adapter" in writes["unknown_file"][-1]
    assert "Invalid metadata in README.md" in writes["bad_yaml"][-1]
    assert "adapter_model.safetensors: is missing" in writes["weights_deleted"][-1]
    assert writes["made_public"] == [] and writes["public_info"] is False
    assert writes["made_private"] == [] and module.visibility == Module.Visibility.PRIVATE
    titles = [title for _, title in writes["history"]]
    assert len(titles) == 4 and titles[0] == "Card and config" and titles[2] == "Say what it is"
    assert [c.commit_id for c in module.commits.all()] == [i for i, _ in writes["history"]]
    assert writes["delete_empty"] == [] and not EmptyRepository.objects.exists()
    assert "RepositoryNotFoundError" in writes["delete_missing_repo"]
    # Someone else: refused with the registry's message, and a private repository is not there.
    assert "Only ada can change ada/shared." in others["push_public"][-1]
    assert "403" in others["push_public"][-1]
    assert "Only ada can change ada/shared." in others["delete_public"][-1]
    assert "RepositoryNotFoundError" in others["private_info"]
    assert "RepositoryNotFoundError" in others["push_private"]
    assert others["listed"] == ["ada/shared"]
    assert finish["listed"] == ["ada/private-lora"]
    assert "RepositoryNotFoundError" in finish["deleted_info"]


@pytest.mark.slow
def test_huggingface_hub_writes_with_the_registrys_rules(
    live_hub, user, other_user, base_model, make_adapter, tmp_path
):
    writes, others, finish = _api_writes(
        live_hub, sys.executable, user, other_user, tmp_path, make_adapter
    )
    _check_api_writes(writes, others, finish, user)


def hf_hub_0_python() -> str:
    """The interpreter of a venv with huggingface_hub 0.x (``make test-tools`` makes it)."""
    if not HF_HUB_0.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(HF_HUB_0.parent.parent)], check=True)
            subprocess.run(
                [
                    str(HF_HUB_0),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    f"huggingface_hub=={HF_HUB_0_VERSION}",
                ],
                check=True,
                timeout=600,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"no venv with huggingface_hub {HF_HUB_0_VERSION} could be made: {exc}")
    return str(HF_HUB_0)


@pytest.mark.slow
def test_huggingface_hub_0x_writes_too(
    lfs_hub, user, other_user, base_model, make_adapter, tmp_path
):
    """huggingface_hub 0.x, with hf_xet installed: the hub answers "basic" LFS, never Xet."""
    python = hf_hub_0_python()
    version = subprocess.run(
        [python, "-c", "import huggingface_hub; print(huggingface_hub.__version__)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert version == HF_HUB_0_VERSION

    writes, others, finish = _api_writes(lfs_hub, python, user, other_user, tmp_path, make_adapter)

    _check_api_writes(writes, others, finish, user)
