"""The dashboard's payments area: list, detail, and actions that go through the services."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from paydesk import services
from paydesk.models import AuditLog, Payment, Refund, WebhookEvent
from paydesk.services import ledger
from paydesk.services.webhooks import _note_delivery
from paydesk.testing import MockPaymentProvider, create_test_payment

pytestmark = pytest.mark.django_db

D = Decimal
XSS = '<script>alert("x")</script>'


def _perm(codename: str) -> Permission:
    return Permission.objects.get(content_type__app_label="paydesk", codename=codename)


@pytest.fixture
def staff(django_user_model):
    """Staff without any permission: may look, may not act."""
    return django_user_model.objects.create_user(username="viewer", password="pw", is_staff=True)


@pytest.fixture
def operator(django_user_model):
    """Staff allowed to refund and to capture/cancel/sync."""
    user = django_user_model.objects.create_user(
        username="operator", password="pw", is_staff=True, first_name="Olga"
    )
    user.user_permissions.add(_perm("add_refund"), _perm("change_payment"))
    return user


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def op_client(client, operator):
    client.force_login(operator)
    return client


def _paid(mock: MockPaymentProvider, amount: str = "100.00", **kwargs: Any) -> Payment:
    kwargs.setdefault("currency", "USD")
    return create_test_payment(amount=amount, provider="mock", process=True, **kwargs)


def _authorized(mock: MockPaymentProvider, amount: str = "50.00") -> Payment:
    payment = services.create_payment(amount=amount, currency="USD", provider="mock", capture=False)
    return services.process_payment(payment=payment, payment_method_token="tok_visa")


def _url(name: str, *args: Any) -> str:
    return reverse(f"paydesk_dashboard:{name}", args=args)


def _messages(response) -> list[tuple[str, str]]:
    """The messages waiting to be shown after ``response`` (oldest first)."""
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def _fresh(payment: Payment) -> Payment:
    return Payment.objects.get(pk=payment.pk)


# -- access -----------------------------------------------------------------------------


def test_anonymous_is_sent_to_log_in(client, mock):
    payment = _paid(mock)
    for url in (_url("payments"), _url("payment-detail", payment.pk)):
        response = client.get(url)
        assert response.status_code == 302
        assert "login" in response["Location"]
    response = client.post(_url("payment-refund", payment.pk), {"amount": "1.00"})
    assert response.status_code == 302
    assert "login" in response["Location"]
    assert not Refund.objects.exists()


def test_non_staff_is_refused(client, user, mock):
    payment = _paid(mock)
    client.force_login(user)
    assert client.get(_url("payments")).status_code == 403
    assert client.get(_url("payment-detail", payment.pk)).status_code == 403
    assert client.post(_url("payment-refund", payment.pk), {"amount": "1"}).status_code == 403
    assert not Refund.objects.exists()


@pytest.mark.parametrize(
    ("action", "data"),
    [
        ("payment-refund", {"amount": "10.00"}),
        ("payment-capture", {}),
        ("payment-cancel", {}),
        ("payment-sync", {}),
    ],
)
def test_staff_without_the_permission_cannot_act(staff_client, mock, action, data):
    payment = _authorized(mock) if action != "payment-refund" else _paid(mock)
    before = list(payment.ledger.values_list("kind", flat=True))
    response = staff_client.post(_url(action, payment.pk), data)
    assert response.status_code == 403
    assert "paydesk." in response.content.decode()
    assert list(payment.ledger.values_list("kind", flat=True)) == before
    assert _fresh(payment).status == payment.status
    assert not AuditLog.objects.filter(object_id=payment.pk).exists()


def test_read_only_staff_sees_no_action_forms(staff_client, mock):
    payment = _paid(mock)
    body = staff_client.get(_url("payment-detail", payment.pk)).content.decode()
    assert 'data-action="refund"' not in body
    assert "no permission to act" in body


@pytest.mark.parametrize("action", ["payment-refund", "payment-capture", "payment-cancel"])
def test_get_on_an_action_is_405(op_client, mock, action):
    payment = _paid(mock)
    assert op_client.get(_url(action, payment.pk)).status_code == 405


def test_action_without_csrf_token_is_403(operator, mock):
    payment = _paid(mock)
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    response = client.post(_url("payment-refund", payment.pk), {"amount": "10.00"})
    assert response.status_code == 403
    assert not Refund.objects.exists()


def test_action_with_csrf_token_works(operator, mock):
    payment = _paid(mock)
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    client.get(_url("payment-detail", payment.pk))
    token = client.cookies["csrftoken"].value
    response = client.post(
        _url("payment-refund", payment.pk), {"amount": "10.00", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    assert Refund.objects.filter(payment=payment, status="completed").count() == 1


def test_unknown_payment_is_404(op_client, mock):
    assert op_client.get(_url("payment-detail", "pay_nope")).status_code == 404
    for action in ("payment-refund", "payment-capture", "payment-cancel", "payment-sync"):
        assert op_client.post(_url(action, "pay_nope"), {"amount": "1"}).status_code == 404


# -- list -------------------------------------------------------------------------------


def test_list_shows_payments_newest_first_with_money_and_badge(staff_client, mock):
    older = _paid(mock, "12.50", reference="order-1")
    newer = _paid(mock, "3000", currency="JPY", reference="order-2")
    response = staff_client.get(_url("payments"))
    assert response.status_code == 200
    rows = [p.pk for p in response.context["page"].object_list]
    assert rows == [newer.pk, older.pk]
    body = response.content.decode()
    assert "$12.50" in body
    assert "¥3,000" in body
    assert 'class="badge completed"' in body
    assert 'aria-current="page"' in body  # the navigation marks Payments


def test_list_filters(staff_client, mock):
    paid = _paid(mock, reference="order-77", customer_email="ada@example.com")
    euro = _paid(mock, currency="EUR", reference="other")
    pending = services.create_payment(amount="5.00", currency="USD", provider="mock")

    def ids(**params: str) -> set[str]:
        response = staff_client.get(_url("payments"), params)
        assert response.status_code == 200
        return {p.pk for p in response.context["page"].object_list}

    assert ids(status="pending") == {pending.pk}
    assert ids(currency="EUR") == {euro.pk}
    assert ids(provider="mock") == {paid.pk, euro.pk, pending.pk}
    assert ids(q=paid.pk) == {paid.pk}
    assert ids(q=paid.provider_payment_id) == {paid.pk}
    assert ids(q="order-77") == {paid.pk}
    assert ids(q="ADA@example") == {paid.pk}
    today = paid.created_at.date().isoformat()
    assert ids(created_from=today, created_to=today) == {paid.pk, euro.pk, pending.pk}
    assert ids(created_to="2000-01-01") == set()


def test_search_finds_the_customer_by_name(staff_client, mock, django_user_model):
    customer = django_user_model.objects.create_user(
        username="grace", email="g@example.com", first_name="Grace", last_name="Hopper"
    )
    mine = _paid(mock, user=customer)
    _paid(mock)
    response = staff_client.get(_url("payments"), {"q": "grace hop"})
    assert [p.pk for p in response.context["page"].object_list] == [mine.pk]
    assert "Grace Hopper" in response.content.decode()


@pytest.mark.parametrize(
    "params",
    [
        {"status": "bogus"},
        {"currency": "ZZZ"},
        {"provider": "nope"},
        {"created_from": "yesterday"},
        {"created_from": "2026-02-30"},
        {"created_from": "2026-03-02", "created_to": "2026-03-01"},
        {"q": "x" * 500},
        {"page": "-1"},
        {"page": "abc"},
    ],
)
def test_invalid_filters_give_a_message_not_a_500(staff_client, mock, params):
    _paid(mock)
    response = staff_client.get(_url("payments"), params)
    assert response.status_code == 200
    if "page" not in params:
        assert "data-filter-errors" in response.content.decode()


def test_search_is_escaped(staff_client, mock):
    response = staff_client.get(_url("payments"), {"q": XSS})
    body = response.content.decode()
    assert XSS not in body
    assert "&lt;script&gt;" in body


def test_list_query_count_does_not_grow_with_the_page(staff_client, mock, django_user_model):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = staff_client.get(_url("payments"), {"q": "example"})
        assert response.status_code == 200
        return len(queries)

    customer = django_user_model.objects.create_user(username="c", email="c@example.com")
    _paid(mock, user=customer)
    few = count()
    for _ in range(15):
        _paid(mock, user=customer, customer_email="c@example.com")
    assert count() == few


def test_list_paginates_and_keeps_the_filters(staff_client, mock, settings):
    settings.PAYDESK = {**settings.PAYDESK, "DASHBOARD": {"PAGE_SIZE": 2}}
    for _ in range(5):
        _paid(mock)
    response = staff_client.get(_url("payments"), {"provider": "mock", "page": "2"})
    page = response.context["page"]
    assert page.number == 2
    assert len(page.object_list) == 2
    body = response.content.decode()
    assert "provider=mock&amp;page=3" in body or "page=3&amp;provider=mock" in body


# -- detail -----------------------------------------------------------------------------


def _delivery(payment: Payment, event_id: str, **kwargs: Any) -> WebhookEvent:
    return WebhookEvent.objects.create(
        provider=payment.provider,
        event_id=event_id,
        event_type=kwargs.pop("event_type", "payment.captured"),
        status=kwargs.pop("status", "processed"),
        **kwargs,
    )


def test_detail_shows_ledger_refunds_deliveries_audit_and_fraud(op_client, mock):
    payment = _paid(mock)
    services.create_refund(payment=payment, amount="10.00", reason="damaged")
    noted = _delivery(payment, "evt_noted")
    with transaction.atomic():
        _note_delivery(ledger.locked_payment(payment), noted)
    linked = _delivery(payment, "evt_linked", payment_id=payment.pk, status="failed")
    unrelated = _delivery(payment, "evt_other")
    op_client.post(_url("payment-sync", payment.pk))

    response = op_client.get(_url("payment-detail", payment.pk))
    assert response.status_code == 200
    body = response.content.decode()
    kinds = [entry.kind for entry in response.context["ledger"]]
    assert kinds[:2] == ["payment_created", "submitted"]
    assert "refund_completed" in kinds
    assert "webhook_received" in kinds
    assert body.count("data-ledger-entry=") == len(kinds)
    assert "refund:" in body  # idempotency keys are shown
    assert [r.reason for r in response.context["refunds"]] == ["damaged"]
    shown = {d.pk for d in response.context["deliveries"]}
    assert shown == {noted.pk, linked.pk}
    assert unrelated.pk not in shown
    assert [e.action for e in response.context["audit_entries"]] == ["payment.sync"]
    assert response.context["fraud"] is None or response.context["fraud"].payment_id == payment.pk
    assert 'data-refundable="' not in body
    assert 'data-field="refundable" data-value="90.00"' in body


def test_actions_offered_follow_status_and_capabilities(op_client, mock):
    def offered(payment: Payment) -> set[str]:
        body = op_client.get(_url("payment-detail", payment.pk)).content.decode()
        return {a for a in ("refund", "capture", "cancel", "sync") if f'data-action="{a}"' in body}

    assert offered(_paid(mock)) == {"refund", "sync"}
    assert offered(_authorized(mock)) == {"capture", "cancel", "sync"}
    assert offered(services.create_payment(amount="1.00", currency="USD", provider="mock")) == {
        "cancel"
    }
    full = _paid(mock)
    services.create_refund(payment=full)
    assert offered(full) == {"sync"}


def test_sandbox_capabilities_are_respected(op_client):
    payment = create_test_payment(provider="sandbox", process=True)
    body = op_client.get(_url("payment-detail", payment.pk)).content.decode()
    assert ('data-action="refund"' in body) is bool(payment.refundable_amount)


# -- refund -----------------------------------------------------------------------------


def test_partial_refund_through_the_service(op_client, operator, mock):
    payment = _paid(mock)
    response = op_client.post(
        _url("payment-refund", payment.pk), {"amount": "25.50", "reason": "broken"}
    )
    assert response.status_code == 302
    assert response["Location"] == _url("payment-detail", payment.pk)
    assert _messages(response) == [("success", "Refunded $25.50.")]
    payment = _fresh(payment)
    assert payment.status == "partially_refunded"
    assert payment.refunded_amount == D("25.50")
    refund = Refund.objects.get(payment=payment)
    assert refund.processed_by == operator
    assert refund.reason == "broken"
    assert mock.get_call_count("create_refund") == 1
    kinds = list(payment.ledger.values_list("kind", flat=True))
    assert kinds[-2:] == ["refund_requested", "refund_completed"]
    entry = AuditLog.objects.get(action="refund")
    assert entry.actor == operator
    assert entry.success
    assert entry.object_id == refund.pk
    assert entry.amount == D("25.50")
    assert entry.details["payment_id"] == payment.pk
    assert entry.details["source"] == "dashboard"
    # The ledger timeline shows it after the redirect.
    body = op_client.get(response["Location"]).content.decode()
    assert 'data-kind="refund_completed"' in body


@pytest.mark.parametrize(
    ("amount", "currency", "fragment"),
    [
        ("-5", "USD", "greater than zero"),
        ("0", "USD", "greater than zero"),
        ("abc", "USD", "not a decimal number"),
        ("", "USD", "required"),
        ("1e400", "USD", "34 significant digits"),
        ("NaN", "USD", "finite"),
        ("10.001", "USD", "more decimal places"),
        ("10.5", "JPY", "more decimal places"),
        ("100.01", "USD", "at most"),
        ("100000000000000", "USD", "at most"),
        ("99999999999999999", "USD", "less than"),
        ("1" * 45, "USD", "at most 40"),
    ],
)
def test_hostile_refund_amounts_are_refused_with_a_message(
    op_client, mock, amount, currency, fragment
):
    payment = _paid(mock, "100" if currency == "JPY" else "100.00", currency=currency)
    response = op_client.post(_url("payment-refund", payment.pk), {"amount": amount})
    assert response.status_code == 302
    assert response["Location"] == _url("payment-detail", payment.pk)
    levels = _messages(response)
    assert levels
    assert all(level == "error" for level, _ in levels)
    assert any(fragment in text for _, text in levels), levels
    assert not Refund.objects.exists()
    assert mock.get_call_count("create_refund") == 0
    assert _fresh(payment).refunded_amount == 0


def test_refund_over_the_remaining_balance_is_refused(op_client, mock):
    payment = _paid(mock)
    services.create_refund(payment=payment, amount="60.00")
    response = op_client.post(_url("payment-refund", payment.pk), {"amount": "50.00"})
    [(level, text)] = _messages(response)
    assert level == "error"
    assert "at most 40.00 USD" in text
    assert Refund.objects.count() == 1
    failed = AuditLog.objects.get(action="refund", success=False)
    assert failed.details["code"] == "refund_exceeds_captured"


def test_refund_reason_is_shown_escaped(op_client, mock):
    payment = _paid(mock)
    op_client.post(_url("payment-refund", payment.pk), {"amount": "1.00", "reason": XSS})
    body = op_client.get(_url("payment-detail", payment.pk)).content.decode()
    assert XSS not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body


def test_provider_refusal_is_an_error_message(op_client, mock):
    payment = _paid(mock)
    mock.set_exception("card_declined", "The bank said no")
    response = op_client.post(_url("payment-refund", payment.pk), {"amount": "5.00"})
    [(level, text)] = _messages(response)
    assert level == "error"
    assert "The bank said no" in text
    refund = Refund.objects.get()
    assert refund.status == "failed"
    assert _fresh(payment).refund_reserved_amount == 0
    assert payment.ledger.filter(kind="refund_failed").exists()


def test_provider_timeout_keeps_the_refund_and_it_can_be_sent_again(op_client, mock):
    payment = _paid(mock)
    mock.set_exception("provider_unavailable", "Timed out")
    response = op_client.post(_url("payment-refund", payment.pk), {"amount": "5.00"})
    [(level, text)] = _messages(response)
    assert level == "error"
    assert "Timed out" in text
    refund = Refund.objects.get()
    assert refund.status == "pending"
    body = op_client.get(_url("payment-detail", payment.pk)).content.decode()
    assert 'data-action="refund-process"' in body

    response = op_client.post(_url("payment-refund-process", payment.pk, refund.pk))
    assert _messages(response)[0][0] == "success"
    refund.refresh_from_db()
    assert refund.status == "completed"
    assert _fresh(payment).refunded_amount == D("5.00")
    # Both provider calls carried the same idempotency key.
    keys = {req.idempotency_key for name, req in mock.calls if name == "create_refund"}
    assert len(keys) == 1
    # Sending a completed refund again is an error message, not a 500.
    response = op_client.post(_url("payment-refund-process", payment.pk, refund.pk))
    assert _messages(response)[-1][0] == "error"
    # Another payment's id in the URL is a 404.
    other = _paid(mock)
    assert op_client.post(_url("payment-refund-process", other.pk, refund.pk)).status_code == 404


def test_refund_of_a_payment_that_cannot_be_refunded_is_an_error(op_client, mock):
    payment = _authorized(mock)
    response = op_client.post(_url("payment-refund", payment.pk), {"amount": "5.00"})
    [(level, text)] = _messages(response)
    assert level == "error"
    assert "authorized" in text
    assert not Refund.objects.exists()


# -- capture, cancel, sync --------------------------------------------------------------


def test_capture_in_full_and_in_part(op_client, operator, mock):
    payment = _authorized(mock)
    response = op_client.post(_url("payment-capture", payment.pk), {"amount": ""})
    assert _messages(response)[0][0] == "success"
    assert _fresh(payment).status == "completed"
    assert payment.ledger.filter(kind="capture").exists()
    entry = AuditLog.objects.get(action="payment.capture")
    assert entry.actor == operator
    assert entry.success

    partial = _authorized(mock)
    op_client.post(_url("payment-capture", partial.pk), {"amount": "20.00"})
    assert _fresh(partial).captured_amount == D("20.00")


@pytest.mark.parametrize(("amount", "fragment"), [("60.00", "at most"), ("x", "decimal")])
def test_capture_errors_are_messages(op_client, mock, amount, fragment):
    payment = _authorized(mock)
    response = op_client.post(_url("payment-capture", payment.pk), {"amount": amount})
    [(level, text)] = _messages(response)
    assert level == "error"
    assert fragment in text
    assert _fresh(payment).status == "authorized"


def test_capture_of_a_completed_payment_is_an_error_message(op_client, mock):
    payment = _paid(mock)
    response = op_client.post(_url("payment-capture", payment.pk))
    [(level, text)] = _messages(response)
    assert level == "error"
    assert "only authorized payments" in text
    assert AuditLog.objects.get(action="payment.capture").success is False


def test_cancel(op_client, mock):
    payment = _authorized(mock)
    response = op_client.post(_url("payment-cancel", payment.pk), {"reason": "customer asked"})
    assert _messages(response)[0][0] == "success"
    assert _fresh(payment).status == "cancelled"
    assert payment.ledger.filter(kind="cancellation").exists()
    assert mock.get_call_count("cancel_payment") == 1
    # Again: the service refuses, the page says so.
    response = op_client.post(_url("payment-cancel", payment.pk))
    assert _messages(response)[-1][0] == "error"


def test_sync(op_client, mock):
    payment = _authorized(mock)
    mock.set_next_result("captured")
    response = op_client.post(_url("payment-sync", payment.pk))
    [(level, text)] = _messages(response)
    assert level == "success"
    assert "completed" in text
    assert _fresh(payment).status == "completed"
    assert payment.ledger.filter(kind="capture").exists()


def test_provider_outage_on_sync_is_a_message(op_client, mock):
    payment = _paid(mock)
    mock.set_exception("provider_unavailable", "Try later")
    response = op_client.post(_url("payment-sync", payment.pk))
    [(level, text)] = _messages(response)
    assert level == "error"
    assert "Try later" in text
    assert AuditLog.objects.get(action="payment.sync").success is False


def test_detail_query_count_does_not_grow_with_history(op_client, mock):
    def count(payment: Payment) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert op_client.get(_url("payment-detail", payment.pk)).status_code == 200
        return len(queries)

    small = _paid(mock)
    services.create_refund(payment=small, amount="1.00")
    big = _paid(mock)
    for _ in range(6):
        op_client.post(_url("payment-refund", big.pk), {"amount": "1.00", "reason": "r"})
    assert count(big) == count(small)


# -- concurrency (PostgreSQL) -----------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_full_refunds_refund_once(operator, mock):
    payment = _paid(mock)
    barrier = threading.Barrier(2, timeout=30)
    statuses: list[Any] = []

    def submit() -> None:
        client = Client()
        client.force_login(operator)
        try:
            barrier.wait()
            response = client.post(_url("payment-refund", payment.pk), {"amount": "100.00"})
            statuses.append((response.status_code, _messages(response)))
        except BaseException as exc:  # pragma: no cover - reported below
            statuses.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(statuses) == 2, statuses
    assert all(isinstance(s, tuple) for s in statuses), statuses
    levels = sorted(messages[0][0] for _, messages in statuses)
    assert levels == ["error", "success"]
    assert Refund.objects.filter(payment=payment).count() == 1
    assert _fresh(payment).refunded_amount == D("100.00")
