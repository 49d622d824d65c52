"""Small overrides of the hub's settings for the test suite."""

import os

from hubsite.brokers import filesystem_broker_options
from hubsite.settings import *  # noqa: F403
from hubsite.settings import CELERY_BROKER_URL, DATABASES, VAR_DIR

# Two test runs on one checkout (say, two branches' suites) keep apart by
# setting HUB_TEST_RUN to different names: their databases, media and broker
# folders are named after it.
TEST_RUN = os.environ.get("HUB_TEST_RUN", "")
SUFFIX = f"-{TEST_RUN}" if TEST_RUN else ""

# Tests that start a worker process share the test database with it, so an
# SQLite test database must be a file, not the in-memory default.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test{SUFFIX}.sqlite3")}
elif TEST_RUN:
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{TEST_RUN}"}

# Runs' work folders too: a test that checks a run left none behind must not
# see another test run's (make test runs two passes side by side).
JOB_WORK_DIR = VAR_DIR / f"test-job-work{SUFFIX}"

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = VAR_DIR / f"test-media{SUFFIX}"
STORAGES = {
    "default": {
        "BACKEND": "hubsite.storages.AtomicFileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT},
    },
    # The manifest storage needs collectstatic; tests render pages without it.
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# A hub running beside the tests must not consume the tests' tasks.
TEST_BROKER_DIR = VAR_DIR / f"test-broker{SUFFIX}"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(TEST_BROKER_DIR)
