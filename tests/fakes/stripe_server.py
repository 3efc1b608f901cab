"""A fake Stripe API on a loopback port, for driving the real stripe SDK in tests.

It speaks Stripe's v1 wire format as documented (../shared/docs/providers.md section 1, the
2023-08-16 OpenAPI spec): form-encoded bodies with ``metadata[k]=v`` / ``expand[0]=x``,
``Authorization: Bearer sk_...``, JSON objects and ``{"error": {...}}`` bodies, a
``Request-Id`` on every answer, and Stripe's idempotency rules: a POST whose
``Idempotency-Key`` was seen with the same parameters gets the saved answer again (with
``Idempotent-Replayed: true``); with other parameters, a 400 ``idempotency_error``; while the
first is still running, a 409.

Start it with ``FakeStripe().start()`` (the ``fake_stripe`` fixture does) and point a
``stripe.StripeClient`` at it with ``base_addresses={"api": fake.url}``.

Test payment methods (``pm_card_*`` tokens, as in Stripe's test mode): ``pm_card_visa``
succeeds; ``pm_card_chargeDeclined`` is declined (402 ``card_declined`` /
``generic_decline``); ``..InsufficientFunds``, ``..ExpiredCard``, ``..IncorrectCvc``,
``..LostCard``, ``..StolenCard``, ``..ProcessingError`` likewise with their codes;
``pm_card_threeDSecure2Required`` needs 3-D Secure (``requires_action``). The customer's side
of Stripe.js is played by ``complete_3ds`` and ``client_confirm``.

The fake keeps its own books (``movements``: every charge, capture and refund it made) so a
test can prove that retries never charged or refunded twice, and injects faults before or
after doing the work: ``"500"``, ``"429"`` (with ``Stripe-Should-Retry: true``), ``"reset"``
(connection reset before the work), ``"reset_after"`` (after it) and ``"timeout"`` (the work
is done and saved, the answer comes after ``hang_seconds``, past the client's timeout).

Where Stripe's exact behaviour is not documented in the sources above, the fake makes a
plain guess and says so in a comment ("guess").
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import re
import secrets
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

SECRET_KEY = "sk_test_paydesk_fake_51Hxq0000000000"
PUBLISHABLE_KEY = "pk_test_paydesk_fake_51Hxq0000000000"
FAULTS = ("500", "429", "reset", "reset_after", "timeout")


@dataclass(frozen=True)
class TestCard:
    brand: str
    last4: str
    outcome: str = "succeed"  # "succeed", "decline" or "3ds"
    code: str = ""
    decline_code: str = ""
    message: str = ""
    funding: str = "credit"


TEST_METHODS: dict[str, TestCard] = {
    "pm_card_visa": TestCard("visa", "4242"),
    "pm_card_mastercard": TestCard("mastercard", "4444"),
    "pm_card_visa_debit": TestCard("visa", "5556", funding="debit"),
    "pm_card_chargeDeclined": TestCard(
        "visa", "0002", "decline", "card_declined", "generic_decline", "Your card was declined."
    ),
    "pm_card_chargeDeclinedInsufficientFunds": TestCard(
        "visa",
        "9995",
        "decline",
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_chargeDeclinedExpiredCard": TestCard(
        "visa", "0069", "decline", "expired_card", "expired_card", "Your card has expired."
    ),
    "pm_card_chargeDeclinedIncorrectCvc": TestCard(
        "visa",
        "0127",
        "decline",
        "incorrect_cvc",
        "incorrect_cvc",
        "Your card's security code is incorrect.",
    ),
    "pm_card_chargeDeclinedLostCard": TestCard(
        "visa", "9987", "decline", "card_declined", "lost_card", "Your card was declined."
    ),
    "pm_card_chargeDeclinedStolenCard": TestCard(
        "visa", "9979", "decline", "card_declined", "stolen_card", "Your card was declined."
    ),
    "pm_card_chargeDeclinedProcessingError": TestCard(
        "visa",
        "0119",
        "decline",
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    "pm_card_threeDSecure2Required": TestCard("visa", "3220", "3ds"),
}


def decode_form(text: str) -> dict[str, Any]:
    """Stripe's form encoding back to nested data: ``a[b]=1&c[0]=x`` -> ``{a: {b: 1}, c: [x]}``.

    Values stay strings (``"true"``, ``"2000"``), as a server sees them.
    """
    root: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        if not parts:
            continue
        target = root
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value

    def listify(value: Any) -> Any:
        if isinstance(value, dict):
            value = {k: listify(v) for k, v in value.items()}
            if value and all(k.isdigit() for k in value):
                return [value[k] for k in sorted(value, key=int)]
        return value

    return listify(root)


class StripeAPIError(Exception):
    """Raised inside the fake to answer with Stripe's error body."""

    def __init__(
        self, status: int, type: str, message: str, *, _validation: bool = False, **fields: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type, "message": message, **fields}}
        #: Errors found before any work began are not saved under the idempotency key.
        self.validation = _validation


def _invalid(message: str, *, code: str = "", param: str = "", status: int = 400) -> StripeAPIError:
    fields: dict[str, Any] = {}
    if code:
        fields["code"] = code
    if param:
        fields["param"] = param
    return StripeAPIError(status, "invalid_request_error", message, **fields)


def _missing(kind: str, ident: str, param: str = "") -> StripeAPIError:
    return _invalid(f"No such {kind}: '{ident}'", code="resource_missing", param=param, status=404)


@dataclass
class LoggedRequest:
    method: str
    path: str
    params: dict[str, Any]
    headers: dict[str, str]
    idempotency_key: str
    body: str
    status: int | None = None
    fault: str | None = None
    replayed: bool = False


@dataclass
class Movement:
    """Money the fake moved: a charge, a later capture, or a refund."""

    kind: str  # "charge" (captured at once), "authorization", "capture" or "refund"
    object_id: str
    intent_id: str
    payment_id: str
    amount: int
    currency: str


@dataclass
class _Saved:
    fingerprint: tuple[Any, ...]
    in_flight: bool = True
    status: int = 0
    body: Any = None


@dataclass
class _Fault:
    kind: str | None
    match: Callable[[str, str], bool] = field(default=lambda method, path: True)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _int(value: Any, param: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise StripeAPIError(
            400,
            "invalid_request_error",
            f"Invalid integer: {value}",
            code="parameter_invalid_integer",
            param=param,
            _validation=True,
        ) from None
    return number


def _required(params: dict[str, Any], name: str) -> Any:
    if params.get(name) in (None, ""):
        raise StripeAPIError(
            400,
            "invalid_request_error",
            f"Missing required param: {name}.",
            code="parameter_missing",
            param=name,
            _validation=True,
        )
    return params[name]


def _true(value: Any) -> bool:
    return str(value).lower() == "true"


class FakeStripe:
    """The fake's state and behaviour; ``start()`` serves it on ``self.url``."""

    def __init__(self, *, secret_key: str = SECRET_KEY, seed: int = 0) -> None:
        self.secret_key = secret_key
        self.lock = threading.RLock()
        self.intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.payment_methods: dict[str, dict[str, Any]] = {}
        self.disputes: dict[str, dict[str, Any]] = {}
        self.movements: list[Movement] = []
        self.requests: list[LoggedRequest] = []
        self._idempotency: dict[str, _Saved] = {}
        self._authenticated: set[str] = set()
        # behaviour knobs
        self.refund_status = "succeeded"  # what new refunds start as ("pending" to test async)
        self.hang_seconds = 2.0  # how long a "timeout" fault holds the answer back
        self.fault_rate = 0.0
        self.fault_kinds: tuple[str, ...] = ("500", "429", "reset")
        self._random = random.Random(seed)
        self._scripted: deque[_Fault] = deque()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- serving ---------------------------------------------------------------------------

    def start(self) -> FakeStripe:
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None, "call start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- faults ----------------------------------------------------------------------------

    def fail_next(self, *kinds: str | None, method: str = "", path: str = "") -> None:
        """Script faults for the next matching requests, in order (``None``: no fault).

        ``path`` matches as a prefix; ``method`` exactly ("POST"). Unmatched requests pass.
        """
        for kind in kinds:
            if kind is not None and kind not in FAULTS:
                raise ValueError(f"unknown fault {kind!r}; use one of {FAULTS}")

            def match(m: str, p: str) -> bool:
                return (not method or m == method) and p.startswith(path)

            self._scripted.append(_Fault(kind, match))

    def _take_fault(self, method: str, path: str) -> str | None:
        with self.lock:
            for fault in list(self._scripted):
                if fault.match(method, path):
                    self._scripted.remove(fault)
                    return fault.kind
            if self.fault_rate and self._random.random() < self.fault_rate:
                return self._random.choice(self.fault_kinds)
        return None

    # -- the books ---------------------------------------------------------------------------

    def posts(self, path: str = "") -> list[LoggedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.startswith(path)]

    def movements_for(self, payment_id: str, kind: str | None = None) -> list[Movement]:
        return [
            m
            for m in self.movements
            if m.payment_id == payment_id and (kind is None or m.kind == kind)
        ]

    def charged(self, payment_id: str) -> int:
        """Minor units captured for paydesk's ``payment_id`` (all its intents)."""
        return sum(
            m.amount for m in self.movements_for(payment_id) if m.kind in ("charge", "capture")
        )

    def refunded(self, payment_id: str) -> int:
        return sum(m.amount for m in self.movements_for(payment_id, "refund"))

    def intent(self, intent_id: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.intents[intent_id])

    def intents_for(self, payment_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                copy.deepcopy(i)
                for i in self.intents.values()
                if i["metadata"].get("paydesk_payment_id") == payment_id
            ]

    # -- the customer's side (what Stripe.js would do) --------------------------------------

    def complete_3ds(self, intent_id: str, *, passed: bool = True) -> dict[str, Any]:
        """The customer finishes (or fails) 3-D Secure; Stripe then finalizes the intent."""
        with self.lock:
            intent = self.intents[intent_id]
            assert intent["status"] == "requires_action", intent["status"]
            intent["next_action"] = None
            if passed:
                self._authenticated.add(intent_id)
                self._succeed(intent)
            else:
                intent["status"] = "requires_payment_method"
                intent["last_payment_error"] = {
                    "type": "invalid_request_error",
                    "code": "payment_intent_authentication_failure",
                    "message": "The provided PaymentMethod has failed authentication.",
                }
            return copy.deepcopy(intent)

    def authenticate(self, intent_id: str) -> None:
        """Mark 3-D Secure as passed, leaving the intent for a server-side ``/confirm``.

        As with ``confirmation_method=manual``: the intent waits in ``requires_confirmation``.
        """
        with self.lock:
            intent = self.intents[intent_id]
            assert intent["status"] == "requires_action", intent["status"]
            self._authenticated.add(intent_id)
            intent["status"] = "requires_confirmation"
            intent["next_action"] = None

    def client_confirm(self, intent_id: str, payment_method: str) -> dict[str, Any]:
        """Stripe.js ``confirmCardPayment(client_secret, {payment_method})`` in the browser."""
        with self.lock:
            intent = self.intents[intent_id]
            # The browser shows a decline; the intent keeps it as last_payment_error.
            with contextlib.suppress(StripeAPIError):
                self._confirm(intent, payment_method, return_url="")
            return copy.deepcopy(intent)

    def set_status(self, intent_id: str, status: str) -> dict[str, Any]:
        """Force an intent's status (e.g. ``processing`` for a bank debit)."""
        with self.lock:
            self.intents[intent_id]["status"] = status
            return copy.deepcopy(self.intents[intent_id])

    def settle_refund(
        self, refund_id: str, status: str = "succeeded", failure_reason: str = ""
    ) -> dict[str, Any]:
        with self.lock:
            refund = self.refunds[refund_id]
            refund["status"] = status
            if failure_reason:
                refund["failure_reason"] = failure_reason
            if status in ("failed", "canceled"):
                self.movements = [
                    m
                    for m in self.movements
                    if not (m.kind == "refund" and m.object_id == refund_id)
                ]
            return copy.deepcopy(refund)

    def refund_in_dashboard(self, intent_id: str, amount: int | None = None) -> dict[str, Any]:
        """A refund made in the Stripe Dashboard: no paydesk metadata, no idempotency key."""
        with self.lock:
            params: dict[str, Any] = {"payment_intent": intent_id}
            if amount is not None:
                params["amount"] = str(amount)
            return self._create_refund(params)

    def open_dispute(self, intent_id: str, *, reason: str = "fraudulent") -> dict[str, Any]:
        with self.lock:
            intent = self.intents[intent_id]
            dispute = {
                "id": _new_id("dp"),
                "object": "dispute",
                "amount": intent["amount_received"],
                "currency": intent["currency"],
                "charge": intent["latest_charge"],
                "payment_intent": intent["id"],
                "reason": reason,
                "status": "needs_response",
                "created": int(time.time()),
                "livemode": False,
                "metadata": {},
                "balance_transactions": [],
                "evidence": {},
                "evidence_details": {},
                "is_charge_refundable": False,
            }
            self.disputes[dispute["id"]] = dispute
            return copy.deepcopy(dispute)

    def close_dispute(self, dispute_id: str, status: str = "won") -> dict[str, Any]:
        with self.lock:
            self.disputes[dispute_id]["status"] = status
            return copy.deepcopy(self.disputes[dispute_id])

    def event(self, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        """A Stripe Event envelope around ``obj`` (the shape of the spec's ``event``)."""
        return {
            "id": _new_id("evt"),
            "object": "event",
            "api_version": "2023-08-16",
            "created": int(time.time()),
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }

    # -- request handling ------------------------------------------------------------------

    def handle(self, handler: _Handler, method: str) -> None:
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode("utf-8") if length else ""
        params = decode_form(url.query if method == "GET" else body)
        key = handler.headers.get("Idempotency-Key", "")
        logged = LoggedRequest(
            method=method,
            path=url.path,
            params=params,
            headers=dict(handler.headers.items()),
            idempotency_key=key,
            body=body,
        )
        with self.lock:
            self.requests.append(logged)
        fault = self._take_fault(method, url.path)
        logged.fault = fault
        if fault == "reset":
            return _reset(handler)
        if fault == "500":
            logged.status = 500
            return _respond(
                handler, 500, {"error": {"type": "api_error", "message": "Internal error (fake)."}}
            )
        if fault == "429":
            logged.status = 429
            return _respond(
                handler,
                429,
                {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "rate_limit",
                        "message": "Too many requests hit the API too quickly (fake).",
                    }
                },
                {"Stripe-Should-Retry": "true"},
            )
        if handler.headers.get("Authorization", "") != f"Bearer {self.secret_key}":
            # Stripe answers a bad key with 401 and an invalid_request_error body (the 2023
            # spec's error types have no "authentication_error"); the SDK maps 401 itself.
            logged.status = 401
            shown = handler.headers.get("Authorization", "").removeprefix("Bearer ")
            return _respond(
                handler,
                401,
                {
                    "error": {
                        "type": "invalid_request_error",
                        "message": f"Invalid API Key provided: {shown[:8]}****{shown[-4:]}",
                    }
                },
            )
        status, payload, headers = self._execute(method, url.path, params, key, body)
        logged.status = status
        logged.replayed = headers.get("Idempotent-Replayed") == "true"
        if fault == "reset_after":
            return _reset(handler)
        if fault == "timeout":
            time.sleep(self.hang_seconds)
        with contextlib.suppress(OSError):  # the client gave up waiting (a "timeout" fault)
            _respond(handler, status, payload, headers)

    def _execute(
        self, method: str, path: str, params: dict[str, Any], key: str, body: str
    ) -> tuple[int, Any, dict[str, str]]:
        if method != "POST" or not key:
            return (*self._dispatch(method, path, params), {})
        fingerprint = (path, tuple(sorted(parse_qsl(body, keep_blank_values=True))))
        with self.lock:
            saved = self._idempotency.get(key)
            if saved is not None:
                if saved.fingerprint != fingerprint:
                    return (
                        400,
                        {
                            "error": {
                                "type": "idempotency_error",
                                "message": (
                                    "Keys for idempotent requests can only be used with the same "
                                    f"parameters they were first used with. Try using a key other "
                                    f"than '{key}' if you meant to execute a different request."
                                ),
                            }
                        },
                        {},
                    )
                if saved.in_flight:
                    return (
                        409,
                        {
                            "error": {
                                "type": "idempotency_error",
                                "message": "There is currently another in-progress request "
                                "using this Idempotent Key (fake).",
                            }
                        },
                        {},
                    )
                return saved.status, copy.deepcopy(saved.body), {"Idempotent-Replayed": "true"}
            saved = self._idempotency[key] = _Saved(fingerprint)
        try:
            status, payload = self._dispatch(method, path, params)
        except _Unsaved as exc:
            with self.lock:
                del self._idempotency[key]
            return exc.status, exc.body, {}
        with self.lock:
            saved.status, saved.body, saved.in_flight = status, copy.deepcopy(payload), False
        return status, payload, {}

    def _dispatch(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, Any]:
        for route_method, pattern, action in self._routes():
            if route_method != method:
                continue
            match = re.fullmatch(pattern, path)
            if match is None:
                continue
            try:
                with self.lock:
                    return 200, action(params, *match.groups())
            except StripeAPIError as exc:
                if exc.validation:
                    raise _Unsaved(exc.status, exc.body) from exc
                return exc.status, exc.body
        return 404, {
            "error": {
                "type": "invalid_request_error",
                "message": f"Unrecognized request URL ({method}: {path}).",
            }
        }

    def _routes(self) -> Iterable[tuple[str, str, Callable[..., Any]]]:
        ident = r"([A-Za-z0-9_]+)"
        return (
            ("POST", r"/v1/payment_intents", self._create_intent),
            ("GET", r"/v1/payment_intents/search", self._search_intents),
            ("GET", rf"/v1/payment_intents/{ident}", self._get_intent),
            ("POST", rf"/v1/payment_intents/{ident}/confirm", self._confirm_intent),
            ("POST", rf"/v1/payment_intents/{ident}/capture", self._capture_intent),
            ("POST", rf"/v1/payment_intents/{ident}/cancel", self._cancel_intent),
            ("POST", r"/v1/refunds", self._create_refund),
            ("GET", r"/v1/refunds", self._list_refunds),
            ("GET", rf"/v1/refunds/{ident}", self._get_refund),
            ("GET", rf"/v1/charges/{ident}", self._get_charge),
            ("POST", r"/v1/customers", self._create_customer),
            ("GET", rf"/v1/customers/{ident}", self._get_customer),
            ("GET", rf"/v1/payment_methods/{ident}", self._get_payment_method),
            ("POST", rf"/v1/payment_methods/{ident}/attach", self._attach),
            ("POST", rf"/v1/payment_methods/{ident}/detach", self._detach),
            ("GET", r"/v1/balance", self._balance),
        )

    # -- PaymentIntents --------------------------------------------------------------------

    def _intent(self, intent_id: str) -> dict[str, Any]:
        intent = self.intents.get(intent_id)
        if intent is None:
            raise _missing("payment_intent", intent_id, "intent")
        return intent

    def _create_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        amount = _int(_required(params, "amount"), "amount")
        currency = str(_required(params, "currency"))
        if amount < 1:
            raise StripeAPIError(
                400,
                "invalid_request_error",
                "This value must be greater than or equal to 1.",
                code="parameter_invalid_integer",
                param="amount",
                _validation=True,
            )
        if currency != currency.lower() or len(currency) != 3:
            raise _invalid(f"Invalid currency: {currency}", code="parameter_invalid_string")
        capture_method = params.get("capture_method", "automatic_async")
        if capture_method not in ("automatic", "automatic_async", "manual"):
            raise _invalid("Invalid capture_method", param="capture_method")
        customer = params.get("customer")
        if customer and customer not in self.customers:
            raise _missing("customer", customer, "customer")
        intent_id = _new_id("pi")
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "currency": currency,
            "capture_method": capture_method,
            "confirmation_method": "automatic",
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
            "created": int(time.time()),
            "customer": customer,
            "description": params.get("description"),
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": dict(params.get("metadata") or {}),
            "next_action": None,
            "payment_method": None,
            "payment_method_types": ["card"],
            "status": "requires_payment_method",
            "cancellation_reason": None,
        }
        if params.get("payment_method"):
            self._payment_method(params["payment_method"], intent)  # validate before saving
        self.intents[intent_id] = intent
        if params.get("payment_method"):
            intent["payment_method"] = params["payment_method"]
            intent["status"] = "requires_confirmation"
        if _true(params.get("confirm")):
            self._confirm(intent, params.get("payment_method", ""), params.get("return_url", ""))
        return copy.deepcopy(intent)

    def _get_intent(self, params: dict[str, Any], intent_id: str) -> dict[str, Any]:
        return copy.deepcopy(self._intent(intent_id))

    def _search_intents(self, params: dict[str, Any]) -> dict[str, Any]:
        query = str(_required(params, "query"))
        clauses = re.findall(r"metadata\['([^']+)'\]:'((?:[^'\\]|\\.)*)'", query)
        if not clauses:
            raise _invalid(f"The fake only searches metadata: {query!r}", param="query")
        found = [
            copy.deepcopy(i)
            for i in self.intents.values()
            if all(
                i["metadata"].get(k) == v.replace("\\'", "'").replace("\\\\", "\\")
                for k, v in clauses
            )
        ]
        found.sort(key=lambda i: i["created"], reverse=True)
        limit = _int(params.get("limit", 10), "limit")
        return {
            "object": "search_result",
            "data": found[:limit],
            "has_more": len(found) > limit,
            "next_page": None,
            "url": "/v1/payment_intents/search",
        }

    def _payment_method(self, token: str, intent: dict[str, Any]) -> TestCard:
        if token in TEST_METHODS:
            return TEST_METHODS[token]
        stored = self.payment_methods.get(token)
        if stored is None:
            raise _invalid(
                f"No such PaymentMethod: '{token}'", code="resource_missing", param="payment_method"
            )
        if stored["customer"] and stored["customer"] != intent.get("customer"):
            # guess: Stripe's code for this case is not in the sources; the rule itself is.
            raise _invalid(
                "The provided PaymentMethod is attached to a Customer; pass that customer "
                "(customer=cus_...) to use it.",
                code="parameter_missing",
                param="customer",
            )
        return stored["_card"]

    def _confirm(self, intent: dict[str, Any], token: str, return_url: str) -> None:
        token = token or intent.get("payment_method") or ""
        if not token:
            raise _invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
            )
        card = self._payment_method(token, intent)
        intent["payment_method"] = token
        intent["last_payment_error"] = None
        if card.outcome == "decline":
            charge = self._charge(intent, status="failed", card=card)
            error = {
                "type": "card_error",
                "code": card.code,
                "decline_code": card.decline_code,
                "message": card.message,
                "charge": charge["id"],
                "doc_url": f"https://stripe.com/docs/error-codes/{card.code.replace('_', '-')}",
            }
            intent["status"] = "requires_payment_method"
            intent["last_payment_error"] = dict(error)
            raise StripeAPIError(
                402,
                "card_error",
                card.message,
                **{k: v for k, v in error.items() if k not in ("type", "message")},
                payment_intent=copy.deepcopy(intent),
            )
        if card.outcome == "3ds" and intent["id"] not in self._authenticated:
            intent["status"] = "requires_action"
            if return_url:
                intent["next_action"] = {
                    "type": "redirect_to_url",
                    "redirect_to_url": {
                        "url": f"{self.url}/3ds/{intent['id']}",
                        "return_url": return_url,
                    },
                }
            else:
                intent["next_action"] = {
                    "type": "use_stripe_sdk",
                    "use_stripe_sdk": {"type": "three_d_secure_redirect", "source": "src_fake"},
                }
            return
        self._succeed(intent, card)

    def _succeed(self, intent: dict[str, Any], card: TestCard | None = None) -> None:
        card = card or self._payment_method(intent["payment_method"], intent)
        charge = self._charge(intent, status="succeeded", card=card)
        payment_id = intent["metadata"].get("paydesk_payment_id", "")
        intent["next_action"] = None
        if intent["capture_method"] == "manual":
            intent["status"] = "requires_capture"
            intent["amount_capturable"] = intent["amount"]
            kind = "authorization"
        else:
            intent["status"] = "succeeded"
            intent["amount_received"] = intent["amount"]
            charge["captured"] = True
            charge["amount_captured"] = intent["amount"]
            kind = "charge"
        self.movements.append(
            Movement(
                kind, charge["id"], intent["id"], payment_id, intent["amount"], intent["currency"]
            )
        )

    def _charge(self, intent: dict[str, Any], *, status: str, card: TestCard) -> dict[str, Any]:
        charge = {
            "id": _new_id("ch"),
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": 0,
            "amount_refunded": 0,
            "captured": False,
            "currency": intent["currency"],
            "created": int(time.time()),
            "disputed": False,
            "livemode": False,
            "metadata": {},
            "paid": status == "succeeded",
            "payment_intent": intent["id"],
            "payment_method": intent["payment_method"],
            "payment_method_details": {
                "type": "card",
                "card": {"brand": card.brand, "last4": card.last4, "funding": card.funding},
            },
            "refunded": False,
            "status": status,
            "billing_details": {},
        }
        self.charges[charge["id"]] = charge
        intent["latest_charge"] = charge["id"]
        return charge

    def _confirm_intent(self, params: dict[str, Any], intent_id: str) -> dict[str, Any]:
        intent = self._intent(intent_id)
        status = intent["status"]
        if status == "requires_action":
            return copy.deepcopy(intent)  # still waiting for the customer
        if status not in ("requires_payment_method", "requires_confirmation"):
            raise _invalid(
                f"This PaymentIntent's status is {status}; it cannot be confirmed.",
                code="payment_intent_unexpected_state",
            )
        if params.get("payment_method") and params["payment_method"] != intent["payment_method"]:
            self._authenticated.discard(intent_id)  # a new card needs its own 3-D Secure
        self._confirm(intent, params.get("payment_method", ""), params.get("return_url", ""))
        return copy.deepcopy(intent)

    def _capture_intent(self, params: dict[str, Any], intent_id: str) -> dict[str, Any]:
        intent = self._intent(intent_id)
        if intent["status"] != "requires_capture":
            raise _invalid(
                f"This PaymentIntent could not be captured because it has a status of "
                f"{intent['status']}. Only a PaymentIntent with one of the following statuses "
                "may be captured: requires_capture.",
                code="payment_intent_unexpected_state",
            )
        amount = _int(params.get("amount_to_capture", intent["amount_capturable"]), "amount")
        if amount > intent["amount_capturable"]:
            raise _invalid(
                "The amount to capture is greater than the capturable amount.",
                code="amount_too_large",
                param="amount_to_capture",
            )
        intent["status"] = "succeeded"
        intent["amount_received"] = amount
        intent["amount_capturable"] = 0
        charge = self.charges[intent["latest_charge"]]
        charge["captured"], charge["amount_captured"] = True, amount
        self.movements.append(
            Movement(
                "capture",
                charge["id"],
                intent_id,
                intent["metadata"].get("paydesk_payment_id", ""),
                amount,
                intent["currency"],
            )
        )
        return copy.deepcopy(intent)

    def _cancel_intent(self, params: dict[str, Any], intent_id: str) -> dict[str, Any]:
        intent = self._intent(intent_id)
        cancellable = (
            "requires_payment_method",
            "requires_capture",
            "requires_confirmation",
            "requires_action",
        )
        if intent["status"] not in cancellable:
            raise _invalid(
                f"You cannot cancel this PaymentIntent because it has a status of "
                f"{intent['status']}.",
                code="payment_intent_unexpected_state",
            )
        intent["status"] = "canceled"
        intent["amount_capturable"] = 0
        intent["cancellation_reason"] = params.get("cancellation_reason")
        return copy.deepcopy(intent)

    # -- refunds ---------------------------------------------------------------------------

    def _create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("payment_intent"):
            intent = self._intent(params["payment_intent"])
        elif params.get("charge"):
            charge = self.charges.get(params["charge"])
            if charge is None:
                raise _missing("charge", params["charge"], "charge")
            intent = self.intents[charge["payment_intent"]]
        else:
            raise StripeAPIError(
                400,
                "invalid_request_error",
                "One of the following params should be provided for this request: "
                "payment_intent or charge.",
                code="parameter_missing",
                _validation=True,
            )
        if intent["status"] != "succeeded":
            raise _invalid(
                f"This PaymentIntent ({intent['id']}) does not have a successful charge to refund.",
                code="charge_not_refundable",  # guess
            )
        charge = self.charges[intent["latest_charge"]]
        remaining = intent["amount_received"] - charge["amount_refunded"]
        if remaining <= 0:
            raise _invalid(
                f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
            )
        amount = _int(params.get("amount", remaining), "amount")
        if amount > remaining:
            raise _invalid(
                f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                f"({remaining}).",
                code="amount_too_large",  # guess
                param="amount",
            )
        reason = params.get("reason")
        if reason and reason not in ("duplicate", "fraudulent", "requested_by_customer"):
            raise _invalid(f"Invalid reason: {reason}", param="reason")
        refund = {
            "id": _new_id("re"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": None,
            "charge": charge["id"],
            "created": int(time.time()),
            "currency": intent["currency"],
            "metadata": dict(params.get("metadata") or {}),
            "payment_intent": intent["id"],
            "reason": reason,
            "status": self.refund_status,
        }
        self.refunds[refund["id"]] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
        self.movements.append(
            Movement(
                "refund",
                refund["id"],
                intent["id"],
                intent["metadata"].get("paydesk_payment_id", ""),
                amount,
                intent["currency"],
            )
        )
        return copy.deepcopy(refund)

    def _get_refund(self, params: dict[str, Any], refund_id: str) -> dict[str, Any]:
        if refund_id not in self.refunds:
            raise _missing("refund", refund_id, "id")
        return copy.deepcopy(self.refunds[refund_id])

    def _list_refunds(self, params: dict[str, Any]) -> dict[str, Any]:
        """``GET /v1/refunds``: newest first, ``limit`` 1-100 (default 10), and cursor
        pagination by ``starting_after`` / ``ending_before`` (object ids) with ``has_more``,
        as the 2023-08-16 spec documents. (An unknown cursor id: a 404 ``resource_missing``
        naming the parameter, a guess.)"""
        limit = _int(params.get("limit", 10), "limit")
        if not 1 <= limit <= 100:
            raise _invalid(
                "This value must be greater than or equal to 1 and less than or equal to 100.",
                code="parameter_invalid_integer",  # guess
                param="limit",
            )
        # The dict keeps creation order; ``created`` (seconds) alone would tie.
        found = [
            r
            for r in reversed(self.refunds.values())
            if (not params.get("charge") or r["charge"] == params["charge"])
            and (
                not params.get("payment_intent") or r["payment_intent"] == params["payment_intent"]
            )
        ]
        ids = [r["id"] for r in found]
        if params.get("starting_after"):
            cursor = params["starting_after"]
            if cursor not in self.refunds:
                raise _missing("refund", cursor, "starting_after")
            rest = found[ids.index(cursor) + 1 :] if cursor in ids else []
            page, has_more = rest[:limit], len(rest) > limit
        elif params.get("ending_before"):
            cursor = params["ending_before"]
            if cursor not in self.refunds:
                raise _missing("refund", cursor, "ending_before")
            before = found[: ids.index(cursor)] if cursor in ids else []
            page, has_more = before[-limit:], len(before) > limit
        else:
            page, has_more = found[:limit], len(found) > limit
        return {
            "object": "list",
            "data": [copy.deepcopy(r) for r in page],
            "has_more": has_more,
            "url": "/v1/refunds",
        }

    def _get_charge(self, params: dict[str, Any], charge_id: str) -> dict[str, Any]:
        if charge_id not in self.charges:
            raise _missing("charge", charge_id, "id")
        return copy.deepcopy(self.charges[charge_id])

    def charge_with_refunds(self, charge_id: str) -> dict[str, Any]:
        """A charge as older API versions put it in ``charge.refunded`` events."""
        with self.lock:
            charge = copy.deepcopy(self.charges[charge_id])
            refunds = [copy.deepcopy(r) for r in self.refunds.values() if r["charge"] == charge_id]
        charge["refunds"] = {"object": "list", "data": refunds, "has_more": False}
        return charge

    # -- customers and payment methods -----------------------------------------------------

    def _create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = {
            "id": _new_id("cus"),
            "object": "customer",
            "created": int(time.time()),
            "email": params.get("email"),
            "name": params.get("name"),
            "livemode": False,
            "metadata": dict(params.get("metadata") or {}),
        }
        self.customers[customer["id"]] = customer
        return copy.deepcopy(customer)

    def _get_customer(self, params: dict[str, Any], customer_id: str) -> dict[str, Any]:
        if customer_id not in self.customers:
            raise _missing("customer", customer_id, "id")
        return copy.deepcopy(self.customers[customer_id])

    @staticmethod
    def _public(method: dict[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in method.items() if not k.startswith("_")}

    def _method_object(self, token: str, card: TestCard) -> dict[str, Any]:
        return {
            "id": token,
            "object": "payment_method",
            "type": "card",
            "card": {
                "brand": card.brand,
                "last4": card.last4,
                "exp_month": 12,
                "exp_year": 2034,
                "funding": card.funding,
                "country": "US",
                # Stripe's fingerprint identifies the card number; the fake derives one from it.
                "fingerprint": f"fp{card.brand[:2]}{card.last4}",
            },
            "billing_details": {},
            "customer": None,
            "created": int(time.time()),
            "livemode": False,
            "metadata": {},
            "_card": card,
        }

    def _get_payment_method(self, params: dict[str, Any], token: str) -> dict[str, Any]:
        if token in self.payment_methods:
            return self._public(self.payment_methods[token])
        if token in TEST_METHODS:
            return self._public(self._method_object(token, TEST_METHODS[token]))
        raise _missing("payment_method", token, "payment_method")

    def _attach(self, params: dict[str, Any], token: str) -> dict[str, Any]:
        customer = str(_required(params, "customer"))
        if customer not in self.customers:
            raise _missing("customer", customer, "customer")
        if token in TEST_METHODS:
            # A test token stands for a card number: attaching it makes a new PaymentMethod.
            method = self._method_object(_new_id("pm"), TEST_METHODS[token])
            self.payment_methods[method["id"]] = method
        elif token in self.payment_methods:
            method = self.payment_methods[token]
            if method["customer"] and method["customer"] != customer:
                raise _invalid(
                    "The payment method you provided has already been attached to a customer.",
                    code="payment_method_unexpected_state",  # guess
                )
        else:
            raise _missing("payment_method", token, "payment_method")
        method["customer"] = customer
        return self._public(method)

    def _detach(self, params: dict[str, Any], token: str) -> dict[str, Any]:
        method = self.payment_methods.get(token)
        if method is None or not method["customer"]:
            raise _invalid(
                "The payment method you provided is not attached to a customer so detachment "
                "is impossible.",
                code="payment_method_unexpected_state",  # guess
            )
        method["customer"] = None
        return self._public(method)

    def _balance(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "object": "balance",
            "available": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}],
            "pending": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}],
            "livemode": False,
        }


class _Unsaved(Exception):
    """A validation error: answered, but not saved under the idempotency key."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body


class _Handler(BaseHTTPRequestHandler):
    fake: FakeStripe
    protocol_version = "HTTP/1.0"
    server_version = "FakeStripe/1.0"

    def do_GET(self) -> None:
        self.fake.handle(self, "GET")

    def do_POST(self) -> None:
        self.fake.handle(self, "POST")

    def do_DELETE(self) -> None:
        self.fake.handle(self, "DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _respond(
    handler: BaseHTTPRequestHandler,
    status: int,
    payload: Any,
    headers: dict[str, str] | None = None,
) -> None:
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.send_header("Request-Id", f"req_{secrets.token_hex(7)}")
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def _reset(handler: BaseHTTPRequestHandler) -> None:
    """Drop the connection with a TCP reset and no answer at all."""
    handler.close_connection = True
    sock = handler.connection
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


# -- helpers for paydesk's tests -------------------------------------------------------------

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "stripe"
WEBHOOK_SECRET = "whsec_paydesk_fake_endpoint_secret"


def paydesk_settings(fake: FakeStripe, alias: str = "stripe", **options: Any) -> dict[str, Any]:
    """A ``PAYDESK`` setting with a Stripe provider pointed at ``fake`` (SDK retries off)."""
    return {
        "DEFAULT_PROVIDER": alias,
        "PROVIDERS": {
            "sandbox": {
                "BACKEND": "paydesk.providers.sandbox.SandboxProvider",
                "OPTIONS": {"WEBHOOK_DELIVERY": "off"},
            },
            alias: {
                "BACKEND": "stripe",
                "OPTIONS": {
                    "SECRET_KEY": fake.secret_key,
                    "PUBLISHABLE_KEY": PUBLISHABLE_KEY,
                    "WEBHOOK_SECRET": WEBHOOK_SECRET,
                    "BASE_ADDRESSES": {"api": fake.url},
                    "MAX_NETWORK_RETRIES": 0,
                    "TIMEOUT": 5,
                    **options,
                },
            },
        },
        "WEBHOOKS": {"PROCESS": "inline"},
        "SECURITY": {"ENABLE_RATE_LIMITING": False},
    }


def fixture(name: str) -> dict[str, Any]:
    """``tests/fixtures/stripe/<name>.json`` (sample objects in the 2023-08-16 API's shapes)."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def fixture_event(name: str, *, event_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """The fixture event ``name`` with ``fields`` laid over its ``data.object``.

    ``metadata`` is merged key by key; every other field is replaced.
    """
    event = fixture(name)
    obj = event["data"]["object"]
    for key, value in fields.items():
        if key == "metadata" and isinstance(obj.get("metadata"), dict):
            obj["metadata"] = {**obj["metadata"], **value}
        else:
            obj[key] = value
    if event_id is not None:
        event["id"] = event_id
    return event


def signed(
    event: dict[str, Any], *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers Stripe would POST for ``event`` (signed by paydesk's verifier)."""
    from paydesk.security.signatures import StripeSignatureVerifier

    body = json.dumps(event, separators=(",", ":")).encode()
    header = StripeSignatureVerifier([secret]).sign(body, timestamp=timestamp)
    return body, {"Content-Type": "application/json", "Stripe-Signature": header}
