"""KICC EasyPay (EP9) wire format: hosts, dates, message authentication, answers.

This module owns one decision: the exact bytes and values KICC's PG API is spoken with.

* Hosts: test ``https://testpgapi.easypay.co.kr``, production ``https://pgapi.easypay.co.kr``.
* Every call is ``POST`` with a JSON body (``Content-Type: application/json;
  charset=utf-8``); the merchant is identified by ``mallId`` in the body, and requests that
  change money carry ``msgAuthValue``: lowercase hex HMAC-SHA256 with the merchant's secret
  key (:func:`msg_auth_value`; for a revise, over ``f"{pgCno}|{shopTransactionId}"``).
* Amounts are whole Korean won (``currency: "00"``): ``paydesk.money.KICC_RULES``.
* Dates (``approvalReqDate``, ``cancelReqDate``, ``transactionDate``) are ``yyyyMMdd`` in
  Korea time (UTC+9, no daylight saving).
* ``shopTransactionId`` (at most 60 characters) is KICC's idempotency key: paydesk's
  idempotency keys fit; a longer one is replaced by a digest (:func:`transaction_id`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._http import JsonReply

__all__ = [
    "KST",
    "PRODUCTION_BASE_URL",
    "SUCCESS",
    "TEST_BASE_URL",
    "Call",
    "Reply",
    "kst_date",
    "msg_auth_value",
    "transaction_id",
]

TEST_BASE_URL = "https://testpgapi.easypay.co.kr"
PRODUCTION_BASE_URL = "https://pgapi.easypay.co.kr"
REGISTER_PATH = "/api/ep9/trades/webpay"
APPROVAL_PATH = "/api/ep9/trades/approval"
REVISE_PATH = "/api/trades/revise"
RETRIEVE_PATH = "/api/trades/retrieveTransaction"

SUCCESS = "0000"
KRW = "00"  # KICC's currency code for Korean won
KST = dt.timezone(dt.timedelta(hours=9), "KST")
MAX_TRANSACTION_ID = 60

#: ``statusCode`` values meaning the approval no longer stands (full cancel, network cancel).
CANCELLED_STATUSES = frozenset({"TS02", "TS12"})
#: ``statusCode`` values seen for approved card payments (approved, purchase requested,
#: purchased, partially cancelled).
APPROVED_STATUSES = frozenset({"TS01", "TS03", "TS04", "TS06"})


@dataclass(frozen=True, slots=True)
class Call:
    path: str
    body: Mapping[str, Any] = field(default_factory=dict)


#: KICC's answer to a call, whatever its HTTP status (``data``: the parsed JSON or ``None``).
Reply = JsonReply


def msg_auth_value(secret_key: str, *parts: object) -> str:
    """Lowercase hex HMAC-SHA256 of ``parts`` joined with ``|`` under the secret key."""
    message = "|".join(str(part) for part in parts)
    return hmac.new(secret_key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def kst_date(moment: dt.datetime) -> str:
    """``yyyyMMdd`` of ``moment`` in Korea time (KICC's request dates)."""
    if moment.tzinfo is None:
        raise ValueError("KICC dates need an aware datetime")
    return moment.astimezone(KST).strftime("%Y%m%d")


def transaction_id(key: str) -> str:
    """A ``shopTransactionId`` for paydesk idempotency key ``key`` (the same key, the same id)."""
    if len(key) <= MAX_TRANSACTION_ID:
        return key
    return "pd-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def dumps(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def loads(content: bytes) -> Any:
    # Amounts are integers of won; a fraction would be parsed as exact text, never a float.
    return json.loads(content, parse_float=str)


def won(value: Any) -> int | None:
    """An amount KICC sent (number or numeric string) as whole won, or ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.isdigit() else None
