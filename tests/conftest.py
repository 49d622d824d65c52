import os

import pytest
from django.conf import settings

from modules.models import BaseModel

# In CI every backing service must be there: a test that would skip for want
# of PostgreSQL or Redis fails instead, so a green run means they were used.
REQUIRE_SERVICES = os.environ.get("HUB_REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (HUB_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="ada", password="s3cret-pass-phrase")


@pytest.fixture
def smollm2_base_model(db) -> BaseModel:
    """The embedded base model, converted once per machine and cached."""
    from modules.services import base_model_install_embedded

    return base_model_install_embedded()


@pytest.fixture
def base_model(db) -> BaseModel:
    """A registered base model whose weights are never loaded."""
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
    db = settings.DATABASES["default"]
    return f"hub: database {db['ENGINE'].rsplit('.', 1)[-1]}, broker {settings.CELERY_BROKER_URL}"
