"""STORAGE_BACKEND=s3 against a real S3-compatible server on loopback."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from tests.servers import s3_server

pytestmark = pytest.mark.slow

CHECK_STORAGE = (
    "import django; django.setup(); from hubsite.health import check_storage; check_storage()"
)


def run_with_s3(args: list[str], endpoint: str, tmp_path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hubsite.settings",
        "HUB_VAR_DIR": str(tmp_path),
        "STORAGE_BACKEND": "s3",
        "S3_BUCKET": "lorahub-test",
        "S3_ENDPOINT_URL": endpoint,
        "S3_REGION": "us-east-1",
        "S3_ACCESS_KEY_ID": "test",
        "S3_SECRET_ACCESS_KEY": "test",
    }
    return subprocess.run(
        [sys.executable, *args], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True
    )


def test_ensure_storage_creates_the_bucket_once_and_storage_checks_pass(tmp_path):
    with s3_server() as endpoint:
        first = run_with_s3(["manage.py", "ensure_storage"], endpoint, tmp_path)
        second = run_with_s3(["manage.py", "ensure_storage"], endpoint, tmp_path)
        probe = run_with_s3(["-c", CHECK_STORAGE + "; print('storage ok')"], endpoint, tmp_path)
        rules = _bucket_client(endpoint).get_bucket_lifecycle_configuration(Bucket="lorahub-test")

    assert "bucket lorahub-test: created" in first.stdout, first.stderr
    assert "bucket lorahub-test: exists" in second.stdout, second.stderr
    assert probe.stdout.strip() == "storage ok", probe.stderr
    # Parts of an upload cut short by a crash do not stay in the bucket for ever.
    assert rules["Rules"][0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


def _bucket_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def test_storage_check_fails_on_a_missing_bucket(tmp_path):
    with s3_server() as endpoint:
        probe = run_with_s3(["-c", CHECK_STORAGE], endpoint, tmp_path)

    assert probe.returncode != 0
    assert "NoSuchBucket" in probe.stderr
