"""Django settings for avatarsite.

Everything that differs between machines comes from the environment and is parsed strictly
(avatarsite.env): a bad value stops start-up with a message that names the variable.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from avatarsite.env import Env
from avatarsite.s3 import s3_storage, storage_origins

BASE_DIR = Path(__file__).resolve().parent.parent
env = Env()

# Runtime state (SQLite database, media, generated secret key) lives here unless told otherwise.
DATA_DIR = Path(env.str("DATA_DIR", str(BASE_DIR / "var"))).resolve()
# The lip-sync face models, where `make setup` puts them (in the checkout, whatever DATA_DIR).
FACE_MODELS_DIR = BASE_DIR / "var" / "models"


def _secret_key() -> str:
    """SECRET_KEY from the environment, or one generated once and kept in DATA_DIR."""
    key = env.str("SECRET_KEY")
    if key:
        return key
    path = DATA_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    path.touch(mode=0o600)
    path.write_text(key)
    return key


SECRET_KEY = _secret_key()
DEBUG = env.bool("DEBUG", False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
PUBLIC_BASE_URL = env.url("PUBLIC_BASE_URL")
CSRF_TRUSTED_ORIGINS = env.list(
    "CSRF_TRUSTED_ORIGINS", [PUBLIC_BASE_URL] if PUBLIC_BASE_URL else []
)

INSTALLED_APPS = [
    "avatarsite.apps.StudioAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "django_q",
    "axes",
    "csp",
    "django_prometheus",
    "jobs",
]

MIDDLEWARE = [
    # First: refuses an oversized body by its Content-Length before anything reads it
    # (CSRF reads the whole body to find its token; the route limits are in jobs/bodycaps.py).
    "jobs.bodycaps.BodyCapMiddleware",
    # Times every request for /metrics (it reads no body, so it may sit outside the cap).
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    # Inside the CSP middleware, so the styled 405 page gets the policy header too.
    "jobs.views.errors.MethodNotAllowedMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last, as django-axes asks: it turns a lockout into the page below.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked-out logins
    "django.contrib.auth.backends.ModelBackend",
]
# Brute-force protection: 5 wrong passwords for one username from one address lock it for
# an hour; the page says so and how to get help.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = 1  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
# The lock is on (username, client address). Behind reverse proxies the client address comes
# from X-Forwarded-For: PROXY_COUNT says how many proxies append to it (0: no proxy, the header
# is ignored), TRUSTED_PROXIES optionally which peers may send it (avatarsite/client_ip.py).
PROXY_COUNT = env.int("PROXY_COUNT", 0, minimum=0, maximum=5)
TRUSTED_PROXIES = env.networks("TRUSTED_PROXIES")
AXES_CLIENT_IP_CALLABLE = "avatarsite.client_ip.client_ip"

# Content Security Policy: nothing inline, nothing from elsewhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "media-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

ROOT_URLCONF = "avatarsite.urls"
WSGI_APPLICATION = "avatarsite.wsgi.application"

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
                "jobs.context_processors.studio",
            ],
        },
    },
]

# Database: SQLite in WAL mode by default, anything dj-database-url understands otherwise.
_database_url = env.str("DATABASE_URL")
if _database_url:
    try:
        _db = dj_database_url.parse(_database_url, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"DATABASE_URL is not a database URL I understand: {exc}"
        ) from None
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # Connections are kept: opening one and running the PRAGMAs costs more than most queries.
    _db = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(DATA_DIR / "db.sqlite3"),
        "CONN_MAX_AGE": 600,
    }
if _db["ENGINE"].endswith(".sqlite3"):
    _db.setdefault("OPTIONS", {}).update(
        {
            # WAL lets the web process read while the worker writes; IMMEDIATE transactions and
            # a busy timeout turn lock contention into a short wait instead of "database is locked".
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    # A file (not :memory:) so worker processes started by tests share the test database;
    # one per test run, so runs side by side do not share it.
    _db["TEST"] = {"NAME": str(Path(tempfile.gettempdir()) / f"avatarsite-test-{os.getpid()}.db")}
else:
    # One test database per test run, so runs side by side never drop each other's.
    _db["TEST"] = {"NAME": f"test_{_db['NAME']}_{os.getpid()}"}
# django-prometheus's wrappers of the same backends count queries and errors for /metrics.
_db["ENGINE"] = _db["ENGINE"].replace("django.db.backends.", "django_prometheus.db.backends.")
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.url("REDIS_URL", schemes=("redis", "rediss", "unix"))
if REDIS_URL:
    # Sessions read from Redis and written through to the database.
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    CACHES: dict[str, dict[str, Any]] = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "avatarsite_cache",
            # Wake-up dedup keys must not be culled early (the default keeps only 300).
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# Anyone may make an account at /accounts/signup/ only if this is on; invite links always may.
ALLOW_SIGNUP = env.bool("ALLOW_SIGNUP", False)
LOGIN_REDIRECT_URL = "jobs:dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", str(DATA_DIR / "media"))).resolve()
# Media is never served from a public URL: every file goes through a view that checks the team.
MEDIA_URL = "/media-is-not-public/"
# Files on this machine by default; STORAGE_URL=s3://bucket/prefix puts every file (uploads,
# voice-overs, results, posters, thumbnails) in S3-compatible object storage instead, so web and
# worker hosts share no disk. Files are then served by a short-lived presigned redirect after the
# access check (jobs/serve.py), so video bytes never pass through the web workers.
STORAGE_LINK_SECONDS = env.int("STORAGE_LINK_SECONDS", 300, minimum=30, maximum=3600)
_s3 = env.s3_location("STORAGE_URL")
_default_storage: dict[str, Any] = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
# Where browsers fetch files from besides this site (the CSP's media-src and img-src).
STORAGE_ORIGINS: list[str] = []
if _s3:
    _bucket, _prefix = _s3
    _endpoint = env.url("AWS_S3_ENDPOINT_URL")
    _region = env.str("AWS_S3_REGION_NAME")
    _s3_key_id, _s3_secret = env.str("AWS_ACCESS_KEY_ID"), env.str("AWS_SECRET_ACCESS_KEY")
    if bool(_s3_key_id) != bool(_s3_secret):
        raise ImproperlyConfigured(
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together: set both, or neither "
            "(boto3 then finds credentials itself, e.g. an instance role)."
        )
    # Path style (endpoint/bucket/key) for other providers' endpoints, which MinIO needs and R2
    # and Backblaze accept; virtual hosts (bucket.s3.region.amazonaws.com) on AWS itself.
    _addressing = env.choice(
        "AWS_S3_ADDRESSING_STYLE", "path" if _endpoint else "virtual", ("path", "virtual")
    )
    _default_storage = s3_storage(
        bucket=_bucket,
        prefix=_prefix,
        endpoint=_endpoint,
        region=_region,
        addressing=_addressing,
        link_seconds=STORAGE_LINK_SECONDS,
        key_id=_s3_key_id,
        secret=_s3_secret,
    )
    STORAGE_ORIGINS = storage_origins(
        bucket=_bucket, endpoint=_endpoint, region=_region, addressing=_addressing
    )
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# A file's presigned redirect is followed by the browser: its origin must be allowed.
for _directive in ("img-src", "media-src"):
    CONTENT_SECURITY_POLICY["DIRECTIVES"][_directive] += STORAGE_ORIGINS
# Uploads bigger than this go to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_HANDLERS = [
    # First: stops an upload past its route's limit as it streams, whatever Content-Length said.
    "jobs.bodycaps.BodyCapUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
SECURE_CONTENT_TYPE_NOSNIFF = True
# Never no-referrer on a page with a form: Chromium would post it with `Origin: null`, which
# the CSRF check refuses. Only the public share page (no forms) sends no-referrer.
SECURE_REFERRER_POLICY = "same-origin"
CSRF_FAILURE_VIEW = "jobs.views.errors.csrf_failure"
X_FRAME_OPTIONS = "DENY"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if PUBLIC_BASE_URL.startswith("https://"):
    # Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", True)

# Email (password resets, job notifications): the console unless an SMTP server is set.
_email_host = env.str("EMAIL_HOST")
if _email_host:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = _email_host
    EMAIL_PORT = env.int("EMAIL_PORT", 587, minimum=1, maximum=65535)
    EMAIL_HOST_USER = env.str("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", True)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", "avatarsite <noreply@localhost>")

# Kling. Either AccessKey + SecretKey (official JWT) or one API key (gateways' Bearer auth).
KLING_PRESETS = {
    # name: (base URL, longest audio the deployment accepts in seconds)
    "official": ("https://api-singapore.klingai.com", 300),
    "kkiai": ("https://www.kkiai.com/kling", 300),
    "cometapi": ("https://api.cometapi.com/kling", 60),
}
KLING_PRESET = env.str("KLING_PRESET", "official")
if KLING_PRESET not in KLING_PRESETS:
    raise ImproperlyConfigured(
        f"KLING_PRESET={KLING_PRESET!r} is unknown: use one of {', '.join(KLING_PRESETS)}."
    )
KLING_BASE_URL = env.url("KLING_BASE_URL", KLING_PRESETS[KLING_PRESET][0])
KLING_ACCESS_KEY = env.str("KLING_ACCESS_KEY")
KLING_SECRET_KEY = env.str("KLING_SECRET_KEY")
KLING_API_KEY = env.str("KLING_API_KEY")
if bool(KLING_ACCESS_KEY) != bool(KLING_SECRET_KEY):
    raise ImproperlyConfigured(
        "KLING_ACCESS_KEY and KLING_SECRET_KEY go together: set both, or neither "
        "(and KLING_API_KEY for a gateway)."
    )
if KLING_API_KEY and KLING_ACCESS_KEY:
    raise ImproperlyConfigured(
        "Set either KLING_API_KEY (gateway) or KLING_ACCESS_KEY + KLING_SECRET_KEY (official), "
        "not both."
    )
KLING_MAX_CONCURRENCY = env.int("KLING_MAX_CONCURRENCY", 5, minimum=1, maximum=1000)
KLING_MAX_AUDIO_SECONDS = env.int(
    "KLING_MAX_AUDIO_SECONDS", KLING_PRESETS[KLING_PRESET][1], minimum=2, maximum=300
)
KLING_HTTP_TIMEOUT = env.int("KLING_HTTP_TIMEOUT", 30, minimum=1, maximum=300)
# Kling units per second of video, for estimates until a team has its own history (the
# simulator charges the same; Kling's pro costs about twice std).
KLING_UNITS_PER_SECOND_STD = env.decimal(
    "KLING_UNITS_PER_SECOND_STD", "0.4", minimum="0", maximum="1000"
)
KLING_UNITS_PER_SECOND_PRO = env.decimal(
    "KLING_UNITS_PER_SECOND_PRO", "0.8", minimum="0", maximum="1000"
)
# The first status query after submitting (later ones back off); ×10 when callbacks are on.
KLING_POLL_SECONDS = env.int("KLING_POLL_SECONDS", 3, minimum=1, maximum=600)
KLING_JOB_DEADLINE_SECONDS = env.int("KLING_JOB_DEADLINE_SECONDS", 7200, minimum=60)

# With nothing running, an open dashboard still asks this often whether jobs were made
# elsewhere (a teammate, another tab, the API); a cheap 204 when nothing changed.
DASHBOARD_IDLE_POLL_SECONDS = env.int("DASHBOARD_IDLE_POLL_SECONDS", 20, minimum=1, maximum=600)

# The Kling-compatible API fetches image/sound URLs and calls callback URLs that callers give:
# only public addresses, unless this is set (local testing against loopback servers).
ALLOW_PRIVATE_URLS = env.bool("ALLOW_PRIVATE_URLS", False)
# Or trust only these private networks (comma-separated CIDRs, e.g. an internal file server);
# parsed here, so a typo stops start-up instead of failing each request that fetches a URL.
PRIVATE_URL_ALLOWLIST = env.networks("PRIVATE_URL_ALLOWLIST")

# The worker. The database is the truth and the queue only a wake-up call, so a lost
# message costs a delay (the reconciler re-drives the job), never the job.
# Two clusters share one queue backend: the jobs cluster (the default) and API_CALLBACK_CLUSTER,
# which only delivers callbacks out, so a slow receiver never delays job work. `manage.py
# qcluster` runs the jobs cluster; with Q_CLUSTER_NAME=callbacks in its environment it runs the
# callbacks one (django-q2 then applies ALT_CLUSTERS["callbacks"]); `run_studio` starts both.
# "name" is the same for both: django-q2 signs task payloads with it.
API_CALLBACK_CLUSTER = "callbacks"
Q_CLUSTER = {
    "name": "avatarsite",
    "workers": env.int("Q_WORKERS", 2, minimum=1, maximum=64),
    "timeout": 900,  # a task may run this long (a 5-minute draft render with room to spare)
    "retry": 960,  # redeliver an unacknowledged task after this; must exceed the timeout
    "max_attempts": 3,
    "ack_failures": True,
    "catch_up": False,
    # Successful tasks are not kept: the jobs table is the record, and keeping them makes
    # django-q2's monitor reload them all on every task. Failures are still kept.
    "save_limit": -1,
    # How often an idle worker looks for work in the database queue (the Redis broker waits
    # on Redis instead). Every Kling slot hand-over goes through the queue: at 50 ms a freed
    # slot is busy again within about 60 ms (bench/kling_flow.py), for about 2% of a core
    # while idle.
    "poll": env.int("Q_POLL_MS", 50, minimum=10, maximum=5000) / 1000,
    "label": "Task queue",
    "ALT_CLUSTERS": {
        API_CALLBACK_CLUSTER: {
            "workers": env.int("Q_CALLBACK_WORKERS", 2, minimum=1, maximum=64),
            # One delivery takes at most a few seconds (callbacks.CALLBACK_TIMEOUT, four rounds).
            "timeout": 120,
            "retry": 180,
            "label": "Callback queue",
        }
    },
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# LOG_FORMAT=json: one JSON object per line (with the job's code on lines about a job), for log
# collectors; text for people.
LOG_FORMAT = env.choice("LOG_FORMAT", "text", ("text", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "avatarsite.logformat.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", "INFO").upper()},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# Operators' endpoints. /metrics answers a bearer token or an address in the allowlist (CIDRs);
# with neither set it answers nobody. /healthz is open (it names checks, never secrets).
METRICS_TOKEN = env.str("METRICS_TOKEN")
METRICS_ALLOWLIST = env.networks("METRICS_ALLOWLIST")
# /healthz fails when no worker has written its heartbeat (jobs/ticker.py) for this long.
WORKER_HEARTBEAT_MAX_AGE = env.int("WORKER_HEARTBEAT_MAX_AGE", 60, minimum=5, maximum=86_400)
