"""A hub started the way production runs it, for the browser to use.

gunicorn serves the site (static files collected, as ``make run`` and the
image do), a real Celery worker runs the jobs, both on the test database and
broker: SQLite and the filesystem broker by default, PostgreSQL and Redis
when DATABASE_URL and CELERY_BROKER_URL say so. The registry holds a tiny
Llama and a few modules for it, so a composition takes seconds.
"""

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from composition.engine.base_models import read_base_model_spec
from composition.engine.synthetic import build_loras, build_tiny_llama
from tests.hub_server import running_hub_process
from tests.workers import broker_reset, running_worker

TINY_ID = "tiny/llama"
AUTHOR = "lorahub"
MEMBER, MEMBER_PASSWORD = "ada", "e2e-pass-phrase-7"
# The seeded public modules: (name, tags, description).
SEEDED_MODULES = [
    ("arith-skill", ["math", "arithmetic"], "Adds and subtracts small numbers."),
    ("logic-skill", ["logic"], "Answers yes/no questions about truth."),
    ("choice-skill", ["qa", "multiple-choice"], "Picks an option among (a) and (b)."),
]


@dataclass(frozen=True)
class LiveHub:
    url: str
    base_model: str
    model_dir: Path
    # One adapter per seeded module, then two for uploads.
    adapter_folders: list[Path]
    log_dir: Path

    @property
    def mail_dir(self) -> Path:
        """Where the hub writes its mail (EMAIL_URL=filemail://), one file per message."""
        return self.log_dir / "mail"


def build_model_files(root: Path) -> tuple[Path, list[Path]]:
    """The tiny Llama and one adapter per seeded module, plus two left for uploads."""
    model_dir = build_tiny_llama(root / "tiny-llama")
    folders = [root / f"adapter-{i}" for i in range(len(SEEDED_MODULES) + 2)]
    build_loras(
        model_dir, folders, seeds=list(range(len(folders))), task_type="CAUSAL_LM",
        targets=("q_proj", "v_proj"), base_id=TINY_ID, std=0.05,
    )  # fmt: skip
    return model_dir, folders


def seed_registry(model_dir: Path, adapter_folders: list[Path]) -> None:
    """Register the tiny Llama, the seeded modules and the member."""
    from django.contrib.auth import get_user_model

    from modules.services import base_model_register, module_create

    spec = read_base_model_spec(model_dir, identifier=TINY_ID)
    base = base_model_register(spec=spec, weights_location=str(model_dir))
    users = get_user_model().objects
    author = users.create(username=AUTHOR, password=hub_password_hash("e2e-author-pass-9"))
    users.create(username=MEMBER, password=hub_password_hash(MEMBER_PASSWORD))
    for (name, tags, description), folder in zip(SEEDED_MODULES, adapter_folders, strict=False):
        module_create(
            owner=author,
            name=name,
            description=description,
            tags=tags,
            files={
                "adapter_config.json": folder / "adapter_config.json",
                "adapter_model.safetensors": folder / "adapter_model.safetensors",
            },
            base_model=base,
        )


def hub_password_hash(password: str) -> str:
    """A hash the hub's own settings check (the tests' settings hash with MD5, for speed)."""
    hasher = PBKDF2PasswordHasher()
    return hasher.encode(password, hasher.salt(), iterations=1000)


def collect_static(static_root: Path) -> None:
    """What ``make run`` does before serving: the hashed, compressed static files."""
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=settings.BASE_DIR,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "hubsite.settings",
            "STATIC_ROOT": str(static_root),
        },
        check=True,
    )


@contextlib.contextmanager
def running_live_hub(root: Path) -> Iterator[LiveHub]:
    model_dir, adapter_folders = build_model_files(root)
    static_root = root / "static"
    collect_static(static_root)
    broker_url = settings.CELERY_BROKER_URL
    broker_dir = settings.TEST_BROKER_DIR
    broker_reset(broker_url, broker_dir)
    shared = {
        "CELERY_BROKER_URL": broker_url,
        "HUB_BROKER_DIR": str(broker_dir),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    web_env = {
        **shared,
        "STATIC_ROOT": str(static_root),
        # Every flow signs up from 127.0.0.1; the limits have tests of their own.
        "HUB_SIGNUP_RATE_PER_IP": "1000/h",
        "HUB_LOGIN_RATE_PER_IP": "1000/10m",
        "EMAIL_URL": f"filemail://{root / 'mail'}",
    }
    with (
        running_worker(
            broker_url=broker_url,
            broker_dir=broker_dir,
            queues="default,gpu",
            log=root / "worker.log",
            env=shared,
        ),
        running_hub_process(
            media_root=settings.MEDIA_ROOT, log=root / "web.log", env=web_env, production=True
        ) as (url, _),
    ):
        yield LiveHub(url, TINY_ID, model_dir, adapter_folders, log_dir=root)
    broker_reset(broker_url, broker_dir)
