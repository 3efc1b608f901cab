"""A fake KICC EasyPay (EP9) PG API for ``httpx.MockTransport``.

It speaks the wire format of ../shared/docs/providers.md section 5: every call a ``POST``
with a JSON body and ``Content-Type: application/json; charset=utf-8``; the merchant is the
body's ``mallId`` (no auth header); ``resCd`` ``"0000"`` means success, anything else
carries ``resMsg``.

What it checks and keeps, and why:

* **Authentication as KICC does it**: an unknown ``mallId`` is refused; a revise must carry
  ``msgAuthValue`` = hex HMAC-SHA256(secret key, ``pgCno|shopTransactionId``), and its
  ``cancelReqDate`` must be today in Korea time. Approval responses carry a
  ``msgAuthValue`` over ``pgCno|amount|transactionDate`` (the one third-party formula seen).
* **Its own books**: ``orders`` (registrations), ``transactions`` (approvals, by ``pgCno``,
  with what was cancelled), so a test can prove nothing was approved or cancelled twice.
* **``shopTransactionId`` is the idempotency key** (KICC's documentation calls it that):
  the same id again gets the first answer again, for approvals and revises; an
  ``authorizationId`` can be approved once.
* **The window**: :meth:`complete_window` plays the customer and returns the
  ``authorizationId`` KICC would post to ``returnUrl``. The token convention ``fake-approve``
  / ``fake-decline`` stands for "the customer completed / was declined in the window" for any
  registered order.
* **Faults**: :meth:`fail_next` injects a timeout or HTTP 5xx before or after the work.
* **Result codes** other than ``0000`` are the fake's own (KICC's code table was not seen):
  ``F001`` unknown mall, ``F002`` missing field, ``F101`` unknown/used authorizationId,
  ``F102`` duplicate shopTransactionId with other content, ``F201`` declined,
  ``F301`` msgAuthValue mismatch, ``F302`` amount above what is left, ``F303`` already
  cancelled, ``F304`` date not today, ``F305`` unknown revise type, ``F401`` not found,
  ``F402`` query date out of range (only yesterday and today).
* **Re-registering** a ``shopOrderNo`` returns the same window (unverified: real KICC may
  refuse a duplicate order number).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

MALL_ID = "T5102001"
SECRET_KEY = "easypay-test-secret-key"
TEST_HOST = "testpgapi.easypay.co.kr"
PRODUCTION_HOST = "pgapi.easypay.co.kr"
KST = dt.timezone(dt.timedelta(hours=9))
APPROVE = "fake-approve"
DECLINE = "fake-decline"


def mac(secret: str, *parts: object) -> str:
    message = "|".join(str(p) for p in parts).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


@dataclass
class Fault:
    path: str
    kind: str  # "timeout", "connect" or an HTTP status
    after: bool


class FakeEasyPay:
    def __init__(
        self,
        *,
        mall_id: str = MALL_ID,
        secret_key: str = SECRET_KEY,
        host: str = TEST_HOST,
        partial_codes: frozenset[str] = frozenset({"32"}),
        full_code: str = "40",
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.mall_id = mall_id
        self.secret_key = secret_key
        self.host = host
        self.partial_codes = partial_codes
        self.full_code = full_code
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.orders: dict[str, dict[str, Any]] = {}
        self.authorizations: dict[str, dict[str, Any]] = {}
        self.transactions: dict[str, dict[str, Any]] = {}
        self.approvals: dict[str, dict[str, Any]] = {}  # shopTransactionId -> answer
        self.revisions: dict[str, dict[str, Any]] = {}  # shopTransactionId -> answer
        self.requests: list[httpx.Request] = []
        self.faults: list[Fault] = []
        self._pg = itertools.count(24_112_500_000_000_001)

    # -- wiring ------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=self.transport())

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport())

    def fail_next(self, path: str, kind: str = "timeout", *, after: bool = False) -> None:
        self.faults.append(Fault(path, kind, after))

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests if r.url.path == path]

    # -- the customer's side -------------------------------------------------------------

    def complete_window(
        self, shop_order_no: str, *, outcome: str = "approve", approve_amount: int | None = None
    ) -> str:
        """The customer finishes KICC's window; the ``authorizationId`` posted to returnUrl."""
        order = self.orders[shop_order_no]
        authorization_id = "AUTH" + secrets.token_hex(12)
        self.authorizations[authorization_id] = {
            "order": shop_order_no,
            "outcome": outcome,
            "amount": order["amount"] if approve_amount is None else approve_amount,
            "used": False,
        }
        return authorization_id

    def return_form(self, shop_order_no: str, authorization_id: str, res_cd: str = "0000") -> dict:
        order = self.orders[shop_order_no]
        form = {
            "resCd": res_cd,
            "resMsg": "정상처리" if res_cd == "0000" else "사용자 취소",
            "shopOrderNo": shop_order_no,
            "authorizationId": authorization_id if res_cd == "0000" else "",
        }
        for n, value in order["shopValues"].items():
            form[f"shopValue{n}"] = value
        return form

    # -- HTTP ------------------------------------------------------------------------------

    def _today(self, days: int = 0) -> str:
        return (self.clock().astimezone(KST) - dt.timedelta(days=days)).strftime("%Y%m%d")

    def _answer(self, data: dict[str, Any]) -> httpx.Response:
        return httpx.Response(
            200,
            content=json.dumps(data, ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )

    def _refuse(self, code: str, message: str, **extra: Any) -> dict[str, Any]:
        return {"resCd": code, "resMsg": message, **extra}

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        fault = next((f for f in self.faults if request.url.path == f.path), None)
        if fault is not None:
            self.faults.remove(fault)
            if fault.after:
                self._route(request)
            if fault.kind == "timeout":
                raise httpx.ReadTimeout("fake KICC timed out", request=request)
            if fault.kind == "connect":
                raise httpx.ConnectError("fake KICC refused the connection", request=request)
            return httpx.Response(int(fault.kind), text="<html>Service Unavailable</html>")
        return self._route(request)

    def _route(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != self.host:
            raise httpx.ConnectError(f"fake KICC serves {self.host}", request=request)
        if request.method != "POST":
            return httpx.Response(405)
        if request.headers.get("content-type", "").replace(" ", "").lower() != (
            "application/json;charset=utf-8"
        ):
            return httpx.Response(415, text="Content-Type must be application/json; charset=utf-8")
        try:
            body = json.loads(request.content)
        except ValueError:
            return httpx.Response(400, text="body is not JSON")
        if body.get("mallId") != self.mall_id:
            return self._answer(self._refuse("F001", "등록되지 않은 가맹점입니다 (unknown mallId)"))
        handlers = {
            "/api/ep9/trades/webpay": self._register,
            "/api/ep9/trades/approval": self._approve,
            "/api/trades/revise": self._revise,
            "/api/trades/retrieveTransaction": self._retrieve,
        }
        handler = handlers.get(request.url.path)
        if handler is None:
            return httpx.Response(404, text="Not Found")
        return self._answer(handler(body))

    def _missing(self, body: dict[str, Any], *names: str) -> dict[str, Any] | None:
        absent = [n for n in names if body.get(n) in (None, "")]
        if absent:
            return self._refuse("F002", f"필수 항목 누락: {', '.join(absent)}")
        return None

    def _register(self, body: dict[str, Any]) -> dict[str, Any]:
        refused = self._missing(
            body,
            "shopOrderNo",
            "amount",
            "payMethodTypeCode",
            "currency",
            "returnUrl",
            "deviceTypeCode",
            "clientTypeCode",
        )
        if refused:
            return refused
        goods = (body.get("orderInfo") or {}).get("goodsName")
        if not goods:
            return self._refuse("F002", "필수 항목 누락: orderInfo.goodsName")
        if not isinstance(body["amount"], int) or isinstance(body["amount"], bool):
            return self._refuse("F002", "amount must be a whole number of won")
        if body["currency"] != "00" or len(str(body["shopOrderNo"])) > 40:
            return self._refuse("F002", "currency must be 00 (KRW); shopOrderNo at most 40")
        order_no = str(body["shopOrderNo"])
        existing = self.orders.get(order_no)
        if existing is None:
            token = secrets.token_urlsafe(12)
            values = body.get("shopValueInfo") or {}
            existing = self.orders[order_no] = {
                "amount": body["amount"],
                "returnUrl": body["returnUrl"],
                "payMethodTypeCode": body["payMethodTypeCode"],
                "authPageUrl": f"https://testsp.easypay.co.kr/ep9/pay?token={token}",
                "shopValues": {
                    key.removeprefix("value"): v for key, v in values.items() if v not in ("", None)
                },
            }
        return {"resCd": "0000", "resMsg": "정상처리", "authPageUrl": existing["authPageUrl"]}

    def _approve(self, body: dict[str, Any]) -> dict[str, Any]:
        refused = self._missing(
            body, "shopTransactionId", "authorizationId", "shopOrderNo", "approvalReqDate"
        )
        if refused:
            return refused
        txid = str(body["shopTransactionId"])
        if txid in self.approvals:
            first = self.approvals[txid]
            if first["_request"] != body:
                return self._refuse("F102", "shopTransactionId already used for another request")
            return {k: v for k, v in first.items() if k != "_request"}
        order_no = str(body["shopOrderNo"])
        if order_no not in self.orders:
            return self._refuse("F101", "등록되지 않은 주문입니다 (unknown shopOrderNo)")
        authorization_id = str(body["authorizationId"])
        if authorization_id in (APPROVE, DECLINE):
            auth = {
                "order": order_no,
                "outcome": "approve" if authorization_id == APPROVE else "decline",
                "amount": self.orders[order_no]["amount"],
                "used": False,
            }
            self.authorizations.setdefault(f"{authorization_id}:{order_no}", auth)
            auth = self.authorizations[f"{authorization_id}:{order_no}"]
        else:
            auth = self.authorizations.get(authorization_id)
        if auth is None or auth["order"] != order_no or auth["used"]:
            return self._refuse("F101", "유효하지 않은 인증번호입니다 (authorizationId)")
        if body["approvalReqDate"] != self._today():
            return self._refuse("F304", "approvalReqDate must be today (KST)")
        auth["used"] = True
        if auth["outcome"] != "approve":
            answer = self._refuse(
                "F201", "카드사 승인 거절 (declined by the issuer)", shopTransactionId=txid
            )
        else:
            pg_cno = str(next(self._pg))
            when = self.clock().astimezone(KST).strftime("%Y%m%d%H%M%S")
            amount = auth["amount"]
            self.transactions[pg_cno] = {
                "amount": amount,
                "cancelled": 0,
                "status": "TS03",
                "shopTransactionId": txid,
                "shopOrderNo": order_no,
                "transactionDate": when,
                "revisions": [],
            }
            answer = {
                "resCd": "0000",
                "resMsg": "정상처리",
                "mallId": self.mall_id,
                "shopTransactionId": txid,
                "shopOrderNo": order_no,
                "pgCno": pg_cno,
                "amount": amount,
                "transactionDate": when,
                "statusCode": "TS03",
                "statusMessage": "매입요청",
                "msgAuthValue": mac(self.secret_key, pg_cno, amount, when),
                "escrowUsed": "N",
                "paymentInfo": {
                    "payMethodTypeCode": "11",
                    "approvalNo": f"{int(pg_cno) % 100_000_000:08d}",
                    "approvalDate": when,
                    "cardInfo": {
                        "cardNo": "53692*******1234",
                        "issuerCode": "026",
                        "issuerName": "비씨",
                        "acquirerCode": "026",
                        "acquirerName": "비씨",
                        "installmentMonth": 0,
                        "freeInstallmentTypeCode": "00",
                        "partCancelUsed": "Y",
                    },
                },
            }
        self.approvals[txid] = {**answer, "_request": body}
        return answer

    def _retrieve(self, body: dict[str, Any]) -> dict[str, Any]:
        refused = self._missing(body, "shopTransactionId", "transactionDate")
        if refused:
            return refused
        date = str(body["transactionDate"])
        if date not in (self._today(), self._today(1)):
            return self._refuse("F402", "조회 가능 기간이 아닙니다 (yesterday and today only)")
        txid = str(body["shopTransactionId"])
        for pg_cno, tx in self.transactions.items():
            if tx["shopTransactionId"] == txid and tx["transactionDate"][:8] == date:
                return {
                    "resCd": "0000",
                    "resMsg": "정상처리",
                    "mallId": self.mall_id,
                    "shopTransactionId": txid,
                    "shopOrderNo": tx["shopOrderNo"],
                    "pgCno": pg_cno,
                    "amount": tx["amount"],
                    "transactionDate": tx["transactionDate"],
                    "statusCode": tx["status"],
                    "statusMessage": {"TS03": "매입요청", "TS02": "승인취소", "TS06": "부분취소"}[
                        tx["status"]
                    ],
                }
        return self._refuse("F401", "거래 내역이 없습니다 (no such transaction)")

    def _revise(self, body: dict[str, Any]) -> dict[str, Any]:
        refused = self._missing(
            body, "shopTransactionId", "pgCno", "reviseTypeCode", "cancelReqDate", "msgAuthValue"
        )
        if refused:
            return refused
        txid = str(body["shopTransactionId"])
        pg_cno = str(body["pgCno"])
        if not hmac.compare_digest(str(body["msgAuthValue"]), mac(self.secret_key, pg_cno, txid)):
            return self._refuse("F301", "msgAuthValue 검증 실패 (message authentication failed)")
        if txid in self.revisions:
            first = self.revisions[txid]
            if first["_request"] != body:
                return self._refuse("F102", "shopTransactionId already used for another request")
            return {k: v for k, v in first.items() if k != "_request"}
        if body["cancelReqDate"] != self._today():
            return self._refuse("F304", "cancelReqDate must be today (KST)")
        tx = self.transactions.get(pg_cno)
        if tx is None:
            return self._refuse("F401", "거래 내역이 없습니다 (no such transaction)")
        left = tx["amount"] - tx["cancelled"]
        code = str(body["reviseTypeCode"])
        if left <= 0:
            return self._refuse("F303", "이미 취소된 거래입니다 (already cancelled)")
        if code == self.full_code:
            if tx["cancelled"]:
                return self._refuse("F302", "부분취소된 거래는 전체취소할 수 없습니다")
            amount = left
        elif code in self.partial_codes:
            amount = body.get("amount")
            if not isinstance(amount, int) or amount <= 0:
                return self._refuse("F002", "필수 항목 누락: amount (partial cancel)")
            if amount > left:
                return self._refuse("F302", f"취소 가능 금액 초과 (at most {left})")
            if "remainAmount" in body and body["remainAmount"] != left - amount:
                return self._refuse("F302", "remainAmount does not match")
        else:
            return self._refuse("F305", f"reviseTypeCode {code} is not supported")
        tx["cancelled"] += amount
        tx["status"] = "TS02" if tx["cancelled"] == tx["amount"] else "TS06"
        cancel_pg_cno = str(next(self._pg))
        tx["revisions"].append({"cancelPgCno": cancel_pg_cno, "amount": amount, "type": code})
        answer = {
            "resCd": "0000",
            "resMsg": "정상처리",
            "mallId": self.mall_id,
            "shopTransactionId": txid,
            "pgCno": pg_cno,
            "cancelPgCno": cancel_pg_cno,
            "cancelAmount": amount,
            "remainAmount": tx["amount"] - tx["cancelled"],
            "reviseTypeCode": code,
            "statusCode": tx["status"],
            "cancelDate": self.clock().astimezone(KST).strftime("%Y%m%d%H%M%S"),
        }
        self.revisions[txid] = {**answer, "_request": body}
        return answer
