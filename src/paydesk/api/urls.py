"""The API's URLs, mounted by ``paydesk.urls`` at ``api/v1/`` (namespace ``paydesk:api``)."""

from __future__ import annotations

from typing import Any

from .currencies import urlpatterns as currency_urlpatterns

app_name = "api"

urlpatterns: list[Any] = []
urlpatterns += currency_urlpatterns
