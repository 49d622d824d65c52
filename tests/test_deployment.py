"""docker-compose.yml and the README agree with what the settings read."""

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings

from hubsite.processes import worker_command

ROOT = Path(settings.BASE_DIR)


def env_vars_read_by_settings() -> set[str]:
    source = (ROOT / "hubsite" / "settings.py").read_text()
    return set(re.findall(r'env\.\w+\(\s*"([A-Z0-9_]+)"', source))


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_settings_read_the_variables_this_test_relies_on():
    # Guards the regex above: if it found nothing, every check below would pass.
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "STORAGE_BACKEND"} <= env_vars_read_by_settings()


def test_compose_has_every_production_service(compose):
    services = compose["services"]
    assert {"web", "worker", "beat", "postgres", "redis", "minio", "init"} <= set(services)
    for name, service in services.items():
        if name != "init":
            assert "healthcheck" in service, f"{name} has no health check"


def test_compose_environment_uses_only_variables_the_settings_read(compose):
    known = env_vars_read_by_settings()
    for name in ("web", "worker", "worker-light", "beat", "init"):
        unknown = set(compose["services"][name]["environment"]) - known
        assert not unknown, f"{name} sets variables the settings never read: {unknown}"


def test_compose_wires_the_backends_to_their_services(compose):
    env = compose["services"]["web"]["environment"]
    assert urlsplit(env["DATABASE_URL"]).scheme == "postgres"
    assert urlsplit(env["DATABASE_URL"]).hostname == "postgres"
    assert urlsplit(env["CELERY_BROKER_URL"]).scheme == "redis"
    assert urlsplit(env["CELERY_BROKER_URL"]).hostname == "redis"
    assert env["STORAGE_BACKEND"] == "s3"
    assert urlsplit(env["S3_ENDPOINT_URL"]).hostname == "minio"
    postgres = compose["services"]["postgres"]["environment"]
    assert urlsplit(env["DATABASE_URL"]).path == "/" + postgres["POSTGRES_DB"]


def test_web_runs_gunicorn_on_the_wsgi_app(compose):
    command = compose["services"]["web"]["command"]
    assert command[:2] == ["gunicorn", "hubsite.wsgi"]


def test_gpu_worker_runs_the_hub_worker_command_on_the_gpu_queue(compose):
    worker = compose["services"]["worker"]
    command = worker["command"]
    assert command[:4] == ["celery", "-A", "hubsite", "worker"]
    assert command[command.index("--queues") + 1] == "gpu"
    # Same flags as the worker `manage.py runhub` starts (prefetch 1, one task at a time…).
    expected = worker_command("gpu")
    for flag in ("--concurrency", "--prefetch-multiplier"):
        assert command[command.index(flag) + 1] == expected[expected.index(flag) + 1]
    assert {"--without-gossip", "--without-mingle", "--without-heartbeat"} <= set(command)
    [device] = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    # The GPU image takes PyPI's torch (CUDA build), not the CPU index.
    assert "cpu" not in worker["build"]["args"]["TORCH_INDEX_URL"]


def test_default_queue_has_a_worker(compose):
    command = compose["services"]["worker-light"]["command"]
    assert command[command.index("--queues") + 1] == "default"
    assert set(q.name for q in settings.CELERY_TASK_QUEUES) == {"default", "gpu"}


def test_model_cache_is_a_shared_volume_where_the_settings_look(compose):
    for name in ("worker", "init"):
        service = compose["services"][name]
        cache = service["environment"]["MODEL_CACHE_DIR"]
        volume = next(v for v in service["volumes"] if v.endswith(":" + cache))
        assert volume.split(":")[0] in compose["volumes"]


def test_readme_configuration_table_documents_every_variable():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)`", readme, flags=re.MULTILINE))
    missing = env_vars_read_by_settings() - documented
    assert not missing, f"README configuration table lacks {sorted(missing)}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make run" in readme
    assert re.search(r"^exec make test$", (ROOT / ".ci" / "run").read_text(), re.MULTILINE)


def test_beat_runs_the_hub_schedule(compose):
    command = compose["services"]["beat"]["command"]
    assert command[:4] == ["celery", "-A", "hubsite", "beat"]
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "composition.tasks.sweep_stale_jobs" in tasks
