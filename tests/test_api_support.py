"""Fixtures and helpers shared by the REST API tests (tests/test_api_*.py).

No tests here: the API test modules import what they need from this module.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from paydesk import services
from paydesk.api.keys import create_api_key
from paydesk.models import APIKey, Payment, PaymentMethod, Refund

API = "/paydesk/api/v1/"

#: The principals every endpoint is tried with in the authorization matrix.
PRINCIPALS = (
    "anonymous",
    "owner",
    "other",
    "staff",
    "key_read",
    "key_write",
    "key_refund",
    "key_revoked",
    "key_expired",
)


def url(path: str) -> str:
    return API + path.lstrip("/")


@dataclass
class World:
    """Users, API keys and one payment of each interesting state, owned by ``owner``."""

    owner: Any
    other: Any
    staff: Any
    keys: dict[str, str] = field(default_factory=dict)
    objects: dict[str, Any] = field(default_factory=dict)

    def client(self, principal: str) -> APIClient:
        client = APIClient()
        if principal in ("owner", "other", "staff"):
            client.force_login(getattr(self, principal))
        elif principal.startswith("key_"):
            client.credentials(HTTP_AUTHORIZATION=f"Api-Key {self.keys[principal]}")
        return client


def make_user(username: str, **extra: Any) -> Any:
    return get_user_model().objects.create_user(
        username=username, email=f"{username}@example.com", password="pw", **extra
    )


def make_key(owner: Any, scopes: list[str], **kwargs: Any) -> tuple[APIKey, str]:
    return create_api_key(owner=owner, name=f"{owner.username} {scopes}", scopes=scopes, **kwargs)


def pending_payment(user: Any, amount: str = "20.00", **kwargs: Any) -> Payment:
    return services.create_payment(
        amount=amount,
        currency=kwargs.pop("currency", "USD"),
        provider="sandbox",
        user=user,
        **kwargs,
    )


def completed_payment(user: Any, amount: str = "20.00", **kwargs: Any) -> Payment:
    payment = pending_payment(user, amount, payment_method_token="pm_sandbox_visa", **kwargs)
    payment = services.process_payment(payment=payment)
    assert payment.status == "completed", payment.status
    return payment


def authorized_payment(user: Any, amount: str = "20.00") -> Payment:
    payment = pending_payment(user, amount, payment_method_token="pm_sandbox_visa", capture=False)
    payment = services.process_payment(payment=payment)
    assert payment.status == "authorized", payment.status
    return payment


def failed_payment(user: Any, amount: str = "20.00") -> Payment:
    payment = pending_payment(user, amount, payment_method_token="pm_sandbox_declined")
    payment = services.process_payment(payment=payment)
    assert payment.status == "failed", payment.status
    return payment


def pending_refund(user: Any, amount: str = "5.00") -> Refund:
    payment = completed_payment(user)
    refund = services.create_refund(payment=payment, amount=amount, process=False)
    assert refund.status == "pending"
    return refund


def saved_method(user: Any, token: str) -> PaymentMethod:
    return services.add_payment_method(user=user, provider="sandbox", provider_token=token)


def build_world() -> World:
    owner = make_user("owner")
    world = World(owner=owner, other=make_user("other"), staff=make_user("staff", is_staff=True))
    world.keys["key_read"] = make_key(owner, ["read"])[1]
    world.keys["key_write"] = make_key(owner, ["write"])[1]
    world.keys["key_refund"] = make_key(owner, ["refund"])[1]
    revoked, world.keys["key_revoked"] = make_key(owner, ["read", "write", "refund"])
    APIKey.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    expired, world.keys["key_expired"] = make_key(owner, ["read", "write", "refund"])
    APIKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    world.objects.update(
        method=saved_method(owner, "pm_sandbox_visa"),
        spare_method=saved_method(owner, "pm_sandbox_mastercard"),
        pending=pending_payment(owner),
        completed=completed_payment(owner),
        authorized=authorized_payment(owner),
        failed=failed_payment(owner),
        refund=pending_refund(owner),
    )
    return world


def error_of(response: Any) -> dict[str, Any]:
    """The ``error`` object of an error response, after checking the body's exact shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"type", "code", "message", "param"} <= set(error), error
    assert isinstance(error["message"], str)
    assert error["message"]
    return error
