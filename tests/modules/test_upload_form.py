"""The upload page as a person fills it in: optional fields left empty, errors shown
in words beside their fields (the page's own script run under Node on the API's
real answers)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from modules.models import Module
from modules.validation import ADAPTER_CONFIG, SAFETENSORS_WEIGHTS
from tests.modules.test_api import adapter_upload, api_as

NODE = shutil.which("node")
FORM_API_JS = Path(settings.BASE_DIR) / "static" / "js" / "form-api.js"
needs_node = pytest.mark.skipif(NODE is None, reason="Node.js is not installed")

# What the upload page sends, and the messages it shows for an answer.
SCRIPT = """
import { errorMessages, filledFields } from "%s";
const [fields, body, names] = JSON.parse(process.argv[1]);
const data = new FormData();
for (const [key, value] of fields) data.append(key, value);
const sent = Array.from(filledFields(data).keys());
const shown = errorMessages(body, { itemNames: { files: names }, itemLabels: { tags: "Tag" } });
console.log(JSON.stringify({ sent, shown }));
"""


def page_script(fields=(), body=None, names=()) -> dict:
    result = subprocess.run(
        [NODE, "--input-type=module", "-e", SCRIPT % FORM_API_JS.as_uri(),
         json.dumps([list(fields), body, list(names)])],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(result.stdout)


def test_an_upload_with_tags_left_empty_is_published_without_tags(user, base_model, adapter_dir):
    """A browser sends the empty optional fields of the form as empty strings."""
    fields = adapter_upload(
        adapter_dir, tags="", description="", license="", base_model="acme/tiny-llama"
    )

    response = api_as(user).post("/api/v1/modules/", fields, format="multipart")

    assert response.status_code == 201, response.content
    assert "" not in response.json()["tags"]
    assert not Module.objects.get().tags.filter(slug="").exists()


def test_blank_items_among_tags_are_dropped(user, base_model, adapter_dir):
    fields = adapter_upload(adapter_dir, base_model="acme/tiny-llama", tags=["", "sentiment", " "])

    response = api_as(user).post("/api/v1/modules/", fields, format="multipart")

    assert response.status_code == 201, response.content
    assert "sentiment" in response.json()["tags"]


@needs_node
def test_the_page_does_not_send_optional_fields_left_empty():
    fields = [["name", "my-adapter"], ["tags", ""], ["description", "  "], ["license", "mit"]]

    assert page_script(fields)["sent"] == ["name", "license"]


@needs_node
def test_an_error_about_one_of_the_files_is_shown_in_words_naming_the_file(
    user, base_model, adapter_dir
):
    (adapter_dir / ADAPTER_CONFIG).write_bytes(b"")
    names = [ADAPTER_CONFIG, SAFETENSORS_WEIGHTS]

    response = api_as(user).post(
        "/api/v1/modules/", adapter_upload(adapter_dir), format="multipart"
    )

    assert response.status_code == 400
    shown = page_script(body=response.json(), names=names)["shown"]
    assert shown == {"files": ["adapter_config.json: The submitted file is empty."]}


@needs_node
def test_every_error_of_a_refused_upload_is_readable_text(user, base_model, adapter_dir):
    fields = adapter_upload(adapter_dir, name="bad name!", visibility="everyone", tags=["x" * 201])

    response = api_as(user).post("/api/v1/modules/", fields, format="multipart")

    assert response.status_code == 400
    shown = page_script(body=response.json(), names=[ADAPTER_CONFIG, SAFETENSORS_WEIGHTS])["shown"]
    assert set(shown) == {"name", "visibility", "tags"}
    lines = [line for messages in shown.values() for line in messages]
    assert all(isinstance(line, str) and "[object" not in line for line in lines)
    assert shown["tags"] == ["Tag 1: Item 1 of tags may have at most 200 characters."]


def test_api_messages_name_their_field(user, base_model):
    response = api_as(user).post("/api/v1/modules/", {"files": []}, format="multipart")

    assert response.status_code == 400
    assert response.json()["name"] == ["Name is required."]
    assert response.json()["files"] == ["Files are required."]
