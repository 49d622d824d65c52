import pytest
from django.test import override_settings

from hubsite.celery import app as celery_app


def test_healthz_reports_every_service_ok(client, db):
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "storage"}
    assert all(check["ok"] for check in body["checks"].values())


def test_healthz_is_503_and_names_the_broken_storage(client, db, tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    storages = {
        "default": {
            "BACKEND": "hubsite.storages.AtomicFileSystemStorage",
            "OPTIONS": {"location": not_a_folder},
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STORAGES=storages):
        response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["storage"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


# About 2 s: the broker check retries the refused connection before it gives up.
@pytest.mark.slow
def test_healthz_is_503_when_the_broker_is_unreachable(client, db, monkeypatch):
    # Port 9 (discard) on loopback: nothing listens, the connection is refused.
    unreachable = celery_app.connection_for_write("redis://127.0.0.1:9/0")
    monkeypatch.setattr(celery_app, "connection_for_write", lambda *a, **k: unreachable)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False
