"""App configuration: registers paydesk's system checks, metrics receivers and health check."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PaydeskConfig(AppConfig):
    name = "paydesk"
    verbose_name = _("Payments")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .logging import install_redaction

        # Redact card numbers, CVCs and secrets from every paydesk.* record, on by default
        # (PAYDESK["LOGGING"]["FILTER_SENSITIVE_DATA"]).
        install_redaction()

        from .health import register_health_check_plugin
        from .metrics import connect as connect_metrics

        connect_metrics()  # counting receivers; a no-op without prometheus_client
        register_health_check_plugin()  # django-health-check 3.x, if installed
