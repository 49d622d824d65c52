"""Module files on S3-compatible storage (a real moto server on loopback)."""

import hashlib

import boto3
import pytest

from modules.services import module_import_folder, module_local_files, module_local_folder
from modules.validation import SAFETENSORS_WEIGHTS
from tests.servers import s3_server

pytestmark = pytest.mark.slow
BUCKET = "lorahub-modules-test"


@pytest.fixture
def s3_storage(settings, tmp_path):
    with s3_server() as endpoint:
        credentials = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **credentials)
        client.create_bucket(Bucket=BUCKET)
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                "BACKEND": "hubsite.storages.HubS3Storage",
                "OPTIONS": {
                    "bucket_name": BUCKET,
                    "endpoint_url": endpoint,
                    "region_name": "us-east-1",
                    "access_key": "test",
                    "secret_key": "test",
                    "file_overwrite": False,
                },
            },
        }
        yield client


def test_blobs_go_to_the_bucket_and_workers_get_cached_local_copies(
    s3_storage, user, base_model, adapter_dir, settings
):
    module = module_import_folder(
        owner=user, name="on-s3", folder=adapter_dir, base_model=base_model
    )
    weights = module.files.get(filename=SAFETENSORS_WEIGHTS)

    stored = s3_storage.get_object(Bucket=BUCKET, Key=weights.storage_path)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == weights.sha256

    paths = module_local_files(module)
    cached = paths[SAFETENSORS_WEIGHTS]
    assert cached == settings.VAR_DIR / "blob-cache" / weights.sha256[:2] / weights.sha256
    assert cached.read_bytes() == (adapter_dir / SAFETENSORS_WEIGHTS).read_bytes()

    # A second call uses the cache: the bucket copy is gone, the path still works.
    s3_storage.delete_object(Bucket=BUCKET, Key=weights.storage_path)
    assert module_local_files(module)[SAFETENSORS_WEIGHTS] == cached
    from peft import PeftConfig

    assert PeftConfig.from_pretrained(str(module_local_folder(module))).r == 4


def test_file_downloads_redirect_to_a_signed_url(s3_storage, client, user, base_model, adapter_dir):
    module_import_folder(owner=user, name="on-s3", folder=adapter_dir, base_model=base_model)

    response = client.get("/api/v1/modules/ada/on-s3/files/adapter_model.safetensors")

    assert response.status_code == 302
    assert f"/{BUCKET}/blobs/sha256/" in response["Location"]
    assert "Signature=" in response["Location"] or "X-Amz-Signature=" in response["Location"]
    assert "adapter_model.safetensors" in response["Location"]  # Content-Disposition name


def test_the_bucket_serves_a_text_file_as_utf_8(s3_storage, client, user, base_model, adapter_dir):
    import requests

    module_import_folder(owner=user, name="on-s3", folder=adapter_dir, base_model=base_model)

    signed = client.get("/api/v1/modules/ada/on-s3/files/README.md")["Location"]

    assert requests.get(signed, timeout=30).headers["Content-Type"] == (
        "text/markdown; charset=utf-8"
    )


def test_zip_download_streams_from_the_bucket(s3_storage, client, user, base_model, adapter_dir):
    import io
    import zipfile

    module_import_folder(owner=user, name="on-s3", folder=adapter_dir, base_model=base_model)

    response = client.get("/ada/on-s3/download/")

    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert (
        archive.read("on-s3/adapter_model.safetensors")
        == (adapter_dir / SAFETENSORS_WEIGHTS).read_bytes()
    )


def test_a_truncated_object_at_the_address_is_replaced_by_the_next_upload(
    s3_storage, user, base_model, adapter_dir
):
    from modules.storage import blob_path

    weights = (adapter_dir / SAFETENSORS_WEIGHTS).read_bytes()
    address = blob_path(hashlib.sha256(weights).hexdigest())
    s3_storage.put_object(Bucket=BUCKET, Key=address, Body=weights[:100])

    module_import_folder(owner=user, name="on-s3", folder=adapter_dir, base_model=base_model)

    assert s3_storage.get_object(Bucket=BUCKET, Key=address)["Body"].read() == weights
