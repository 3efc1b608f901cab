"""The KICC EasyPay (EP9) adapter: Korean card and bank payments through KICC's window.

This module owns one decision: the order of KICC calls behind each paydesk operation, and
what paydesk does when KICC's own rules say a payment must be undone. Each operation is a
generator yielding ``Call`` objects; the shared drivers (``.._http``) run the same generator
over an ``httpx.Client`` or an ``httpx.AsyncClient``, and a transport failure is thrown
*into* it, because KICC's approval rules are about exactly that case.

=======================  ======================================================================
create_payment           ``POST /api/ep9/trades/webpay`` (register) -> ``authPageUrl`` redirect
confirm_payment          the return POST's ``authorizationId`` -> ``POST /api/ep9/trades/
                         approval`` (``shopTransactionId`` = paydesk's idempotency key)
get_payment_status       ``POST /api/trades/retrieveTransaction`` (today, then yesterday)
create_refund            ``POST /api/trades/revise``: full cancel (40) for the whole amount,
                         partial cancel (32) otherwise; ``msgAuthValue`` signed
=======================  ======================================================================

KICC's rules, applied here: an approval whose amount differs from the payment is cancelled
at once (full revise) and the payment fails with ``amount_mismatch``; an approval that
times out (or answers 5xx) is followed by a status query, and an approval found there is
cancelled too, the payment failing with ``approval_timeout``.

Tokens (``payment_method_token``): ``""`` opens KICC's window with ``PAY_METHOD_TYPE_CODE``;
``"paymethod:<code>"`` opens it for one pay method (``"11"``: card); and
``"authorization:<authorizationId>"`` registers and approves at once with an
``authorizationId`` already obtained for the order. That last form exists for tests against
a fake KICC (whose ``fake-approve`` id stands for "the customer completed the window");
against real KICC an ``authorizationId`` belongs to one registered order, so use the window.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Generator, Mapping
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from django.urls import reverse

from ...conf import paydesk_settings
from ...exceptions import (
    ConfigurationError,
    MoneyError,
    ProviderError,
    ProviderProcessingError,
    ProviderRequestError,
    ProviderUnavailable,
)
from ...money import KICC_RULES, Money
from ...types import (
    Capability,
    ConfirmRequest,
    NextAction,
    PaymentRequest,
    PaymentResult,
    ProviderFailure,
    ProviderStatus,
    RefundRequest,
    RefundResult,
    StatusRequest,
)
from .._http import HttpTransport
from ..base import PaymentProvider
from . import wire
from .wire import Call, Reply

__all__ = ["EasyPayProvider"]

T = TypeVar("T")
Operation = Generator[Call, Reply, T]

_DEFAULTS: dict[str, Any] = {
    "MODE": "test",
    "REVISE_TYPE_FULL": "40",
    # KICC's simple-payment documentation and independent revise code use 32 for a partial
    # card cancel; one existing Django app used 41. 32 has KICC's own (sibling) page behind
    # it; the /api/trades/revise code table itself was not seen: configurable.
    "REVISE_TYPE_PARTIAL": "32",
    "PAY_METHOD_TYPE_CODE": "00",
    "DEVICE_TYPE_CODE": "pc",
    "CLIENT_TYPE_CODE": "00",
    "LANG_FLAG": "KOR",
    "TIMEOUT": 30,  # KICC: wait up to 30 s for an approval
    "APPROVAL_PATH": wire.APPROVAL_PATH,
    "VERIFY_APPROVAL_MAC": False,
    "SEND_REMAIN_AMOUNT": False,
    "GOODS_NAME": "",
}
_ATTEMPT = re.compile(r":attempt-(\d+):")
_MAX_ORDER_NO = 40


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


def _approval_key(key: str) -> str:
    """The approval's idempotency key for any key of the same attempt.

    paydesk's keys are ``paydesk:<payment>:attempt-<n>:<operation>``; the approval uses the
    confirm key, so the create key (token flow) and the status key (sync) find it.
    """
    if key.endswith(":create"):
        return key.removesuffix(":create") + ":confirm"
    return key


class _Transport(HttpTransport[Call, Reply]):
    """KICC's side of a call: a JSON ``POST``; no answer at all leaves the outcome unknown.

    The failure is ``ProviderUnavailable``, which the driver throws into the operation: the
    approval's rules (query the status, cancel what was approved) are about exactly that.
    """

    def __init__(self, *, alias: str, base_url: str, **clients: Any) -> None:
        super().__init__(**clients)
        self.alias = alias
        self.base_url = base_url

    def build(self, call: Call) -> httpx.Request:
        return httpx.Request(
            "POST",
            self.base_url + call.path,
            content=wire.dumps(call.body),
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Accept": "application/json",
                "User-Agent": "paydesk",
            },
        )

    def read(self, call: Call, response: httpx.Response) -> Reply:
        return Reply.read(response, wire.loads)

    def transport_error(self, call: Call, exc: httpx.HTTPError) -> ProviderUnavailable:
        return ProviderUnavailable(
            f"KICC did not answer {call.path} ({type(exc).__name__}); the outcome is unknown.",
            provider=self.alias,
            provider_code=type(exc).__name__,
        )


class EasyPayProvider(PaymentProvider):
    """KICC EasyPay: register, KICC's payment window, approval, revise (cancel)."""

    display_name = "EasyPay (KICC)"
    return_params = frozenset({"resCd", "resMsg", "authorizationId", "shopOrderNo"})
    icon = "credit-card"
    capabilities = frozenset(
        {
            Capability.REFUND,
            Capability.PARTIAL_REFUND,
            Capability.MULTIPLE_REFUNDS,
            Capability.SYNC,
            Capability.HOSTED_CHECKOUT,
        }
    )
    currency_rules = KICC_RULES
    supported_currencies = frozenset({"KRW"})
    required_options = ("MALL_ID", "SECRET_KEY")

    def __init__(
        self,
        *,
        alias: str,
        options: Mapping[str, Any] | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        super().__init__(alias=alias, options=options)
        mode = str(self._option("MODE")).strip().lower()
        if mode not in ("test", "production"):
            raise ConfigurationError(
                f"EasyPay OPTIONS['MODE'] = {mode!r}; use 'test' or 'production' (or set "
                "OPTIONS['BASE_URL'])."
            )
        self.mode = mode
        default = wire.PRODUCTION_BASE_URL if mode == "production" else wire.TEST_BASE_URL
        self.base_url = str(self.options.get("BASE_URL") or default).rstrip("/")
        self.revise_full = str(self._option("REVISE_TYPE_FULL"))
        self.revise_partial = str(self._option("REVISE_TYPE_PARTIAL"))
        self.timeout = float(self._option("TIMEOUT"))
        self._http = _Transport(
            alias=alias,
            base_url=self.base_url,
            timeout=self.timeout,
            client=http_client or self.options.get("HTTP_CLIENT"),
            async_client=async_http_client or self.options.get("ASYNC_HTTP_CLIENT"),
        )
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def _option(self, name: str) -> Any:
        value = self.options.get(name)
        return _DEFAULTS[name] if value is None else value

    @property
    def mall_id(self) -> str:
        return str(self.options.get("MALL_ID") or "")

    def configuration_problems(self) -> list[str]:
        problems = super().configuration_problems()
        if not (
            paydesk_settings.PUBLIC_BASE_URL
            or self.options.get("PUBLIC_BASE_URL")
            or self.options.get("RETURN_URL")
        ):
            problems.append(
                "PAYDESK['PUBLIC_BASE_URL'] is not set, so KICC gets no returnUrl to send the "
                "customer back to"
            )
        return problems

    # -- transport -----------------------------------------------------------------------

    def _async_client(self) -> httpx.AsyncClient:
        return self._http.async_client

    def _run(self, operation: Operation[T]) -> T:
        return self._http.run(operation)

    async def _arun(self, operation: Operation[T]) -> T:
        return await self._http.arun(operation)

    def _ok(self, reply: Reply, action: str) -> dict[str, Any]:
        """The JSON object KICC answered (whatever its ``resCd``), or the HTTP failure raised."""
        if reply.status >= 500 or reply.status == 429:
            raise ProviderUnavailable(
                f"KICC could not {action}: HTTP {reply.status}; retry later.",
                provider=self.alias,
                provider_code=str(reply.status),
            )
        if reply.status >= 400:
            raise ProviderRequestError(
                f"KICC refused to {action}: HTTP {reply.status} {reply.text[:200]}",
                provider=self.alias,
                provider_code=str(reply.status),
            )
        if not isinstance(reply.data, dict):
            raise ProviderUnavailable(
                f"KICC answered {action} with something that is not JSON; the outcome is unknown.",
                provider=self.alias,
                provider_code="invalid_json",
            )
        return reply.data

    # -- helpers -------------------------------------------------------------------------

    def _now(self) -> dt.datetime:
        return self._clock()

    def _won(self, money: Money) -> int:
        try:
            return KICC_RULES.to_minor_units(money)
        except MoneyError as exc:
            raise ProviderRequestError(
                f"KICC (EasyPay) takes whole Korean won only: {exc.message}",
                provider=self.alias,
                provider_code="currency_not_supported",
            ) from exc

    def _mac(self, *parts: object) -> str:
        return wire.msg_auth_value(str(self.options.get("SECRET_KEY") or ""), *parts)

    def _shop_order_no(self, payment_id: str, attempt: int) -> str:
        order = f"{payment_id}-{attempt}"
        if len(order) > _MAX_ORDER_NO:
            raise ProviderRequestError(
                f"KICC's shopOrderNo holds 40 characters; {order!r} is longer.",
                provider=self.alias,
                provider_code="shop_order_no_too_long",
            )
        return order

    def _return_url(self, payment_id: str) -> str:
        configured = self.options.get("RETURN_URL")
        if configured:
            return str(configured).replace("{payment_id}", payment_id)
        base = self.options.get("PUBLIC_BASE_URL") or paydesk_settings.PUBLIC_BASE_URL
        if not base:
            raise ProviderRequestError(
                "KICC needs an absolute returnUrl: set PAYDESK['PUBLIC_BASE_URL'] (or this "
                "provider's OPTIONS['PUBLIC_BASE_URL'] or ['RETURN_URL']), then retry the payment.",
                provider=self.alias,
                provider_code="paydesk_configuration",
            )
        return str(base).rstrip("/") + reverse("paydesk:easypay-return", args=[payment_id])

    def _failed(
        self,
        code: str,
        message: str,
        *,
        provider_code: str = "",
        ppid: str = "",
        raw: Mapping[str, Any] | None = None,
        signal_kwargs: Mapping[str, Any] | None = None,
    ) -> PaymentResult:
        return PaymentResult(
            status=ProviderStatus.FAILED,
            provider_payment_id=ppid,
            failure=ProviderFailure(code=code, message=message, provider_code=provider_code),
            raw=dict(raw or {}),
            signal_kwargs=dict(signal_kwargs or {}),
        )

    # -- register ------------------------------------------------------------------------

    def _plan(self, token: str) -> tuple[str, str]:
        token = token.strip()
        if not token:
            return "window", str(self._option("PAY_METHOD_TYPE_CODE"))
        kind, _, value = token.partition(":")
        if kind == "paymethod" and re.fullmatch(r"\d{2}", value):
            return "window", value
        if kind == "authorization" and value:
            return "authorization", value
        raise ProviderRequestError(
            f"{token!r} is not an EasyPay payment method: use '' (KICC's window), "
            "'paymethod:<2-digit code>' or 'authorization:<authorizationId>'.",
            provider=self.alias,
            provider_code="unknown_token",
        )

    def _register_body(self, request: PaymentRequest, order_no: str, pay_method: str) -> dict:
        customer = {
            k: v
            for k, v in {
                "customerName": request.customer.name[:20],
                "customerMail": request.customer.email,
                "customerContactNo": request.customer.phone,
            }.items()
            if v
        }
        goods = request.description or str(self._option("GOODS_NAME")) or f"Order {order_no}"
        return {
            "mallId": self.mall_id,
            "shopOrderNo": order_no,
            "amount": self._won(request.amount),
            "payMethodTypeCode": pay_method,
            "currency": wire.KRW,
            "returnUrl": self._return_url(request.payment_id),
            "deviceTypeCode": str(self._option("DEVICE_TYPE_CODE")),
            "clientTypeCode": str(self._option("CLIENT_TYPE_CODE")),
            "langFlag": str(self._option("LANG_FLAG")),
            "orderInfo": {"goodsName": goods[:50], "customerInfo": customer},
            "shopValueInfo": {"value1": request.payment_id},
        }

    def _create(self, request: PaymentRequest) -> Operation[PaymentResult]:
        self._won(request.amount)  # KRW, whole won: refused before any call
        kind, value = self._plan(request.payment_method_token)
        order_no = self._shop_order_no(request.payment_id, request.attempt)
        pay_method = value if kind == "window" else str(self._option("PAY_METHOD_TYPE_CODE"))
        reply = yield Call(wire.REGISTER_PATH, self._register_body(request, order_no, pay_method))
        data = self._ok(reply, "register the payment")
        if data.get("resCd") != wire.SUCCESS or not data.get("authPageUrl"):
            raise ProviderRequestError(
                f"KICC refused to register the payment: {data.get('resMsg')} "
                f"({data.get('resCd')}). Check MALL_ID, MODE and the amount.",
                provider=self.alias,
                provider_code=str(data.get("resCd") or ""),
            )
        if kind == "authorization":
            txid = wire.transaction_id(_approval_key(request.idempotency_key))
            return (yield from self._approve(request.amount, value, order_no, txid))
        return PaymentResult(
            status=ProviderStatus.REQUIRES_ACTION,
            next_action=NextAction(type="redirect", redirect_url=str(data["authPageUrl"])),
            raw={**data, "shopOrderNo": order_no},
        )

    # -- approve -------------------------------------------------------------------------

    def _approve(
        self, amount: Money, authorization_id: str, order_no: str, txid: str
    ) -> Operation[PaymentResult]:
        body = {
            "mallId": self.mall_id,
            "shopTransactionId": txid,
            "authorizationId": authorization_id,
            "shopOrderNo": order_no,
            "approvalReqDate": wire.kst_date(self._now()),
        }
        try:
            reply = yield Call(str(self._option("APPROVAL_PATH")), body)
            data = self._ok(reply, "approve the payment")
        except ProviderUnavailable:
            return (yield from self._after_timeout(amount, txid, order_no, authorization_id))
        if data.get("resCd") != wire.SUCCESS:
            return self._failed(
                "card_declined",
                f"KICC did not approve the payment: {data.get('resMsg') or 'declined'} "
                f"({data.get('resCd')}). Ask the customer to pay again or use another card.",
                provider_code=str(data.get("resCd") or ""),
                raw=data,
            )
        return (yield from self._settle(data, amount, order_no, txid, authorization_id))

    def _settle(
        self,
        data: dict[str, Any],
        amount: Money,
        order_no: str,
        txid: str,
        authorization_id: str,
    ) -> Operation[PaymentResult]:
        """Accept an approval, or cancel it at once when KICC's rules say so."""
        pg_cno = str(data.get("pgCno") or "")
        if not pg_cno:
            raise ProviderProcessingError(
                "KICC reported an approval without a pgCno; check the KICC back office.",
                provider=self.alias,
                provider_code=str(data.get("resCd") or ""),
            )
        approved = wire.won(data.get("amount"))
        expected = self._won(amount)
        problem = ""
        if approved != expected:
            problem, why = (
                "amount_mismatch",
                f"KICC approved {approved} KRW but the payment is {expected} KRW",
            )
        elif order_no and data.get("shopOrderNo") not in (None, "", order_no):
            problem, why = (
                "order_mismatch",
                f"KICC approved order {data.get('shopOrderNo')!r}, not {order_no!r}",
            )
        elif _as_bool(self._option("VERIFY_APPROVAL_MAC")) and data.get(
            "msgAuthValue"
        ) != self._mac(pg_cno, data.get("amount"), data.get("transactionDate")):
            problem, why = ("approval_mac_mismatch", "the approval's msgAuthValue does not verify")
        kwargs = {"pg_tid": pg_cno, "auth_id": authorization_id}
        if problem:
            cancelled, detail, cancel = yield from self._cancel_at_once(pg_cno, approved, txid, why)
            return self._failed(
                problem,
                f"{why}; {detail}. The customer can pay again.",
                provider_code=str(data.get("resCd") or ""),
                ppid=pg_cno,
                raw={**data, "cancel": cancel},
                signal_kwargs={
                    **kwargs,
                    "cancel_type": self.revise_full if cancelled else "",
                    "cancel_amount": Decimal(approved or 0) if cancelled else Decimal(0),
                },
            )
        money = Money(expected, "KRW")  # == approved, checked above
        info = data.get("paymentInfo")
        if isinstance(info, dict) and info.get("approvalNo"):
            kwargs["approval_no"] = str(info["approvalNo"])
        return PaymentResult(
            status=ProviderStatus.CAPTURED,
            provider_payment_id=pg_cno,
            amount_authorized=money,
            amount_captured=money,
            raw=data,
            signal_kwargs=kwargs,
        )

    def _cancel_at_once(
        self, pg_cno: str, amount: int | None, txid: str, why: str
    ) -> Operation[tuple[bool, str, dict[str, Any]]]:
        cancel_txid = wire.transaction_id(f"{txid}:cancel")
        body = self._revise_body(pg_cno, cancel_txid, self.revise_full, None, why[:100])
        try:
            reply = yield Call(wire.REVISE_PATH, body)
            data = self._ok(reply, "cancel the approval")
        except ProviderError as exc:
            return (
                False,
                (
                    f"paydesk could NOT cancel it ({exc.message}): cancel pgCno {pg_cno} in "
                    "the KICC back office now"
                ),
                {"error": exc.message},
            )
        if data.get("resCd") != wire.SUCCESS:
            return (
                False,
                (
                    f"KICC refused to cancel it ({data.get('resMsg')}, {data.get('resCd')}): "
                    f"cancel pgCno {pg_cno} in the KICC back office now"
                ),
                data,
            )
        return True, f"as KICC requires, the approval (pgCno {pg_cno}) was cancelled at once", data

    def _retrieve(self, txid: str) -> Operation[dict[str, Any] | None]:
        """The transaction whose ``shopTransactionId`` is ``txid`` (KICC keeps two days)."""
        today = self._now()
        for moment in (today, today - dt.timedelta(days=1)):
            reply = yield Call(
                wire.RETRIEVE_PATH,
                {
                    "mallId": self.mall_id,
                    "shopTransactionId": txid,
                    "transactionDate": wire.kst_date(moment),
                },
            )
            data = self._ok(reply, "query the transaction")
            if data.get("resCd") == wire.SUCCESS and data.get("pgCno"):
                return data
        return None

    def _after_timeout(
        self, amount: Money, txid: str, order_no: str, authorization_id: str
    ) -> Operation[PaymentResult]:
        try:
            found = yield from self._retrieve(txid)
        except ProviderError as exc:
            raise ProviderUnavailable(
                "KICC answered neither the approval nor the status query "
                f"({exc.message}); the outcome is unknown. Run sync_payment once KICC is "
                "reachable: an approval found then is checked and recorded.",
                provider=self.alias,
                provider_code="approval_timeout",
            ) from exc
        message = "KICC did not answer the approval in time"
        if found is None:
            return self._failed(
                "approval_timeout",
                f"{message} and has no record of it: nothing was charged. The customer can "
                "pay again.",
                provider_code="timeout",
            )
        pg_cno = str(found.get("pgCno"))
        approved = wire.won(found.get("amount"))
        cancelled, detail, cancel = yield from self._cancel_at_once(
            pg_cno, approved, txid, "approval timed out"
        )
        return self._failed(
            "approval_timeout",
            f"{message}; {detail}. The customer can pay again.",
            provider_code="timeout",
            ppid=pg_cno,
            raw={**found, "cancel": cancel},
            signal_kwargs={
                "pg_tid": pg_cno,
                "auth_id": authorization_id,
                "cancel_type": self.revise_full if cancelled else "",
                "cancel_amount": Decimal(approved or 0) if cancelled else Decimal(0),
            },
        )

    def _confirm(self, request: ConfirmRequest) -> Operation[PaymentResult]:
        params = request.params
        res_cd = str(params.get("resCd") or "")
        authorization_id = str(params.get("authorizationId") or "")
        order_no = str(params.get("shopOrderNo") or "")
        if res_cd and res_cd != wire.SUCCESS:
            return self._failed(
                "card_declined",
                f"The payment was not completed in KICC's window: "
                f"{params.get('resMsg') or 'cancelled'} ({res_cd}). The customer can pay again.",
                provider_code=res_cd,
                raw={k: str(v) for k, v in params.items()},
            )
        if not authorization_id:
            # A visit without KICC's fields (e.g. the page reloaded): nothing to confirm yet.
            return PaymentResult(status=ProviderStatus.NOT_FOUND)
        match = _ATTEMPT.search(request.idempotency_key)
        expected = (
            self._shop_order_no(request.payment_id, int(match.group(1))) if match else order_no
        )
        if order_no != expected or not order_no.startswith(f"{request.payment_id}-"):
            raise ProviderRequestError(
                f"The return names order {order_no!r}, not this payment's {expected!r}; "
                "refusing to approve it here.",
                provider=self.alias,
                provider_code="order_mismatch",
            )
        txid = wire.transaction_id(_approval_key(request.idempotency_key))
        return (yield from self._approve(request.amount, authorization_id, order_no, txid))

    def _status(self, request: StatusRequest) -> Operation[PaymentResult]:
        txid = wire.transaction_id(_approval_key(request.idempotency_key))
        found = yield from self._retrieve(txid)
        if found is None:
            return PaymentResult(status=ProviderStatus.NOT_FOUND)
        pg_cno = str(found.get("pgCno"))
        code = str(found.get("statusCode") or "")
        if code in wire.CANCELLED_STATUSES:
            return PaymentResult(
                status=ProviderStatus.CANCELLED, provider_payment_id=pg_cno, raw=found
            )
        match = _ATTEMPT.search(request.idempotency_key)
        order_no = self._shop_order_no(request.payment_id, int(match.group(1))) if match else ""
        result = yield from self._settle(found, request.amount, order_no, txid, "")
        if code and code not in wire.APPROVED_STATUSES and result.status == ProviderStatus.CAPTURED:
            return PaymentResult(
                status=result.status,
                provider_payment_id=result.provider_payment_id,
                amount_authorized=result.amount_authorized,
                amount_captured=result.amount_captured,
                raw=result.raw,
                signal_kwargs=result.signal_kwargs,
                note=(
                    f"KICC reports status {code} ({found.get('statusMessage')}) for pgCno "
                    f"{pg_cno}; paydesk treats it as approved. Check the KICC back office."
                ),
            )
        return result

    # -- revise (refund) -------------------------------------------------------------------

    def _revise_body(
        self,
        pg_cno: str,
        txid: str,
        revise_type: str,
        amount: int | None,
        message: str,
        remain: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "mallId": self.mall_id,
            "shopTransactionId": txid,
            "pgCno": pg_cno,
            "reviseTypeCode": revise_type,
            "cancelReqDate": wire.kst_date(self._now()),
            "msgAuthValue": self._mac(pg_cno, txid),
        }
        if amount is not None:
            body["amount"] = amount
        if remain is not None:
            body["remainAmount"] = remain
        if message:
            body["reviseMessage"] = message
        return body

    def _refund(self, request: RefundRequest) -> Operation[RefundResult]:
        pg_cno = request.provider_payment_id
        if not pg_cno:
            raise ProviderRequestError(
                "This payment has no KICC pgCno (it was never approved); nothing to cancel.",
                provider=self.alias,
                provider_code="pg_cno_missing",
            )
        amount = self._won(request.amount)
        captured = self._won(request.captured) if request.captured is not None else None
        before = self._won(request.already_refunded) if request.already_refunded else 0
        full = captured is not None and amount == captured and before == 0
        revise_type = self.revise_full if full else self.revise_partial
        remain = None
        if not full and captured is not None and _as_bool(self._option("SEND_REMAIN_AMOUNT")):
            remain = captured - before - amount
        txid = wire.transaction_id(request.idempotency_key)
        body = self._revise_body(
            pg_cno,
            txid,
            revise_type,
            None if full else amount,
            (request.reason or "refund")[:100],
            remain,
        )
        reply = yield Call(wire.REVISE_PATH, body)
        data = self._ok(reply, "cancel (revise) the payment")
        kwargs = {
            "pg_tid": pg_cno,
            "cancel_type": revise_type,
            "cancel_amount": request.amount.amount,
        }
        if data.get("resCd") != wire.SUCCESS:
            return RefundResult(
                status="failed",
                failure=ProviderFailure(
                    code="refund_failed",
                    message=(
                        f"KICC refused the cancel: {data.get('resMsg')} ({data.get('resCd')})."
                    ),
                    provider_code=str(data.get("resCd") or ""),
                ),
                raw=data,
                signal_kwargs=kwargs,
            )
        refund_id = str(data.get("cancelPgCno") or f"{pg_cno}:{txid}")
        return RefundResult(
            status="completed", provider_refund_id=refund_id, raw=data, signal_kwargs=kwargs
        )

    # -- operations ----------------------------------------------------------------------

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        return self._run(self._create(request))

    async def create_payment_async(self, request: PaymentRequest) -> PaymentResult:
        return await self._arun(self._create(request))

    def confirm_payment(self, request: ConfirmRequest) -> PaymentResult:
        return self._run(self._confirm(request))

    async def confirm_payment_async(self, request: ConfirmRequest) -> PaymentResult:
        return await self._arun(self._confirm(request))

    def get_payment_status(self, request: StatusRequest) -> PaymentResult:
        return self._run(self._status(request))

    async def get_payment_status_async(self, request: StatusRequest) -> PaymentResult:
        return await self._arun(self._status(request))

    def create_refund(self, request: RefundRequest) -> RefundResult:
        return self._run(self._refund(request))

    async def create_refund_async(self, request: RefundRequest) -> RefundResult:
        return await self._arun(self._refund(request))
