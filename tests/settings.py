"""Settings for paydesk's own test suite.

The database comes from ``DATABASE_URL`` (``make test`` points it at a throwaway PostgreSQL
cluster, then runs again on SQLite); with no URL the suite runs on an SQLite file.
"""

from __future__ import annotations

import os
import tempfile

import dj_database_url
import django

SECRET_KEY = "paydesk-tests-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
ALLOWED_HOSTS = ["*"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "sqlite:///paydesk-tests.sqlite3"), conn_max_age=0
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Threads in the concurrency tests share one file; a busy timeout turns SQLite's
    # "database is locked" into waiting, as PostgreSQL's row locks would.
    DATABASES["default"].setdefault("OPTIONS", {}).update(timeout=20, transaction_mode="IMMEDIATE")
    # A file (threads in one test share it), private to this process: two test runs, or
    # xdist workers, never write to each other's database.
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"paydesk-tests-{os.getpid()}.sqlite3")
    }

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # As in the demo: the browser tests' live server serves the dashboard's and the admin's
    # CSS and JavaScript through staticfiles' finders (without it, every asset is a 500).
    "django.contrib.staticfiles",
    "rest_framework",
    # DRF's own Token authentication, as a host project may use it (tests/test_api_auth.py).
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "paydesk",
    "tests.testapp",
    # The demo project's apps (example/ is on pytest's pythonpath): tests/test_demo.py.
    "shop",
    "bookings",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# paydesk's REST API (paydesk.api, docs/api.md): OpenAPI by drf-spectacular, with Swagger UI
# and ReDoc served from drf-spectacular-sidecar's static files (no CDN).
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
# Swagger UI and ReDoc pages link their assets under STATIC_URL.
STATIC_URL = "/static/"
SPECTACULAR_SETTINGS = {
    "TITLE": "paydesk API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

PAYDESK = {
    "DEFAULT_PROVIDER": "sandbox",
    "PROVIDERS": {
        # Most tests look at exact ledgers; the webhook tests turn delivery on themselves.
        "sandbox": {
            "BACKEND": "paydesk.providers.sandbox.SandboxProvider",
            "OPTIONS": {"WEBHOOK_DELIVERY": "off"},
        },
    },
}

# django.tasks on Django 6, the django-tasks backport on 5.2; the database backend (a real
# worker, `db_worker`) is there for the tests that run the pipeline through one.
if django.VERSION >= (6, 0):
    _IMMEDIATE = "django.tasks.backends.immediate.ImmediateBackend"
else:
    _IMMEDIATE = "django_tasks.backends.immediate.ImmediateBackend"
    INSTALLED_APPS.append("django_tasks")
INSTALLED_APPS.append("django_tasks_db")
TASKS = {
    "default": {"BACKEND": _IMMEDIATE},
    "db": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"paydesk": {"handlers": ["null"], "level": "DEBUG", "propagate": True}},
}
