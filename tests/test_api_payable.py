"""``payable_routes``: a host model (``tests.testapp.Booking``) paid through the API.

The routes are mounted by ``tests/testapp/urls.py`` at ``/testapp/api/bookings/{public_id}/
payment/...`` with the host's rules: customers see their own bookings, staff all; customers
may refund their own refundable bookings. Every flow runs end to end on the sandbox provider.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from rest_framework.test import APIClient, APIRequestFactory, force_authenticate

from paydesk.api.payable import payable_routes
from paydesk.exceptions import RefundNotAllowed
from paydesk.models import Payment, SandboxCharge
from paydesk.money import Money
from paydesk.policy import RefundPolicy
from paydesk.providers.registry import get_payment_provider
from paydesk.states import LedgerKind
from tests.test_api_support import error_of, make_key, make_user
from tests.testapp.models import Booking

ROUTES = ("intent", "confirm", "status", "refund", "retry")


def route(booking: Booking | str, name: str) -> str:
    public_id = booking if isinstance(booking, str) else booking.public_id
    return f"/testapp/api/bookings/{public_id}/payment/{name}/"


def call(client: APIClient, booking: Booking | str, name: str, data: Any = None, **extra: Any):
    if name == "status":
        return client.get(route(booking, name), **extra)
    return client.post(route(booking, name), data or {}, format="json", **extra)


@pytest.fixture
def owner(db):
    return make_user("owner")


@pytest.fixture
def stranger(db):
    return make_user("stranger")


@pytest.fixture
def staff(db):
    return make_user("staff", is_staff=True)


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def booking(owner) -> Booking:
    return Booking.objects.create(title="Jazz night", owner=owner, amount=Decimal("40.00"))


@pytest.fixture
def api(owner) -> APIClient:
    return client_for(owner)


class NoRefundsOnFridays(RefundPolicy):
    def check_refund(self, *, payment: Payment, amount: Money, user: Any | None) -> None:
        raise RefundNotAllowed("No refunds today: the box office is closed.")


# -- paying ---------------------------------------------------------------------------------


@pytest.mark.django_db
class TestIntent:
    def test_card_payment_completes(self, api, booking, owner):
        response = call(api, booking, "intent", {"payment_method_token": "pm_sandbox_visa"})
        assert response.status_code == 201, response.content
        body = response.json()
        assert (body["object"], body["amount"], body["currency"]) == (
            booking.public_id,
            "40.00",
            "USD",
        )
        assert body["status"] == body["payment"]["status"] == "completed"
        payment = Payment.objects.get(pk=body["payment"]["id"])
        assert payment.content_object == booking
        assert payment.user == owner
        assert payment.reference == f"testapp.booking:{booking.pk}"
        assert payment.description == "Booking: Jazz night"
        assert payment.money == Money("40.00", "USD")

    def test_a_paid_booking_is_not_paid_twice(self, api, booking):
        call(api, booking, "intent", {"payment_method_token": "pm_sandbox_visa"})
        response = call(api, booking, "intent", {"payment_method_token": "pm_sandbox_visa"})
        assert response.status_code == 409
        assert error_of(response)["code"] == "already_paid"
        assert Payment.objects.count() == 1

    def test_3ds_then_confirm(self, api, booking):
        response = call(api, booking, "intent", {"payment_method_token": "pm_sandbox_3ds"})
        assert response.status_code == 201
        first = response.json()["payment"]
        assert first["status"] == "requires_action"
        assert first["next_action"]["type"] == "redirect"
        assert "/sandbox/3ds/" in first["next_action"]["redirect_url"]
        # Asking again reuses the pending payment and its next action.
        again = call(api, booking, "intent", {"payment_method_token": "pm_sandbox_3ds"})
        assert again.status_code == 200
        assert again.json()["payment"]["id"] == first["id"]
        # The customer passes the challenge on the sandbox's page ...
        payment = Payment.objects.get(pk=first["id"])
        get_payment_provider("sandbox").complete_challenge(
            provider_payment_id=payment.provider_payment_id, passed=True
        )
        # ... and the frontend confirms.
        confirmed = call(api, booking, "confirm")
        assert confirmed.status_code == 200
        assert confirmed.json()["status"] == "completed"
        assert Payment.objects.count() == 1

    def test_3ds_status_syncs_from_the_provider(self, api, booking):
        first = call(api, booking, "intent", {"payment_method_token": "pm_sandbox_3ds"}).json()
        before = call(api, booking, "status")
        assert before.json()["status"] == "requires_action"
        payment = Payment.objects.get(pk=first["payment"]["id"])
        get_payment_provider("sandbox").complete_challenge(
            provider_payment_id=payment.provider_payment_id, passed=True
        )
        after = call(api, booking, "status")
        assert after.status_code == 200
        assert after.json()["status"] == "completed"

    def test_without_a_token_the_hosted_page_collects_the_card(self, api, booking):
        body = call(api, booking, "intent").json()
        assert body["status"] == "requires_action"
        assert "/sandbox/checkout/" in body["payment"]["next_action"]["redirect_url"]

    def test_a_price_change_cancels_the_open_payment(self, api, booking):
        first = call(api, booking, "intent", {"payment_method_token": "pm_sandbox_3ds"}).json()
        Booking.objects.filter(pk=booking.pk).update(amount=Decimal("45.00"))
        response = call(api, booking, "intent", {"payment_method_token": "pm_sandbox_visa"})
        assert response.status_code == 201
        body = response.json()
        assert (body["amount"], body["status"]) == ("45.00", "completed")
        assert Payment.objects.get(pk=first["payment"]["id"]).status == "cancelled"

    def test_decline_then_retry(self, api, booking):
        declined = call(api, booking, "intent", {"payment_method_token": "pm_sandbox_declined"})
        assert declined.status_code == 201
        assert declined.json()["status"] == "failed"
        assert declined.json()["payment"]["failure_code"] == "card_declined"
        retried = call(api, booking, "retry", {"payment_method_token": "pm_sandbox_visa"})
        assert retried.status_code == 200
        body = retried.json()
        assert body["status"] == "completed"
        assert body["payment"]["id"] == declined.json()["payment"]["id"]
        assert body["payment"]["attempt"] == 2
        again = call(api, booking, "retry", {"payment_method_token": "pm_sandbox_visa"})
        assert again.status_code == 409
        assert error_of(again)["code"] == "invalid_transition"

    def test_after_a_decline_intent_starts_a_new_payment(self, api, booking):
        call(api, booking, "intent", {"payment_method_token": "pm_sandbox_declined"})
        response = call(api, booking, "intent", {"payment_method_token": "pm_sandbox_visa"})
        assert response.status_code == 201
        assert response.json()["status"] == "completed"
        assert Payment.objects.count() == 2

    def test_status_before_any_payment(self, api, booking):
        body = call(api, booking, "status").json()
        assert (body["status"], body["payment"]) == ("unpaid", None)

    @pytest.mark.parametrize("name", ["confirm", "refund", "retry"])
    def test_nothing_to_act_on_before_an_intent(self, api, booking, name):
        response = call(api, booking, name)
        assert response.status_code == 409
        error = error_of(response)
        assert (error["type"], error["code"]) == ("state_error", "no_payment")
        assert "payment/intent/" in error["message"]

    def test_idempotency_key_replays_the_intent(self, api, booking):
        headers = {"HTTP_IDEMPOTENCY_KEY": "booking-42-pay"}
        data = {"payment_method_token": "pm_sandbox_visa"}
        first = call(api, booking, "intent", data, **headers)
        second = call(api, booking, "intent", data, **headers)
        assert first.status_code == second.status_code == 201
        assert second.json() == first.json()
        assert second["Idempotent-Replayed"] == "true"
        assert Payment.objects.count() == 1

    @pytest.mark.parametrize(
        ("name", "data", "code", "param"),
        [
            ("intent", {"card_number": "4242424242424242"}, "unknown_field", "card_number"),
            ("intent", {"return_url": "not a url"}, "invalid_request", "return_url"),
            ("refund", {"amount": 5.0}, "float_not_allowed", "amount"),
            ("refund", {"amount": "5.001"}, "amount_precision", "amount"),
            ("confirm", {"params": "x"}, "invalid_request", "params"),
            ("retry", {"payment_method": "pm_1"}, "unknown_field", "payment_method"),
        ],
    )
    def test_bad_bodies(self, api, booking, name, data, code, param):
        call(api, booking, "intent", {"payment_method_token": "pm_sandbox_visa"})
        response = call(api, booking, name, data)
        assert response.status_code == 400, response.content
        error = error_of(response)
        assert (error["code"], error["param"]) == (code, param)


# -- refunds --------------------------------------------------------------------------------


@pytest.fixture
def paid(api, booking) -> Booking:
    response = call(api, booking, "intent", {"payment_method_token": "pm_sandbox_visa"})
    assert response.json()["status"] == "completed"
    return booking


@pytest.mark.django_db
class TestRefund:
    def test_the_customer_refunds_part_then_the_rest(self, api, paid):
        partial = call(api, paid, "refund", {"amount": "15.00", "reason": "one seat"})
        assert partial.status_code == 201, partial.content
        assert (partial.json()["amount"], partial.json()["status"]) == ("15.00", "completed")
        assert call(api, paid, "status").json()["status"] == "partially_refunded"
        too_much = call(api, paid, "refund", {"amount": "30.00"})
        assert too_much.status_code == 409
        assert error_of(too_much)["code"] == "refund_exceeds_captured"
        rest = call(api, paid, "refund")
        assert rest.json()["amount"] == "25.00"
        assert call(api, paid, "status").json()["status"] == "refunded"

    def test_the_hosts_refund_rule_applies(self, api, paid, staff):
        Booking.objects.filter(pk=paid.pk).update(refundable=False)
        response = call(api, paid, "refund")
        assert response.status_code == 403
        assert error_of(response)["code"] == "permission_denied"
        assert call(client_for(staff), paid, "refund").status_code == 201

    def test_the_refund_policy_applies(self, api, paid, settings):
        settings.PAYDESK = {**settings.PAYDESK, "REFUND_POLICY": f"{__name__}.NoRefundsOnFridays"}
        response = call(api, paid, "refund")
        assert response.status_code == 409
        error = error_of(response)
        assert (error["code"], error["message"]) == (
            "refund_not_allowed",
            "No refunds today: the box office is closed.",
        )

    def test_api_keys_need_the_refund_scope(self, paid, owner):
        for scopes, expected in ((["read", "write"], 403), (["refund"], 201)):
            _, key = make_key(owner, scopes)
            client = APIClient()
            client.credentials(HTTP_X_API_KEY=key)
            response = call(client, paid, "refund", {"amount": "1.00"})
            assert response.status_code == expected, (scopes, response.content)


# -- who may see what -----------------------------------------------------------------------


@pytest.mark.django_db
class TestVisibility:
    @pytest.mark.parametrize("name", ROUTES)
    def test_another_users_booking_is_not_found(self, paid, stranger, name):
        response = call(client_for(stranger), paid, name)
        assert response.status_code == 404
        error = error_of(response)
        assert (error["type"], error["code"]) == ("not_found_error", "not_found")

    @pytest.mark.parametrize("name", ROUTES)
    def test_a_missing_booking_is_not_found_the_same_way(self, api, name):
        response = call(api, "no-such-booking", name)
        assert response.status_code == 404
        assert error_of(response)["code"] == "not_found"

    @pytest.mark.parametrize("name", ROUTES)
    def test_anonymous_is_refused(self, booking, name):
        assert call(APIClient(), booking, name).status_code == 401

    def test_staff_see_every_booking(self, paid, staff):
        body = call(client_for(staff), paid, "status").json()
        assert body["status"] == "completed"

    def test_a_read_only_key_reads_but_cannot_pay(self, booking, owner):
        _, key = make_key(owner, ["read"])
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=key)
        assert call(client, booking, "status").status_code == 200
        assert call(client, booking, "intent").status_code == 403


# -- configuring the routes -----------------------------------------------------------------


def _amount(booking: Booking) -> Decimal:
    return booking.amount


@pytest.mark.django_db
class TestConfiguration:
    def test_one_call_gives_five_named_routes(self):
        routes = payable_routes(Booking, queryset=Booking.objects.all(), amount=_amount)
        assert [str(r.pattern) for r in routes] == [
            f"bookings/<str:pk>/payment/{name}/" for name in ROUTES
        ]
        assert [r.name for r in routes] == [f"booking-payment-{name}" for name in ROUTES]
        custom = payable_routes(
            Booking,
            lookup="public_id",
            permission=lambda request, obj: True,
            amount=_amount,
            prefix="tickets",
            basename="ticket",
        )
        assert str(custom[0].pattern) == "tickets/<str:public_id>/payment/intent/"
        assert custom[0].name == "ticket-payment-intent"

    def test_someone_must_decide_who_may_pay(self):
        with pytest.raises(ImproperlyConfigured, match="who may pay"):
            payable_routes(Booking, amount=_amount)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"lookup": "nope"}, "no such field"),
            ({"lookup": "owner"}, "plain field"),
            ({"amount": "40.00"}, "callable"),
        ],
    )
    def test_mistakes_are_reported_at_startup(self, kwargs, message):
        values = {"queryset": Booking.objects.all(), "amount": _amount, **kwargs}
        with pytest.raises(ImproperlyConfigured, match=message):
            payable_routes(Booking, **values)

    def _status(self, routes: list, user: Any, **kwargs: Any):
        view = next(r for r in routes if r.name.endswith("-status")).callback
        request = APIRequestFactory().get("/")
        force_authenticate(request, user=user)
        return view(request, **kwargs)

    def test_an_integer_pk_that_is_not_a_number_is_not_found(self, booking, owner):
        routes = payable_routes(Booking, queryset=Booking.objects.all(), amount=_amount)
        for value in ("abc", "99999999999999999999999", str(booking.pk + 1000)):
            assert self._status(routes, owner, pk=value).status_code == 404
        assert self._status(routes, owner, pk=str(booking.pk)).status_code == 200

    def test_permission_and_queryset_both_apply(self, booking, owner, stranger):
        routes = payable_routes(
            Booking,
            queryset=lambda request: Booking.objects.filter(title__startswith="Jazz"),
            permission=lambda request, obj: obj.owner_id == request.user.pk,
            amount=_amount,
        )
        assert self._status(routes, owner, pk=str(booking.pk)).status_code == 200
        assert self._status(routes, stranger, pk=str(booking.pk)).status_code == 404
        Booking.objects.filter(pk=booking.pk).update(title="Opera")
        assert self._status(routes, owner, pk=str(booking.pk)).status_code == 404

    def test_decimal_amount_with_currency_and_provider_callables(self, booking, owner):
        Booking.objects.filter(pk=booking.pk).update(amount=Decimal("4000"), currency="JPY")
        routes = payable_routes(
            Booking,
            queryset=Booking.objects.all(),
            amount=_amount,
            currency=lambda obj: obj.currency,
            provider=lambda obj: "sandbox",
            description="A ticket",
        )
        view = routes[0].callback
        request = APIRequestFactory().post(
            "/", {"payment_method_token": "pm_sandbox_visa"}, format="json"
        )
        force_authenticate(request, user=owner)
        response = view(request, pk=str(booking.pk))
        assert response.status_code == 201
        assert (response.data["amount"], response.data["currency"]) == ("4000", "JPY")
        payment = Payment.objects.get()
        assert (payment.money, payment.description) == (Money(4000, "JPY"), "A ticket")


# -- two intents at once --------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_intents_make_one_payment(owner):
    booking = Booking.objects.create(title="Jazz night", owner=owner, amount=Decimal("40.00"))
    results: list[int] = []
    barrier = threading.Barrier(6)

    def pay() -> None:
        try:
            barrier.wait()
            response = call(client_for(owner), booking, "intent")
            results.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=pay) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One payment, sent to the provider once. Which request answers what depends on the
    # interleaving: the one that created the payment may lose the processing lease to one
    # that found it open (then the creator gets 409 payment_in_progress and the other 200).
    payment = Payment.objects.get()
    assert payment.status == "requires_action"  # no card: the sandbox's hosted checkout
    assert payment.ledger.filter(kind=LedgerKind.SUBMITTED).count() == 1
    assert SandboxCharge.objects.count() == 1
    assert results.count(201) <= 1
    assert results.count(200) + results.count(201) >= 1
    assert set(results) <= {200, 201, 409}


def test_payable_routes_is_importable_from_paydesk_api_as_documented():
    import paydesk.api
    from paydesk.api.payable import payable_routes

    assert paydesk.api.payable_routes is payable_routes
