"""The HTTP side of the iyzico adapter: sign, send, read.

This module owns one decision: how one iyzico call crosses the network and what a transport
failure becomes. Every request body is serialized once and those exact bytes are both signed
(``IYZWSv2``) and sent. Answers are parsed with ``Decimal`` for numbers (no float ever
touches an amount) and handed back whole, ``status: "failure"`` included: deciding what a
refusal means is the caller's job. What the caller never sees is a transport problem: a
timeout, a connection error, HTTP 5xx or 429 and an unreadable answer become a retryable
``ProviderUnavailable``; HTTP 401/403 become ``ProviderAuthenticationError``.

The adapter's operations are written once, as generators that ``yield`` a ``Call`` and get
the parsed answer back (or a ``ProviderError`` thrown in); ``run`` drives one with an
``httpx.Client`` and ``arun`` with an ``httpx.AsyncClient``. The clients, the sending and
the driving are the same for every adapter (``.._http.HttpTransport``); what is iyzico's is
here: the signed request, the reading of an answer, and the words for a lost one.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx

from ...exceptions import ProviderError, error_for_code
from .._http import HttpTransport
from . import auth

__all__ = ["Call", "Flow", "Transport", "encode_body"]

T = TypeVar("T")
Answer = dict[str, Any]
Flow = Generator["Call", Answer, T]

CLIENT_VERSION = "paydesk-iyzico-1"


@dataclass(frozen=True, slots=True)
class Call:
    """One iyzico request: ``operation`` names it in error messages ("refund the payment")."""

    method: str
    path: str
    payload: Mapping[str, Any] | None = None
    query: Mapping[str, str] = field(default_factory=dict)
    operation: str = "answer"


def encode_body(payload: Mapping[str, Any] | None) -> bytes:
    """The exact request bytes, serialized as the official SDK does (``json.dumps``)."""
    return json.dumps(payload if payload is None else dict(payload)).encode("utf-8")


class Transport(HttpTransport[Call, Answer]):
    def __init__(
        self,
        *,
        alias: str,
        api_key: str,
        secret_key: str,
        base_url: str,
        timeout: float,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(timeout=timeout, client=client, async_client=async_client)
        self.alias = alias
        self.api_key = api_key
        self.secret_key = secret_key
        self.base_url = base_url.rstrip("/")

    # -- building -------------------------------------------------------------------------

    def build(self, call: Call, *, random: str | None = None) -> httpx.Request:
        body = auth.EMPTY_BODY if call.payload is None else encode_body(call.payload)
        rnd = random or auth.random_key()
        url = self.base_url + call.path
        if call.query:
            url += "?" + urlencode(dict(call.query))
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "x-iyzi-rnd": rnd,
            "x-iyzi-client-version": CLIENT_VERSION,
            "Authorization": auth.authorization_header(
                self.api_key, self.secret_key, rnd, call.path, body
            ),
        }
        return httpx.Request(call.method, url, content=body, headers=headers)

    # -- reading --------------------------------------------------------------------------

    def _unavailable(self, call: Call, why: str, provider_code: str | None = None) -> ProviderError:
        return error_for_code(
            "provider_unavailable",
            f"iyzico did not {call.operation}: {why}. The outcome is unknown; paydesk will "
            "not guess it (sync the payment, or retry the same operation later).",
            provider=self.alias,
            provider_code=provider_code,
            retryable=True,
        )

    def transport_error(self, call: Call, exc: httpx.HTTPError) -> ProviderError:
        if isinstance(exc, httpx.TimeoutException):
            return self._unavailable(call, f"no answer within {self.timeout:g} s")
        return self._unavailable(call, f"{type(exc).__name__}: {exc}")

    def read(self, call: Call, response: httpx.Response) -> Answer:
        status = response.status_code
        if status in (401, 403):
            raise error_for_code(
                "provider_authentication",
                f"iyzico refused our credentials (HTTP {status}) when asked to "
                f"{call.operation}. Check OPTIONS API_KEY, SECRET_KEY and MODE.",
                provider=self.alias,
                provider_code=str(status),
            )
        if status == 429:
            raise error_for_code(
                "rate_limited",
                f"iyzico rate-limited the request to {call.operation} (HTTP 429); retry later.",
                provider=self.alias,
                provider_code="429",
                retryable=True,
            )
        if status >= 500:
            raise self._unavailable(call, f"iyzico answered HTTP {status}", str(status))
        try:
            data = json.loads(response.content, parse_float=Decimal)
        except ValueError:
            raise self._unavailable(call, f"the answer (HTTP {status}) is not JSON") from None
        if not isinstance(data, dict) or "status" not in data:
            raise self._unavailable(call, f"the answer (HTTP {status}) is not an iyzico answer")
        return data

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
