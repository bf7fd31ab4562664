"""Settings, read from the environment (see the table in README.md).

With nothing set, the service runs on embedded defaults: SQLite, a local-memory cache and
kombu's filesystem broker, so that `make run` needs no PostgreSQL, Redis or RabbitMQ.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from billing_service.cache_config import redis_cache
from billing_service.dotenv import dotenv_load
from billing_service.env import (
    env_bool,
    env_choice,
    env_choice_aliased,
    env_float,
    env_int,
    env_json_object,
    env_list,
    env_required,
    env_secrets,
    env_str,
    env_url,
)
from billing_service.logging import build_logging_config
from billing_service.metrics_dir import multiproc_dir_install

# ModelAdmin[Project], QuerySet[App] and friends in annotations evaluated at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
# Before any variable is read; the environment wins over the file (see billing_service/dotenv.py).
# The test environment (test_settings sets DJANGO_ENV=test first) skips it: the suite's result must
# not depend on a developer's local file, such as a real STRIPE_SECRET_KEY kept there for `make run`.
if "test" not in (os.environ.get("DJANGO_ENV"), os.environ.get("ENVIRONMENT")):
    dotenv_load(BASE_DIR / ".env")
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")) or BASE_DIR / "var")

# ENVIRONMENT is the seed documents' name for it.
DJANGO_ENV = env_choice_aliased("DJANGO_ENV", "ENVIRONMENT", "development", ("development", "test", "production"))
IS_PRODUCTION = DJANGO_ENV == "production"
IS_TEST = DJANGO_ENV == "test"
# Before INSTALLED_APPS (django_prometheus) import prometheus_client, which picks in-memory or per-process
# files from this variable at its first import; after .env, which may set it or VAR_DIR. Outside tests it
# defaults to VAR_DIR/prometheus-multiproc, so the worker's counters reach the web's /metrics.
PROMETHEUS_MULTIPROC_DIR = multiproc_dir_install(var_dir=VAR_DIR, django_env=DJANGO_ENV)

# --- core -------------------------------------------------------------------------------------
if IS_PRODUCTION:
    SECRET_KEY = env_required("SECRET_KEY")
    DEBUG = env_bool("DJANGO_DEBUG", False)
    if DEBUG:
        raise ImproperlyConfigured("DJANGO_DEBUG must not be on when DJANGO_ENV=production")
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [])
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DJANGO_ENV=production")
else:
    SECRET_KEY = env_str("SECRET_KEY", "dev-only-secret-key-not-for-production-0123456789abcdef") or ""
    DEBUG = env_bool("DJANGO_DEBUG", DJANGO_ENV == "development")
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])

# API keys are stored as an HMAC keyed with this pepper. It is separate from SECRET_KEY so that
# rotating SECRET_KEY (sessions, CSRF) does not invalidate every micro-app's key.
API_KEY_PEPPER = env_str("API_KEY_PEPPER", SECRET_KEY) or SECRET_KEY

CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's static files, so /api/docs/ needs no CDN
    "django_prometheus",
    "django_celery_beat",
    "axes",  # admin login lockout (see "admin access" below)
    "djstripe",
    "apps.common",
    "apps.projects",
    "apps.catalog",
    "apps.checkout",
    "apps.entitlements",
    "apps.webhooks",
    "apps.reconciliation",
    "apps.recovery",
]
# Development tools (`make run`'s devstack, the way to the Stripe sandbox): never in production, whose
# image ships neither devtools/ nor stripe_sandbox/.
if not IS_PRODUCTION:
    INSTALLED_APPS.append("devtools")

MIDDLEWARE = [
    # In place of django-prometheus's Before/After pair: the same series docs/operations.md lists, cheaper.
    "apps.common.metrics.RequestMetricsMiddleware",
    "apps.common.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Django's session, user and message middleware, skipped for /api/v1/ and the probes (the admin's only).
    "apps.common.middleware.SiteSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "apps.common.middleware.SiteAuthenticationMiddleware",
    "apps.common.middleware.SiteMessageMiddleware",
    "apps.common.admin_session.AdminIdleSessionMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.common.middleware.ApiErrorMiddleware",
    # Turns a login refused for a locked-out account into its 429 page; axes wants it late in the chain.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "billing_service.urls"
WSGI_APPLICATION = "billing_service.wsgi.application"
ASGI_APPLICATION = "billing_service.asgi.application"

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

# --- database ---------------------------------------------------------------------------------
DATABASE_URL = env_url("DATABASE_URL", ("postgres", "postgresql", "sqlite"))
# django-prometheus wraps the real backends so that query counts and latencies are exported.
_PROMETHEUS_ENGINES = {
    "django.db.backends.postgresql": "django_prometheus.db.backends.postgresql",
    "django.db.backends.sqlite3": "django_prometheus.db.backends.sqlite3",
}
if DATABASE_URL:
    _db: dict[str, Any] = dict(
        dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0),
            conn_health_checks=True,
        )
    )
    if _db["ENGINE"] == "django.db.backends.postgresql":
        _db.setdefault("OPTIONS", {})["connect_timeout"] = env_int("DB_CONNECT_TIMEOUT", 5, minimum=1)
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    _db = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": env_str("SQLITE_PATH", str(VAR_DIR / "db.sqlite3")),
        # The web server, the worker and beat share one SQLite file in `make run`: WAL lets readers
        # run beside a writer, IMMEDIATE takes the write lock up front instead of failing mid-transaction.
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
_db["ENGINE"] = _PROMETHEUS_ENGINES.get(_db["ENGINE"], _db["ENGINE"])
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache ------------------------------------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", ("redis", "rediss", "unix"))
if REDIS_URL:
    CACHES: dict[str, Any] = {
        "default": redis_cache(
            REDIS_URL,
            socket_timeout=env_float("REDIS_SOCKET_TIMEOUT", 0.25, minimum=0.01),
            key_prefix=env_str("CACHE_KEY_PREFIX", "billing") or "billing",
        )
    }
    # Not logged per call: with Redis down that would be several tracebacks per request. /ready
    # names the failure and django_cache_get_fail_total counts it.
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = False
else:
    CACHES = {
        "default": {
            "BACKEND": "django_prometheus.cache.backends.locmem.LocMemCache",
            "LOCATION": "billing-service",
        }
    }

# --- auth, i18n, static -------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if IS_TEST:
    # Hashing admin passwords is not what the tests measure.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# --- admin access (docs/operations.md "Admin access") --------------------------------------------
# The admin's path, "admin/" unless set: always one trailing slash, no leading one.
ADMIN_URL = (env_str("ADMIN_URL", "admin/") or "admin/").strip("/") + "/"
if ADMIN_URL == "/" or ADMIN_URL.startswith(("api/", "static/")):
    raise ImproperlyConfigured("ADMIN_URL must be a path of its own, e.g. staff-console/ (not /, api/ or static/)")
# An admin session idle for longer than this is logged out (apps/common/admin_session.py).
ADMIN_SESSION_IDLE_SECONDS = env_int("ADMIN_SESSION_IDLE_SECONDS", 1800, minimum=60)
# django-axes first: it refuses a locked-out username+address before the password is even checked
# (its backend, which lets a login without a request, such as the test client's, through).
AUTHENTICATION_BACKENDS = ["apps.common.admin_session.AxesBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(seconds=env_int("AXES_COOLOFF_SECONDS", 3600, minimum=60))
# Per username and address together: an attacker guessing one account from one address is stopped
# without letting anyone lock a colleague out from elsewhere.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The hour counts from the lockout: attempts while locked out are refused without extending it.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# Lockouts are read in the logs (apps/common/login_log.py) and cleared with `manage.py axes_reset_username`;
# axes' own admin pages would add three more tables to the index.
AXES_ENABLE_ADMIN = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")) or VAR_DIR / "static")
STATICFILES_DIRS = [BASE_DIR / "static"]
if not IS_PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request otherwise
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if IS_PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- security (production) ---------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if IS_PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Probes and Prometheus scrape over plain HTTP inside the cluster.
    SECURE_REDIRECT_EXEMPT = [r"^health$", r"^healthz$", r"^live$", r"^ready$", r"^metrics$"]
    if env_bool("BEHIND_TLS_PROXY", True):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- REST framework and OpenAPI ----------------------------------------------------------------
API_RATE_LIMIT = env_str("API_RATE_LIMIT", "1200/min") or "1200/min"
# A local-memory cache is private to each process, so a revoke from the CLI (another process) can
# only be seen when the entry expires: keep that short unless Redis is shared by every process.
API_KEY_CACHE_SECONDS = env_int("API_KEY_CACHE_SECONDS", 300 if REDIS_URL else 5, minimum=1)
API_KEY_TOUCH_SECONDS = env_int("API_KEY_TOUCH_SECONDS", 300, minimum=1)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apps.projects.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["apps.projects.permissions.IsApiClient"],
    "DEFAULT_THROTTLE_CLASSES": ["apps.projects.throttling.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": API_RATE_LIMIT},
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # Bounded size and depth, no NUL: bad bodies are 4xx, never a 500 (apps/common/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["apps.common.parsers.BoundedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "apps.common.schema.AutoSchema",
    "EXCEPTION_HANDLER": "apps.common.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Billing & Entitlements API",
    "DESCRIPTION": (
        "The service internal micro-apps call instead of integrating Stripe. "
        "Authenticate every /api/v1/ call with the `X-API-Key` header. "
        "Money is an integer in minor units plus a lower-case ISO currency."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Several models have a `status`; the run status shared by replays, syncs and reconciliation keeps
    # its own name instead of a generated one.
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "apps.common.runs.RunStatus",
        # Endpoints' event_types and replays' types: one enum, however the field is named.
        "NotificationTypeEnum": "apps.entitlements.notifications.outbox.NOTIFICATION_TYPES",
    },
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # One path served by one view per method (apps/common/routing.py): each method with its view.
    "PREPROCESSING_HOOKS": ["apps.common.routing.expand_method_routes"],
    # The Stripe webhook is a plain Django view; 429s carry Retry-After (apps/common/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.common.schema.add_stripe_webhook",
        "apps.common.schema.add_retry_after",
        "apps.common.schema.add_location_to_accepted",
    ],
    # Swagger UI from drf-spectacular-sidecar's static files instead of a CDN: the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery -------------------------------------------------------------------------------------
CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", ("redis", "rediss", "amqp", "amqps", "pyamqp", "filesystem"))
BROKER_CONFIGURED = CELERY_BROKER_URL is not None
if CELERY_BROKER_URL is None:
    # The embedded broker: kombu's filesystem transport works across processes on one machine.
    _broker_dir = VAR_DIR / "celery-broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Fanout exchanges (worker control, pidbox) would go to ./control otherwise.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # With acks_late on Redis, an unacked task is redelivered after this many seconds.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60)}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# With acks_late a prefetched task is only acknowledged once done, so a dead worker's prefetched
# tasks are redelivered: prefetching trades nothing in safety for fewer broker round trips.
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("CELERY_WORKER_PREFETCH_MULTIPLIER", 4, minimum=1)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 240, minimum=1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 2.0, minimum=0.1)
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# --- Stripe (dj-stripe) -------------------------------------------------------------------------
STRIPE_API_VERSION = env_str("STRIPE_API_VERSION", "2026-08-26.dahlia") or ""
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY")
# dj-stripe reads its key from these; the gateway resolves keys per project (later issues).
if STRIPE_SECRET_KEY and STRIPE_SECRET_KEY.startswith(("sk_live_", "rk_live_")):
    STRIPE_LIVE_SECRET_KEY = STRIPE_SECRET_KEY
elif STRIPE_SECRET_KEY:
    STRIPE_TEST_SECRET_KEY = STRIPE_SECRET_KEY
# slug -> secret key, for projects with a Stripe account of their own (JSON object).
STRIPE_PROJECT_SECRET_KEYS: dict[str, str] = env_json_object("STRIPE_PROJECT_SECRET_KEYS")
STRIPE_CREDENTIALS_RESOLVER = (
    env_str("STRIPE_CREDENTIALS_RESOLVER", "apps.common.stripe_gateway.credentials.SettingsCredentialsResolver") or ""
)
STRIPE_TIMEOUT_SECONDS = env_float("STRIPE_TIMEOUT_SECONDS", 10.0, minimum=0.1)
# The most one gateway operation may take, retries and waits included.
STRIPE_RETRY_BUDGET_SECONDS = env_float("STRIPE_RETRY_BUDGET_SECONDS", 15.0, minimum=0.1)
# Signing secrets of our webhook endpoint; several at once while one is being rotated.
# STRIPE_WEBHOOK_SECRET (one secret, the seed documents' name) is merged in front of the list.
STRIPE_WEBHOOK_SECRETS = env_secrets("STRIPE_WEBHOOK_SECRETS", "STRIPE_WEBHOOK_SECRET")
# Another Stripe API server (the offline sandbox). dj-stripe applies it to the SDK when the setting
# exists at all, and warns if it exists outside DEBUG, so it is only defined when given.
_stripe_api_host = env_url("STRIPE_API_HOST", ("http", "https"))
if _stripe_api_host:
    STRIPE_API_HOST = _stripe_api_host
STRIPE_LIVE_MODE = env_bool("STRIPE_LIVE_MODE", False)
# The one secret key the offline Stripe sandbox accepts by default (public: it is stripe_sandbox's
# DEFAULT_API_KEY, restated here because apps/ never import the sandbox). `manage.py stripe_trigger`
# uses it beside `make run`; tests/common/test_dev_and_prod_split.py keeps the two equal.
STRIPE_SANDBOX_SECRET_KEY = "sk_test_sandbox0000000000000000000000"  # noqa: S105
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_USE_NATIVE_JSONFIELD = True

# --- logging ------------------------------------------------------------------------------------
LOG_FORMAT = env_choice("LOG_FORMAT", "json" if IS_PRODUCTION else "console", ("json", "console"))
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
LOGGING = build_logging_config(fmt=LOG_FORMAT, level=LOG_LEVEL)

# --- worker metrics -----------------------------------------------------------------------------
# The Celery worker's own /metrics (apps/common/worker_metrics.py), for a web that does not share its
# PROMETHEUS_MULTIPROC_DIR (separate containers). 0 turns it off; off in tests unless set, so that
# the suite's workers take no fixed port.
WORKER_METRICS_PORT = env_int("WORKER_METRICS_PORT", 0 if IS_TEST else 9808, minimum=0, maximum=65535)
WORKER_METRICS_ADDR = env_str("WORKER_METRICS_ADDR", "127.0.0.1") or "127.0.0.1"

# --- demo ---------------------------------------------------------------------------------------
DEMO_API_KEY = env_str("DEMO_API_KEY", "bk_demo0000_local-demo-key-do-not-use-in-production") or ""

# --- entitlements and webhooks -------------------------------------------------------------------
ENTITLEMENT_CACHE_SECONDS = env_int("ENTITLEMENT_CACHE_SECONDS", 3600 if REDIS_URL else 5, minimum=1)
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env_int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", 300, minimum=1)
# The ledger sweeper: rows stuck this long are enqueued again (see apps/webhooks/sweeper.py).
WEBHOOK_SWEEP_RECEIVED_AFTER_SECONDS = env_int("WEBHOOK_SWEEP_RECEIVED_AFTER_SECONDS", 120, minimum=10)
# Also how long a claim may run before it counts as a dead worker's: keep it above the task time limit.
WEBHOOK_SWEEP_PROCESSING_AFTER_SECONDS = env_int("WEBHOOK_SWEEP_PROCESSING_AFTER_SECONDS", 360, minimum=30)
WEBHOOK_SWEEP_FAILED_AFTER_SECONDS = env_int("WEBHOOK_SWEEP_FAILED_AFTER_SECONDS", 900, minimum=10)
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 20, minimum=1)
# The drain (apps/webhooks/drain.py): ledger rows one worker claims and processes in one transaction,
# and how many drains may run at once across all workers.
WEBHOOK_BATCH_SIZE = env_int("WEBHOOK_BATCH_SIZE", 50, minimum=1, maximum=500)
WEBHOOK_DRAIN_CONCURRENCY = env_int("WEBHOOK_DRAIN_CONCURRENCY", 2, minimum=1, maximum=64)
if WEBHOOK_SWEEP_PROCESSING_AFTER_SECONDS <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured("WEBHOOK_SWEEP_PROCESSING_AFTER_SECONDS must exceed CELERY_TASK_TIME_LIMIT")
# Long runs (replays, catalog syncs) still `running` after this long are marked failed by the
# stale-run sweep (apps/common/runs.py): their worker died, or no worker ever picked them up.
RUN_STALE_AFTER_SECONDS = env_int("RUN_STALE_AFTER_SECONDS", 900, minimum=60)
if RUN_STALE_AFTER_SECONDS <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured("RUN_STALE_AFTER_SECONDS must exceed CELERY_TASK_TIME_LIMIT")
# Periodic job run rows (apps/common/jobs) older than this are deleted by the purge-job-runs job.
JOB_RUN_RETENTION_DAYS = env_int("JOB_RUN_RETENTION_DAYS", 30, minimum=1)

# --- invoices, hosted sessions and recovery (apps/checkout, apps/recovery) -----------------------
# A hosted invoice session's lifetime at Stripe (Stripe allows 30 minutes to 24 hours).
HOSTED_SESSION_EXPIRES_AFTER_SECONDS = env_int(
    "HOSTED_SESSION_EXPIRES_AFTER_SECONDS", 86400, minimum=1800, maximum=86400
)
# An expired invoice session whose invoice is still open becomes abandoned this long after expiry.
HOSTED_SESSION_ABANDON_AFTER_SECONDS = env_int("HOSTED_SESSION_ABANDON_AFTER_SECONDS", 3600, minimum=0)
HOSTED_RECOVERY_WORKER_ENABLED = env_bool("HOSTED_RECOVERY_WORKER_ENABLED", True)
# Beat's interval for hosted-session-recovery: written by install_beat_schedule (--reset after a change).
HOSTED_RECOVERY_INTERVAL_SECONDS = env_int("HOSTED_RECOVERY_INTERVAL_SECONDS", 300, minimum=60)
HOSTED_RECOVERY_LIMIT = env_int("HOSTED_RECOVERY_LIMIT", 100, minimum=1)
HOSTED_RECOVERY_MAX_ATTEMPTS = env_int("HOSTED_RECOVERY_MAX_ATTEMPTS", 3, minimum=0)
HOSTED_RECOVERY_RETRY_AFTER_SECONDS = env_int("HOSTED_RECOVERY_RETRY_AFTER_SECONDS", 86400, minimum=0)
HOSTED_RECOVERY_NOTIFICATION_MAX_TRIES = env_int("HOSTED_RECOVERY_NOTIFICATION_MAX_TRIES", 5, minimum=1)
# Which recovery attempt numbers are emailed and which are posted to Slack (a number in both: both).
HOSTED_RECOVERY_EMAIL_ATTEMPTS = env_list("HOSTED_RECOVERY_EMAIL_ATTEMPTS", ["1", "2"])
HOSTED_RECOVERY_SLACK_ATTEMPTS = env_list("HOSTED_RECOVERY_SLACK_ATTEMPTS", ["3"])
HOSTED_RECOVERY_EMAIL_RECIPIENTS = env_list("HOSTED_RECOVERY_EMAIL_RECIPIENTS", [])
SENDGRID_API_KEY = env_str("SENDGRID_API_KEY")
SENDGRID_SENDER_EMAIL = (
    env_required("SENDGRID_SENDER_EMAIL")
    if SENDGRID_API_KEY
    else env_str("SENDGRID_SENDER_EMAIL", "billing@localhost") or "billing@localhost"
)
DEFAULT_FROM_EMAIL = SENDGRID_SENDER_EMAIL
if SENDGRID_API_KEY:
    EMAIL_BACKEND = "anymail.backends.sendgrid.EmailBackend"
    ANYMAIL = {"SENDGRID_API_KEY": SENDGRID_API_KEY, "REQUESTS_TIMEOUT": 10}
else:
    # `make run`: the worker prints each email. Tests use Django's locmem outbox whatever this says.
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
# Off in production without SendGrid (the console backend would print, not send).
HOSTED_RECOVERY_EMAIL_ENABLED = env_bool("HOSTED_RECOVERY_EMAIL_ENABLED", bool(SENDGRID_API_KEY) or not IS_PRODUCTION)
if IS_PRODUCTION and HOSTED_RECOVERY_EMAIL_ENABLED and not SENDGRID_API_KEY:
    raise ImproperlyConfigured("HOSTED_RECOVERY_EMAIL_ENABLED needs SENDGRID_API_KEY in production")
HOSTED_RECOVERY_SLACK_WEBHOOK_URL = env_url("HOSTED_RECOVERY_SLACK_WEBHOOK_URL", ("https", "http")) or ""
HOSTED_RECOVERY_SLACK_CHANNEL = env_str("HOSTED_RECOVERY_SLACK_CHANNEL", "") or ""
HOSTED_RECOVERY_SLACK_ENABLED = env_bool("HOSTED_RECOVERY_SLACK_ENABLED", bool(HOSTED_RECOVERY_SLACK_WEBHOOK_URL))
HOSTED_RECOVERY_SLACK_TIMEOUT_SECONDS = env_float("HOSTED_RECOVERY_SLACK_TIMEOUT_SECONDS", 5.0, minimum=0.1)

# --- reconciliation with Stripe (apps/reconciliation/config.py reads these) ----------------------
RECONCILIATION_ENABLED = env_bool("RECONCILIATION_ENABLED", True)
RECONCILIATION_SCHEDULE_HOUR = env_int("RECONCILIATION_SCHEDULE_HOUR", 3, minimum=0, maximum=23)
RECONCILIATION_DAYS_BACK = env_int("RECONCILIATION_DAYS_BACK", 7, minimum=1, maximum=30)
RECONCILIATION_STRIPE_RPS = env_float("RECONCILIATION_STRIPE_RPS", 20.0, minimum=0.1)
RECONCILIATION_PAGE_SIZE = env_int("RECONCILIATION_PAGE_SIZE", 100, minimum=1, maximum=100)

# --- notifications to the micro-apps: the fulfillment worker (apps/entitlements/notifications) -----
# Off: the wake-up and beat's deliver-notifications do nothing (notifications still queue up).
FULFILLMENT_WORKER_ENABLED = env_bool("FULFILLMENT_WORKER_ENABLED", True)
# Beat's interval for deliver-notifications, the safety net behind the wake-up on commit: written by
# install_beat_schedule (--reset after a change).
FULFILLMENT_POLL_INTERVAL_SECONDS = env_int("FULFILLMENT_POLL_INTERVAL_SECONDS", 10, minimum=1)
# Deliveries one claim takes (FOR UPDATE SKIP LOCKED); a run claims batches until none is due.
FULFILLMENT_BATCH_SIZE = env_int("FULFILLMENT_BATCH_SIZE", 100, minimum=1, maximum=1000)
FULFILLMENT_TIMEOUT_SECONDS = env_float("FULFILLMENT_TIMEOUT_SECONDS", 5.0, minimum=0.1)
# A delivery still failing this long after it was queued is left `failed` (Stripe's 3 days).
FULFILLMENT_RETRY_WINDOW_SECONDS = env_int("FULFILLMENT_RETRY_WINDOW_SECONDS", 259200, minimum=60)
# An endpoint whose every attempt has failed for this long is disabled (its app's owners see why).
FULFILLMENT_DISABLE_AFTER_SECONDS = env_int("FULFILLMENT_DISABLE_AFTER_SECONDS", 86400, minimum=60)
# How long a claimed delivery is the claiming worker's: a worker killed mid-send leaves it to
# another after this long. Sends that could not finish inside it are handed back unsent.
FULFILLMENT_LEASE_SECONDS = env_int("FULFILLMENT_LEASE_SECONDS", 60, minimum=5)
if FULFILLMENT_LEASE_SECONDS < 2 * FULFILLMENT_TIMEOUT_SECONDS:
    raise ImproperlyConfigured("FULFILLMENT_LEASE_SECONDS must be at least twice FULFILLMENT_TIMEOUT_SECONDS")
# After a rotation the previous signing secret keeps signing (a second v1) for this long.
NOTIFICATION_SECRET_OVERLAP_SECONDS = env_int("NOTIFICATION_SECRET_OVERLAP_SECONDS", 86400, minimum=0)
# Endpoint URLs must be https unless this is on (development and tests: receivers on 127.0.0.1).
NOTIFICATION_ALLOW_HTTP = env_bool("NOTIFICATION_ALLOW_HTTP", DEBUG or IS_TEST)
