"""The authorization matrix: every API endpoint x every kind of caller, with zero leaks.

Each cell is the status that caller must get. Objects belong to ``owner``; ``key_*`` are
API keys of ``owner`` with one scope each (write and refund imply read); ``key_revoked`` and
``key_expired`` hold every scope but must be refused outright. Another user's object always
answers 404, like a missing one, and no caller that is not the owner (or staff) ever sees
one of the owner's ids in a response body.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_api_support import PRINCIPALS, World, build_world, url

# (method, path, body) -> statuses in PRINCIPALS order:
#  anonymous, owner, other, staff, key_read, key_write, key_refund, key_revoked, key_expired
LIST = (401, 200, 200, 200, 200, 200, 200, 401, 401)
DETAIL = (401, 200, 404, 200, 200, 200, 200, 401, 401)
CREATE = (401, 201, 201, 201, 403, 201, 403, 401, 401)
ACT = (401, 200, 404, 200, 403, 200, 403, 401, 401)
REFUND_CREATE = (401, 403, 403, 201, 403, 403, 201, 401, 401)
REFUND_ACT = (401, 403, 403, 200, 403, 403, 200, 401, 401)
PUBLIC = (200, 200, 200, 200, 200, 200, 200, 401, 401)
STAFF_ONLY = (401, 403, 403, 200, 403, 403, 403, 401, 401)
SCHEMA = (200, 200, 200, 200, 200, 200, 200, 200, 200)

MATRIX: list[tuple[str, str, dict[str, Any] | None, tuple[int, ...]]] = [
    ("get", "payment-methods/", None, LIST),
    ("post", "payment-methods/", {"provider": "sandbox", "provider_token": "tok_matrix"}, CREATE),
    ("get", "payment-methods/{method}/", None, DETAIL),
    ("patch", "payment-methods/{method}/", {"metadata": {"k": "v"}}, ACT),
    (
        "delete",
        "payment-methods/{spare_method}/",
        None,
        (401, 204, 404, 204, 403, 204, 403, 401, 401),
    ),
    ("post", "payment-methods/{spare_method}/set-default/", {}, ACT),
    ("get", "payments/", None, LIST),
    ("post", "payments/", {"amount": "5.00", "currency": "USD"}, CREATE),
    ("get", "payments/{completed}/", None, DETAIL),
    ("post", "payments/{pending}/process/", {"payment_method_token": "pm_sandbox_visa"}, ACT),
    ("post", "payments/{authorized}/capture/", {}, ACT),
    ("post", "payments/{pending}/cancel/", {"reason": "changed my mind"}, ACT),
    ("get", "payments/{completed}/status/", None, DETAIL),
    ("post", "payments/{failed}/retry/", {"payment_method_token": "pm_sandbox_visa"}, ACT),
    ("get", "payments/{completed}/ledger/", None, DETAIL),
    ("get", "refunds/", None, LIST),
    ("post", "refunds/", {"payment": "{completed}", "amount": "1.00"}, REFUND_CREATE),
    ("get", "refunds/{refund}/", None, DETAIL),
    ("post", "refunds/{refund}/process/", {}, REFUND_ACT),
    ("get", "config/", None, PUBLIC),
    ("get", "webhooks/providers/", None, STAFF_ONLY),
    ("get", "webhooks/health/", None, PUBLIC),
    ("get", "webhooks/stats/", None, STAFF_ONLY),
    ("get", "schema/", None, SCHEMA),
]

CELLS = [
    pytest.param(method, path, body, principal, expected[i], id=f"{method} {path} {principal}")
    for method, path, body, expected in MATRIX
    for i, principal in enumerate(PRINCIPALS)
]


def _fill(value: Any, world: World) -> Any:
    if isinstance(value, str):
        return value.format(**{name: obj.pk for name, obj in world.objects.items()})
    if isinstance(value, dict):
        return {k: _fill(v, world) for k, v in value.items()}
    return value


def test_matrix_covers_every_endpoint() -> None:
    from django.urls import URLPattern

    from paydesk.api import urls as api_urls

    # The endpoints of this API's own modules; others appended to api/urls.py (currencies,
    # ...) are covered by their own tests.
    own = ("paydesk.api.views", "paydesk.api.config", "paydesk.api.webhooks")
    covered = {path.split("{")[0] for _, path, _, _ in MATRIX}
    checked = 0
    for pattern in api_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        view = getattr(pattern.callback, "cls", None)
        if view is None or view.__module__ not in own:
            continue
        route = str(pattern.pattern).lstrip("^").rstrip("$")
        prefix = route.split("(?P")[0].split("<")[0]
        assert any(c.startswith(prefix) or prefix.startswith(c) for c in covered), route
        checked += 1
    assert checked >= 10
    assert "schema/" in covered


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body", "principal", "expected"), CELLS)
def test_authorization_matrix(
    method: str, path: str, body: dict[str, Any] | None, principal: str, expected: int
) -> None:
    world = build_world()
    client = world.client(principal)
    kwargs: dict[str, Any] = {"format": "json"}
    if body is not None:
        kwargs["data"] = _fill(body, world)
    response = getattr(client, method)(url(_fill(path, world)), **kwargs)
    assert response.status_code == expected, (response.status_code, response.content[:500])
    if response.status_code >= 400:
        body_json = response.json()
        assert set(body_json) == {"error"}, body_json
    if principal not in ("owner", "staff", "key_read", "key_write", "key_refund"):
        # Zero leaks: nothing of the owner's appears in what others get back.
        text = response.content.decode()
        for name, obj in world.objects.items():
            assert str(obj.pk) not in text, f"{principal} saw {name} {obj.pk}"


@pytest.mark.django_db
def test_another_users_refund_key_cannot_refund_the_owners_payment() -> None:
    from tests.test_api_support import make_key

    world = build_world()
    _key, secret = make_key(world.other, ["refund"])
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    response = client.post(
        url("refunds/"), {"payment": world.objects["completed"].pk}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "resource_missing"
    assert response.json()["error"]["param"] == "payment"
    assert world.objects["completed"].pk not in response.content.decode()


@pytest.mark.django_db
def test_other_users_lists_hold_only_their_own_objects() -> None:
    world = build_world()
    from tests.test_api_support import completed_payment

    mine = completed_payment(world.other)
    client = world.client("other")
    ids = [row["id"] for row in client.get(url("payments/")).json()["results"]]
    assert ids == [mine.pk]
    assert client.get(url("refunds/")).json()["results"] == []
    assert client.get(url("payment-methods/")).json()["results"] == []
    # Staff see everyone's.
    staff_ids = {row["id"] for row in world.client("staff").get(url("payments/")).json()["results"]}
    assert mine.pk in staff_ids
    assert world.objects["completed"].pk in staff_ids
