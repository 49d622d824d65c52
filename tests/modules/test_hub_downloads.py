"""Downloads are counted as the Hugging Face Hub counts PEFT repositories.

One download is a client's fetch of ``adapter_config.json`` (the Hub's query
file for PEFT): once per ``hf_hub_download`` however its requests go, once
per GET of the whole file by other clients, once per client and minute,
never for the weights or the card, and never for the hub's own workers.
"""

import pytest
from django.core.cache import caches
from rest_framework.authtoken.models import Token

from modules.downloads import WORKER_HEADER, worker_headers
from modules.models import Module
from modules.services import module_local_folder
from modules.validation import ADAPTER_CONFIG, MODEL_CARD, SAFETENSORS_WEIGHTS
from tests.hub_server import running_hub
from tests.modules.hub_client import run_hub_client

RESOLVE = "/ada/tiny-adapter/resolve/main/"
CONFIG_URL = RESOLVE + ADAPTER_CONFIG
FLAGGED = {"HTTP_X_HF_DOWNLOAD_COUNTER": "1"}


def worker_marked() -> dict:
    return {f"HTTP_{WORKER_HEADER.upper().replace('-', '_')}": worker_headers()[WORKER_HEADER]}


def downloads(module) -> int:
    return Module.objects.get(pk=module.pk).download_count


def test_only_fetches_of_the_adapter_config_count(client, module):
    client.get(RESOLVE + SAFETENSORS_WEIGHTS)
    client.get(RESOLVE + MODEL_CARD)
    client.head(CONFIG_URL)  # a probe such as file_exists, not a download
    client.get(CONFIG_URL, HTTP_RANGE="bytes=0-9")  # a part of it
    assert downloads(module) == 0

    client.get(CONFIG_URL)  # curl, a browser
    assert downloads(module) == 1


def test_one_hf_hub_download_counts_once_cached_or_not(client, module):
    # Its HEAD counts; the GET that follows when the file is not cached does not.
    client.head(CONFIG_URL, **FLAGGED)
    client.get(CONFIG_URL, **FLAGGED)
    assert downloads(module) == 1

    # A cached download still asks (HEAD), as on the Hub: another client's counts.
    client.head(CONFIG_URL, **FLAGGED, REMOTE_ADDR="10.0.0.9")
    assert downloads(module) == 2


def test_a_clients_fetches_within_a_minute_are_one_download(client, module, other_user):
    # PeftModel.from_pretrained reads the config twice (with two User-Agents); transformers more.
    client.head(CONFIG_URL, **FLAGGED, HTTP_USER_AGENT="hf_hub/2.4; peft/0.21")
    client.head(CONFIG_URL, **FLAGGED, HTTP_USER_AGENT="hf_hub/2.4")
    client.get(CONFIG_URL, HTTP_USER_AGENT="curl/8")
    assert downloads(module) == 1

    # Another user at the same address (their token) is another client.
    token = Token.objects.create(user=other_user).key
    client.head(CONFIG_URL, **FLAGGED, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert downloads(module) == 2

    # A minute later the first client downloads again.
    caches["throttle"].clear()
    client.head(CONFIG_URL, **FLAGGED)
    assert downloads(module) == 3


def test_the_hubs_own_workers_are_not_counted(client, module):
    client.head(CONFIG_URL, **FLAGGED, **worker_marked())
    client.get(CONFIG_URL, **worker_marked())
    assert downloads(module) == 0

    # Another hub's worker, or anyone guessing, is a client like any other.
    client.head(CONFIG_URL, **FLAGGED, HTTP_X_LORAHUB_WORKER="0" * 64)
    assert downloads(module) == 1


def test_the_pages_and_rest_api_links_count_a_folder_once(client, module):
    client.get(f"/ada/tiny-adapter/files/{SAFETENSORS_WEIGHTS}")
    client.get(f"/api/v1/modules/ada/tiny-adapter/files/{MODEL_CARD}")
    assert downloads(module) == 0

    client.get(f"/ada/tiny-adapter/files/{ADAPTER_CONFIG}")
    client.get(f"/api/v1/modules/ada/tiny-adapter/files/{ADAPTER_CONFIG}")
    assert downloads(module) == 2

    b"".join(client.get("/ada/tiny-adapter/download/").streaming_content)  # the .zip
    assert downloads(module) == 3


CLIENT_DOWNLOADS = """
from huggingface_hub import hf_hub_download, snapshot_download

snapshot_download("ada/tiny-adapter")                          # a whole folder, cold cache
# Cached at the commit it names: the client asks the hub for nothing but the repository info.
snapshot_download("ada/tiny-adapter")
hf_hub_download("ada/tiny-adapter", "adapter_config.json")       # cached, asks (HEAD) again
hf_hub_download("ada/tiny-adapter", "adapter_model.safetensors")  # weights alone
hf_hub_download("ada/tiny-adapter", "README.md")
"""


@pytest.mark.slow
def test_huggingface_hub_downloads_count_as_on_the_hub(
    transactional_db, isolated_files, module, tmp_path
):
    with running_hub(media_root=isolated_files, log=tmp_path / "hub.log") as url:
        run_hub_client(CLIENT_DOWNLOADS, endpoint=url, home=tmp_path / "hf")

    # One: the first snapshot; the config fetched again within the minute is the same
    # download, the cached snapshot fetched no file, the weights and card do not count.
    assert downloads(module) == 1


def test_a_worker_reading_a_module_from_storage_is_no_download(module):
    folder = module_local_folder(module)

    assert (folder / ADAPTER_CONFIG).read_bytes()
    assert downloads(module) == 0
