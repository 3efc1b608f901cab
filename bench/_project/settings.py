"""Settings for bench/webhooks.py: paydesk and a bare baseline view in one project.

The database is ``DATABASE_URL`` and must be PostgreSQL (``make bench`` runs the bench inside
``scripts/with-postgres``); anything else is refused, because a figure measured on SQLite says
nothing about a deployment. ``BENCH_WEBHOOK_PROCESS`` chooses how paydesk handles a stored
delivery: ``inline`` (process it in the request) or ``task`` (enqueue a Django Task on the
database backend, which is one INSERT; no worker runs while the bench measures).

Production-like where it matters for the figures: ``DEBUG = False`` (no query log),
persistent database connections, Django's default middleware stack (shared by paydesk's
endpoint and the baseline view). Rate limiting is off, because the load generator is one
client sending far more than the default 100 requests a minute.
"""

from __future__ import annotations

import os

import dj_database_url
import django
from django.core.exceptions import ImproperlyConfigured

WEBHOOK_SECRET = "whsec_bench_not_secret"

_url = os.environ.get("DATABASE_URL", "")
if not _url:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. Run the bench with `make bench` (it starts a throwaway "
        "PostgreSQL), or point DATABASE_URL at a PostgreSQL database you can throw away."
    )
_db = dj_database_url.parse(_url, conn_max_age=600)
if _db["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured(
        f"The bench needs PostgreSQL; DATABASE_URL names {_db['ENGINE']!r}. Run `make bench`."
    )
DATABASES = {"default": _db}

PROCESS = os.environ.get("BENCH_WEBHOOK_PROCESS", "inline")
if PROCESS not in ("inline", "task"):
    raise ImproperlyConfigured(f"BENCH_WEBHOOK_PROCESS must be inline or task, not {PROCESS!r}.")

SECRET_KEY = "paydesk-bench-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "bench._project.urls"
WSGI_APPLICATION = "bench._project.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "paydesk",
    "bench._project.baseline",
]

# Django's startproject stack, the same for both endpoints.
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
        "OPTIONS": {"context_processors": []},
    }
]

# django.tasks on Django 6, the django-tasks backport on 5.2. "queue" only enqueues (an
# INSERT into django_tasks_db's table); nothing runs the queued tasks during the bench.
if django.VERSION >= (6, 0):
    _IMMEDIATE = "django.tasks.backends.immediate.ImmediateBackend"
else:  # pragma: no cover - the bench runs on the main virtualenv
    _IMMEDIATE = "django_tasks.backends.immediate.ImmediateBackend"
    INSTALLED_APPS.append("django_tasks")
INSTALLED_APPS.append("django_tasks_db")
TASKS = {
    "default": {"BACKEND": _IMMEDIATE},
    "queue": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]},
}

PAYDESK = {
    "DEFAULT_PROVIDER": "sandbox",
    "SANDBOX_IN_PRODUCTION": True,  # DEBUG is False on purpose; the sandbox is the load
    "PROVIDERS": {
        "sandbox": {
            "BACKEND": "paydesk.providers.sandbox.SandboxProvider",
            "OPTIONS": {"WEBHOOK_SECRET": WEBHOOK_SECRET, "WEBHOOK_DELIVERY": "off"},
        }
    },
    "WEBHOOKS": {"PROCESS": PROCESS},
    "SECURITY": {"ENABLE_RATE_LIMITING": False},
    "TASK_BACKEND": "queue",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"paydesk": {"handlers": ["stderr"], "level": "WARNING", "propagate": False}},
}
