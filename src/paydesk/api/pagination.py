"""Page-number pagination sized by ``PAYDESK["API"]["PAGE_SIZE"]`` / ``["MAX_PAGE_SIZE"]``.

``?page=2&page_size=50``; the body is ``{"count", "next", "previous", "results"}``. The
sizes are read per request, so ``override_settings`` and runtime changes apply.
"""

from __future__ import annotations

from typing import Any

from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

from ..conf import paydesk_settings

__all__ = ["PaydeskPagination"]


class PaydeskPagination(PageNumberPagination):
    page_size_query_param = "page_size"

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = paydesk_settings.API
        return config

    def get_page_size(self, request: Request) -> int | None:
        config = self._config()
        self.page_size = max(int(config["PAGE_SIZE"]), 1)
        self.max_page_size = max(int(config["MAX_PAGE_SIZE"]), self.page_size)
        return super().get_page_size(request)
