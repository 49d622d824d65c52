"""The environment alone switches the hub between its embedded and production shapes."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

PRINT_SETTINGS = """
import json
from django.conf import settings
print(json.dumps({
    "db_engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": str(settings.DATABASES["default"]["NAME"]),
    "db_host": settings.DATABASES["default"].get("HOST", ""),
    "broker": settings.CELERY_BROKER_URL,
    "broker_options": settings.CELERY_BROKER_TRANSPORT_OPTIONS,
    "storage": settings.STORAGES["default"]["BACKEND"],
    "storage_options": {k: str(v) for k, v in settings.STORAGES["default"]["OPTIONS"].items()},
    "model_cache": str(settings.MODEL_CACHE_DIR),
}))
"""

CONFIG_VARS = (
    "DATABASE_URL", "CELERY_BROKER_URL", "STORAGE_BACKEND", "S3_BUCKET", "S3_ENDPOINT_URL",
    "HUB_VAR_DIR", "MEDIA_ROOT", "MODEL_CACHE_DIR", "HUB_BROKER_DIR",
)  # fmt: skip


def resolved_settings(tmp_path, **overrides) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    env.update(DJANGO_SETTINGS_MODULE="hubsite.settings", HUB_VAR_DIR=str(tmp_path), **overrides)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup();" + PRINT_SETTINGS],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )


@pytest.mark.slow
def test_defaults_need_no_server(tmp_path):
    result = resolved_settings(tmp_path)
    resolved = json.loads(result.stdout)

    assert resolved["db_engine"] == "django.db.backends.sqlite3"
    assert resolved["db_name"] == str(tmp_path / "hub.sqlite3")
    assert resolved["broker"] == "filesystem://localhost/"
    assert resolved["broker_options"]["data_folder_in"] == str(tmp_path / "broker" / "queue")
    assert resolved["storage"] == "hubsite.storages.AtomicFileSystemStorage"
    assert resolved["storage_options"]["location"] == str(tmp_path / "media")
    assert resolved["model_cache"] == str(tmp_path / "models")
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.slow
def test_environment_selects_postgres_redis_and_s3(tmp_path):
    result = resolved_settings(
        tmp_path,
        DATABASE_URL="postgres://hub:pw@db.internal:5432/hub",
        CELERY_BROKER_URL="redis://cache.internal:6379/0",
        STORAGE_BACKEND="s3",
        S3_BUCKET="lora-modules",
        S3_ENDPOINT_URL="http://objects.internal:9000",
    )
    resolved = json.loads(result.stdout)

    assert resolved["db_engine"] == "django.db.backends.postgresql"
    assert (resolved["db_name"], resolved["db_host"]) == ("hub", "db.internal")
    assert resolved["broker"] == "redis://cache.internal:6379/0"
    assert "visibility_timeout" in resolved["broker_options"]
    assert resolved["storage"] == "hubsite.storages.HubS3Storage"
    assert resolved["storage_options"]["bucket_name"] == "lora-modules"
    assert resolved["storage_options"]["endpoint_url"] == "http://objects.internal:9000"


@pytest.mark.slow
def test_unknown_storage_backend_is_a_clear_error(tmp_path):
    result = resolved_settings(tmp_path, STORAGE_BACKEND="ftp")

    assert result.returncode != 0
    assert "STORAGE_BACKEND must be 'local' or 's3', not 'ftp'" in result.stderr


@pytest.mark.slow
def test_s3_without_a_bucket_is_a_clear_error(tmp_path):
    result = resolved_settings(tmp_path, STORAGE_BACKEND="s3")

    assert result.returncode != 0
    assert "S3_BUCKET" in result.stderr


@pytest.mark.django_db
def test_postgresql_connections_plan_for_data_in_memory_or_on_ssd():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL planner setting")
    with connection.cursor() as cursor:
        cursor.execute("SHOW random_page_cost")
        assert float(cursor.fetchone()[0]) == 1.1
        # Short index walks: no parallel workers to start.
        cursor.execute("SHOW max_parallel_workers_per_gather")
        assert cursor.fetchone()[0] == "0"
