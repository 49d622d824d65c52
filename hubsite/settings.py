"""Settings of the hub, read from the environment.

Every variable has an embedded default that needs no server: SQLite and media
files under ``var/``, and a filesystem Celery broker. Setting ``DATABASE_URL``,
``CELERY_BROKER_URL`` and ``STORAGE_BACKEND=s3`` switches to the production
shape (PostgreSQL, Redis, S3-compatible storage) without code changes.
The README's configuration table lists every variable read here and in
``hubsite/settings_security.py``, whose settings are imported here.
"""

import secrets
from pathlib import Path
from urllib.parse import urlsplit

import environ
from kombu import Exchange, Queue

from hubsite.brokers import filesystem_broker_options

# Hosts, HTTPS, Content-Security-Policy, attempt limits (and their cache).
from hubsite.settings_security import *  # noqa: F403
from hubsite.settings_security import HUB_PROXY_COUNT

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

VAR_DIR = Path(env.str("HUB_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """Use SECRET_KEY if set; otherwise a key generated once and kept in var/."""
    configured = env.str("SECRET_KEY", default="")
    if configured:
        return configured
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "csp",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "hubsite",
    "modules",
    "composition",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "hubsite.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Errors on API paths say why as JSON, never a page or a redirect.
    "hubsite.api_errors.ApiErrorMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "hubsite.api_errors.ApiAwareCommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "hubsite.urls"
WSGI_APPLICATION = "hubsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------

SQLITE_PATH = VAR_DIR / "hub.sqlite3"
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            # Web and worker processes write concurrently: WAL and a busy
            # timeout keep them from failing with "database is locked".
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # The registry's tables and indexes live in memory or on SSDs, where a
    # random read costs about as much as a sequential one. PostgreSQL's default
    # (4, for spinning disks) steers searches away from their indexes.
    page_cost = env.float("DATABASE_RANDOM_PAGE_COST", default=1.1)
    # The hub's reads walk an index for a page; starting parallel workers costs
    # more than such a walk, and under load they only take CPU from other requests.
    parallel_workers = env.int("DATABASE_PARALLEL_WORKERS", default=0)
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
        f"-c random_page_cost={page_cost} -c max_parallel_workers_per_gather={parallel_workers}"
    )
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Files ----------------------------------------------------------------

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
# Converted base models (safetensors folders) live here, shared by web and workers.
MODEL_CACHE_DIR = Path(env.str("MODEL_CACHE_DIR", default=str(VAR_DIR / "models")))

STORAGE_BACKEND = env.str("STORAGE_BACKEND", default="local")
if STORAGE_BACKEND == "s3":
    _default_storage = {
        "BACKEND": "hubsite.storages.HubS3Storage",
        "OPTIONS": {
            "bucket_name": env.str("S3_BUCKET"),
            "endpoint_url": env.str("S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("S3_REGION", default="") or None,
            "access_key": env.str("S3_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("S3_SECRET_ACCESS_KEY", default="") or None,
            "file_overwrite": False,
            "querystring_expire": 3600,
        },
    }
elif STORAGE_BACKEND == "local":
    _default_storage = {
        "BACKEND": "hubsite.storages.AtomicFileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT, "base_url": "/" + MEDIA_URL},
    }
else:
    raise environ.ImproperlyConfigured(
        f"STORAGE_BACKEND must be 'local' or 's3', not {STORAGE_BACKEND!r}"
    )
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Auth -----------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- REST API -------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "hubsite.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "hubsite.openapi.HubAutoSchema",
    "EXCEPTION_HANDLER": "hubsite.errors.api_exception_handler",
    # The client's address, for the attempt limits: the connection's peer, or
    # the address the last of this many proxies put in X-Forwarded-For. Never
    # the header alone, which any client can write.
    "NUM_PROXIES": HUB_PROXY_COUNT,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LoraHub Community API",
    "DESCRIPTION": "Share LoRA modules; compose new ones from a few examples.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery ---------------------------------------------------------------
# Two queues: "gpu" for composition and training (one task at a time per
# worker, acknowledged only when done so a dead worker's task is redelivered)
# and "default" for light work. Job rows hold state; Celery stores no results.

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")
BROKER_DIR = Path(env.str("HUB_BROKER_DIR", default=str(VAR_DIR / "broker")))
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(BROKER_DIR)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # A task not acknowledged within this time is redelivered: longer than
        # the longest composition, or a slow job would run twice.
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=4 * 3600),
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = tuple(
    Queue(name, Exchange(name, type="direct"), routing_key=name) for name in ("default", "gpu")
)
CELERY_TASK_DEFAULT_EXCHANGE = "default"
CELERY_TASK_DEFAULT_ROUTING_KEY = "default"
# Tasks named gpu_* do the heavy work (compositions, training, generation).
CELERY_TASK_ROUTES = {"composition.tasks.gpu_*": {"queue": "gpu"}}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=3 * 3600)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=3 * 3600 - 60)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# --- E-mail (password resets) --------------------------------------------------
# Printed on the web process's console by default; an SMTP server (or any
# backend django-environ knows) by URL, e.g. smtp+tls://user:pass@mail.example.org:587.

_email_url = env.str("EMAIL_URL", default="consolemail://")
_email = env.email_url_config(_email_url)
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST") or "localhost"
EMAIL_PORT = _email.get("EMAIL_PORT") or 25
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS"))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL"))
# filemail:///srv/mail is the folder /srv/mail (django-environ would read srv/mail).
EMAIL_FILE_PATH = urlsplit(_email_url).path or None
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="LoraHub Community <hub@localhost>")
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=3 * 24 * 3600)

# --- Module uploads ---------------------------------------------------------
# Uploads stream to disk in chunks and are hashed on the way (memory stays
# flat whatever their size); a request over the limit is answered with 413.

HUB_MAX_UPLOAD_BYTES = env.int("HUB_MAX_UPLOAD_BYTES", default=2 * 1024**3)
FILE_UPLOAD_HANDLERS = ["modules.uploads.HashingUploadHandler"]
FILE_UPLOAD_TEMP_DIR = Path(env.str("HUB_UPLOAD_TEMP_DIR", default=str(VAR_DIR / "uploads")))
FILE_UPLOAD_TEMP_DIR.mkdir(parents=True, exist_ok=True)
# Pushes through the Hub protocol: files from this size go through Git LFS
# (uploaded apart, then named in the commit); smaller ones inline in the commit.
HUB_LFS_THRESHOLD_BYTES = env.int("HUB_LFS_THRESHOLD_BYTES", default=10 * 1024**2)

# --- Embedded web server (manage.py runhub: hubsite/webserver.py) --------------
# Waitress reads requests whole before a thread sees them: threads answer
# requests, connections only cost a socket and a buffer each.

HUB_WEB_THREADS = env.int("HUB_WEB_THREADS", default=8)
# Open connections beyond which new ones wait in the listen backlog.
HUB_WEB_CONNECTION_LIMIT = env.int("HUB_WEB_CONNECTION_LIMIT", default=1000)

# --- Composition jobs -------------------------------------------------------

# Queued plus running jobs one user may have at once (answered with 429 beyond).
HUB_MAX_ACTIVE_JOBS = env.int("HUB_MAX_ACTIVE_JOBS", default=3)
# Playground requests a user may have queued or running at once (429 beyond).
HUB_MAX_ACTIVE_PLAYGROUND = env.int("HUB_MAX_ACTIVE_PLAYGROUND", default=2)
HUB_MAX_EXAMPLES = env.int("HUB_MAX_EXAMPLES", default=64)
HUB_MAX_HELDOUT = env.int("HUB_MAX_HELDOUT", default=200)
HUB_MAX_EXAMPLE_CHARS = env.int("HUB_MAX_EXAMPLE_CHARS", default=4000)
HUB_MAX_CANDIDATES = env.int("HUB_MAX_CANDIDATES", default=64)
# "Let the hub pick k": the most compatible modules each ranking method considers.
# Retrieval reads a fingerprint per module (one forward pass in all); ranking by
# loss makes one forward pass per module.
HUB_MAX_PICK_POOL = {
    "retrieval": env.int("HUB_MAX_RETRIEVAL_POOL", default=10_000),
    "loss": env.int("HUB_MAX_LOSS_POOL", default=256),
}
# Ranges, (lowest, highest), of the settings a user chooses for a job: the
# forms, the API's serializers and the services all read them here. Defaults
# come from the engine's CompositionSettings and TrainingSettings.
HUB_SETTING_RANGES = {
    "composition": {
        "steps": (1, 1000),
        "l1": (0.0, 10.0),
        "bound": (0.01, 10.0),
        "population": (1, 64),
        "max_new_tokens": (1, 256),
        "weight_groups": (1, 64),
        "validation_folds": (2, 20),
        "early_stop": (1, 1000),
    },
    "training": {
        "rank": (1, 256),
        "alpha": (1, 1024),
        "dropout": (0.0, 0.99),
        "steps": (1, 10_000),
        "batch_size": (1, 256),
        "learning_rate": (1e-7, 1.0),
        "warmup_steps": (0, 10_000),
        "max_length": (8, 4096),
        "seed": (0, 2**31 - 1),
    },
}
# Examples one training job may carry (web and API; the command line has no cap).
HUB_MAX_TRAINING_EXAMPLES = env.int("HUB_MAX_TRAINING_EXAMPLES", default=10_000)
# A running job whose heartbeat is older than this is re-queued once, then failed.
HUB_JOB_STALE_SECONDS = env.int("HUB_JOB_STALE_SECONDS", default=600)
CELERY_BEAT_SCHEDULE = {
    # Every kind of job: stale heartbeats, and playground requests nobody took.
    "sweep-jobs": {"task": "hubsite.tasks.sweep_jobs", "schedule": 20.0},
    "remove-debris": {"task": "hubsite.tasks.remove_debris", "schedule": 3600.0},
}
# Where workers unpack a job's inputs and write its outputs (one folder a job).
JOB_WORK_DIR = VAR_DIR / "job-work"
# Upload temp files and storage staging files untouched this long are left by a
# crash and removed (job work folders: at least CELERY_TASK_TIME_LIMIT).
HUB_DEBRIS_MAX_AGE_SECONDS = env.int("HUB_DEBRIS_MAX_AGE_SECONDS", default=3600)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Imports from a Hugging Face Hub ------------------------------------------
# Modules are imported with huggingface_hub from the Hub or any endpoint that
# speaks its protocol (another LoraHub Community included). Pages and the API
# may only name the endpoints listed here: the worker fetches what a user
# asks for, so an open list would let anyone make it call internal addresses.
# ``manage.py import_hub`` may use any endpoint.

HUB_IMPORT_DEFAULT_ENDPOINT = env.str("HF_ENDPOINT", default="https://huggingface.co").rstrip("/")
HUB_IMPORT_ENDPOINTS = [
    url.rstrip("/")
    for url in env.list("HUB_IMPORT_ENDPOINTS", default=[HUB_IMPORT_DEFAULT_ENDPOINT])
]
# Repositories one import job may cover (an --author listing is cut here).
HUB_IMPORT_MAX_REPOS = env.int("HUB_IMPORT_MAX_REPOS", default=500)
