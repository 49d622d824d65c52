"""Downloads are counted as the Hugging Face Hub counts PEFT repositories.

One download is a client's fetch of ``adapter_config.json`` (the Hub's query
file for PEFT): once per ``hf_hub_download`` however its requests go, once
per GET of the whole file by other clients, never for the weights or the
card, and never for the hub's own workers.
"""

import pytest

from modules.downloads import WORKER_HEADER, worker_headers
from modules.models import Module
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

    client.head(CONFIG_URL, **FLAGGED)  # the file was cached: still a download, as on the Hub
    assert downloads(module) == 2


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
hf_hub_download("ada/tiny-adapter", "adapter_config.json")       # cached, but asks (HEAD)
hf_hub_download("ada/tiny-adapter", "adapter_model.safetensors")  # weights alone
hf_hub_download("ada/tiny-adapter", "README.md")
"""


@pytest.mark.slow
def test_huggingface_hub_downloads_count_as_on_the_hub(
    transactional_db, isolated_files, module, tmp_path
):
    with running_hub(media_root=isolated_files, log=tmp_path / "hub.log") as url:
        run_hub_client(CLIENT_DOWNLOADS, endpoint=url, home=tmp_path / "hf")

    # The first snapshot and the config fetched alone; the cached snapshot fetched no
    # file, and the weights and the card are not counted.
    assert downloads(module) == 2
