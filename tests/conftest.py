"""Fixtures for every test. Nothing here imports Django until a fixture needs it:
the engine's tests run with pytest-django off and Django never imported."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

# Tests never reach out to the Hugging Face Hub; those that talk to a hub
# start one on loopback and say so.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

if TYPE_CHECKING:
    pass

# Tiny synthetic models and modules, for the engine's tests and the replication harness's.
pytest_plugins = ["tests.composition.engine.fixtures"]

# In CI every backing service must be there: a test that would skip for want
# of PostgreSQL or Redis fails instead, so a green run means they were used.
REQUIRE_SERVICES = os.environ.get("HUB_REQUIRE_SERVICES") == "1"


# Fixtures through which a test reaches the configured database (and, through
# job rows and their tasks, the broker).
DATABASE_FIXTURES = frozenset(
    {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback"}
)


def pytest_addoption(parser):
    parser.addoption(
        "--services-only",
        action="store_true",
        help="run only the tests that touch the database or the broker (marked or through "
        "a database fixture): the second pass, on PostgreSQL and Redis, skips the rest",
    )


def touches_services(item: pytest.Item) -> bool:
    if item.get_closest_marker("django_db") or item.get_closest_marker("broker"):
        return True
    return not DATABASE_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--services-only"):
        return
    kept = [item for item in items if touches_services(item)]
    left_out = [item for item in items if not touches_services(item)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


def skip_or_fail(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (HUB_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def throttle_counts_cleared(request):
    """Log-in and sign-up attempt counts live in a database table (the "throttle" cache)
    that transactional tests (those with real servers) commit to and never roll back."""
    marker = request.node.get_closest_marker("django_db")
    committed = (marker and marker.kwargs.get("transaction")) or (
        "transactional_db" in request.fixturenames
    )
    # The engine's tests run without pytest-django (and so without Django).
    if not committed or not request.config.pluginmanager.has_plugin("django"):
        yield
        return
    blocker = request.getfixturevalue("django_db_blocker")
    yield
    from django.core.cache import caches

    with blocker.unblock():
        caches["throttle"].clear()


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="ada", password="s3cret-pass-phrase")


@pytest.fixture
def isolated_files(settings, tmp_path):
    """Each test gets its own media folder, upload folder and blob cache.

    Blobs are shared by content, so a file left by one test would change what
    the next one sees ("already stored", "nothing left behind").
    """
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "hubsite.storages.AtomicFileSystemStorage",
            "OPTIONS": {"location": tmp_path / "media"},
        },
    }
    settings.FILE_UPLOAD_TEMP_DIR = tmp_path / "uploads"
    settings.FILE_UPLOAD_TEMP_DIR.mkdir()
    settings.VAR_DIR = tmp_path / "var"
    settings.JOB_WORK_DIR = tmp_path / "var" / "job-work"
    return tmp_path / "media"


@pytest.fixture
def smollm2_base_model(db):
    """The embedded base model, converted once per machine and cached."""
    from modules.services import base_model_install_embedded

    return base_model_install_embedded()


@pytest.fixture
def base_model(db):
    """A registered base model whose weights are never loaded."""
    from django.conf import settings

    from modules.models import BaseModel

    return BaseModel.objects.create(
        identifier="acme/tiny-llama",
        family="llama",
        task_type=BaseModel.TaskType.CAUSAL_LM,
        hidden_size=64,
        num_layers=2,
        parameter_count=1_000_000,
        linear_shapes={"q_proj": [[64, 64]], "v_proj": [[64, 32]]},
        weights_location=str(settings.MODEL_CACHE_DIR / "acme--tiny-llama"),
    )


def pytest_report_header(config):
    if not config.pluginmanager.has_plugin("django"):
        return "hub: Django not loaded (pytest-django off)"
    from django.conf import settings

    db = settings.DATABASES["default"]
    return f"hub: database {db['ENGINE'].rsplit('.', 1)[-1]}, broker {settings.CELERY_BROKER_URL}"


# --- LoRA adapters and modules (registry) -----------------------------------


@pytest.fixture(scope="session")
def adapter_builds(tmp_path_factory):
    """Real PEFT adapters built once per session and per set of options."""
    from tests.modules.adapters import build_peft_adapter

    root = tmp_path_factory.mktemp("adapters")
    built = {}

    def build(**options):
        key = tuple(sorted(options.items()))
        if key not in built:
            built[key] = build_peft_adapter(root / f"adapter-{len(built)}", **options)
        return built[key]

    return build


@pytest.fixture
def make_adapter(adapter_builds, tmp_path):
    """A fresh copy of a real PEFT adapter folder, safe to damage: make_adapter(seed=1, r=8…)."""
    from tests.modules.adapters import copy_adapter

    copies = iter(range(1_000))

    def make(**options):
        return copy_adapter(adapter_builds(**options), tmp_path / f"copy-{next(copies)}")

    return make


@pytest.fixture
def adapter_dir(make_adapter):
    """A LoRA adapter (r=4, q_proj and v_proj) that fits the base_model fixture."""
    return make_adapter()


@pytest.fixture
def module(user, base_model, adapter_dir):
    """A public module registered from a real adapter: ada/tiny-adapter."""
    from modules.services import module_import_folder

    return module_import_folder(
        owner=user, name="tiny-adapter", folder=adapter_dir, base_model=base_model
    )


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user(username="grace", password="an0ther-pass-phrase")
