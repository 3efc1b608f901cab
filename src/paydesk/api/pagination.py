"""Page-number pagination sized by ``PAYDESK["API"]["PAGE_SIZE"]`` / ``["MAX_PAGE_SIZE"]``.

``?page=2&page_size=50``; the body is ``{"count", "next", "previous", "results"}``. The
sizes are read per request, so ``override_settings`` and runtime changes apply. A ``page``
that is not a whole number from 1 is a 400; a page past the end is DRF's 404.
"""

from __future__ import annotations

from typing import Any

from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

from ..conf import paydesk_settings
from .exceptions import APIError

__all__ = ["PaydeskPagination"]


class PaydeskPagination(PageNumberPagination):
    page_size_query_param = "page_size"

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = paydesk_settings.API
        return config

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        raw = request.query_params.get(self.page_query_param)
        valid = raw is None or raw in self.last_page_strings or (raw.isdigit() and int(raw) >= 1)
        if not valid:
            raise APIError(
                "page must be a whole number from 1.",
                code="invalid_request",
                param=self.page_query_param,
                status_code=400,
            )
        return super().paginate_queryset(queryset, request, view)

    def get_page_size(self, request: Request) -> int | None:
        config = self._config()
        self.page_size = max(int(config["PAGE_SIZE"]), 1)
        self.max_page_size = max(int(config["MAX_PAGE_SIZE"]), self.page_size)
        return super().get_page_size(request)
