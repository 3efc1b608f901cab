"""App configuration: registers paydesk's system checks."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PaydeskConfig(AppConfig):
    name = "paydesk"
    verbose_name = _("Payments")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
