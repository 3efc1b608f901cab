"""The Django admin: read-mostly pages, and actions that go through the services."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.admin.utils import quote
from django.contrib.messages import get_messages
from django.urls import reverse

from paydesk import services
from paydesk.models import Payment, Refund, SandboxCharge, TransactionLog
from paydesk.providers.registry import get_payment_provider

pytestmark = pytest.mark.django_db

D = Decimal


def _url(model: str, view: str, *args: object) -> str:
    return reverse(f"admin:paydesk_{model}_{view}", args=args)


def _pay(token: str | None = "pm_sandbox_visa", *, process: bool = True, **kwargs) -> Payment:
    """A sandbox payment; ``token=None`` leaves it waiting on the hosted checkout page."""
    kwargs.setdefault("amount", "100.00")
    kwargs.setdefault("currency", "USD")
    payment = services.create_payment(**kwargs)
    if not process:
        return payment
    return services.process_payment(payment=payment, payment_method_token=token)


def _messages(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def _act(client, action: str, *payments: Payment):
    return client.post(
        _url("payment", "changelist"),
        {"action": action, "_selected_action": [p.pk for p in payments]},
    )


@pytest.fixture
def data(user):
    """One of everything, so every admin page has a row to show."""
    payment = _pay(user=user, reference="order-1", customer_email="alice@example.com")
    refund = services.create_refund(payment=payment, amount="10.00", reason="damaged")
    method = services.add_payment_method(
        user=user, provider="sandbox", provider_token="pm_sandbox_visa", last4="4242"
    )
    return {
        "payment": payment,
        "refund": refund,
        "entry": TransactionLog.objects.filter(payment=payment, kind="capture").get(),
        "method": method,
        "charge": SandboxCharge.objects.get(payment_ref=payment.pk),
    }


# -- pages -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("payment", "payment"),
        ("refund", "refund"),
        ("transactionlog", "entry"),
        ("paymentmethod", "method"),
        ("sandboxcharge", "charge"),
    ],
)
def test_changelist_and_change_pages_render(admin_client, data, model, key):
    changelist = admin_client.get(_url(model, "changelist"))
    assert changelist.status_code == 200
    assert changelist.context["cl"].result_count >= 1

    change = admin_client.get(_url(model, "change", quote(data[key].pk)))
    assert change.status_code == 200
    assert change.context["original"] == data[key]


def test_payment_change_page_shows_its_ledger_and_refunds(admin_client, data):
    payment = data["payment"]
    body = admin_client.get(_url("payment", "change", payment.pk)).content.decode()
    assert data["refund"].pk in body
    for key in ("created", "capture:", f"refund:{data['refund'].pk}:completed"):
        assert key in body


def test_payment_search_and_filters(admin_client, user):
    completed = _pay(user=user, reference="order-search-me")
    failed = _pay("pm_sandbox_declined", reference="order-declined")
    pending = _pay(process=False, reference="order-pending", customer_email="carol@example.com")
    url = _url("payment", "changelist")

    def found(query: str) -> set[str]:
        response = admin_client.get(f"{url}?{query}")
        assert response.status_code == 200
        return {p.pk for p in response.context["cl"].result_list}

    assert found("q=order-search-me") == {completed.pk}
    assert found(f"q={failed.pk}") == {failed.pk}
    assert found(f"q={completed.provider_payment_id}") == {completed.pk}
    assert found("q=carol@example.com") == {pending.pk}
    assert found("q=alice@example.com") == {completed.pk}  # user__email
    assert found("status__exact=failed") == {failed.pk}
    assert found("status__exact=pending") == {pending.pk}
    assert found("provider__exact=sandbox&status__exact=completed") == {completed.pk}
    assert found("capture_method__exact=automatic") == {completed.pk, failed.pk, pending.pk}
    year = completed.created_at.year
    assert found(f"created_at__year={year}") == {completed.pk, failed.pk, pending.pk}
    assert found("q=nothing-matches-this") == set()


def test_other_changelists_search_and_filter(admin_client, data):
    payment = data["payment"]

    def found(model: str, query: str) -> int:
        response = admin_client.get(f"{_url(model, 'changelist')}?{query}")
        assert response.status_code == 200
        return response.context["cl"].result_count

    assert found("refund", f"q={payment.pk}") == 1
    assert found("refund", "status__exact=completed") == 1
    assert found("refund", "status__exact=failed") == 0
    assert found("transactionlog", f"q={payment.pk}") == payment.ledger.count()
    assert found("transactionlog", "kind__exact=capture") == 1
    assert found("paymentmethod", "q=4242") == 1
    assert found("paymentmethod", "is_default__exact=1") == 1
    assert found("sandboxcharge", "status__exact=captured") == 1
    assert found("sandboxcharge", "scenario__exact=declined") == 0


# -- actions ---------------------------------------------------------------------------


def test_payment_actions_offered(admin_client, data):
    response = admin_client.get(_url("payment", "changelist"))
    offered = {name for name, _ in response.context["action_form"].fields["action"].choices}
    assert offered - {""} == {"capture", "cancel", "sync", "refund_remaining"}


def test_capture_action(admin_client):
    first = _pay(capture=False)
    second = _pay(capture=False, amount="40.00")
    assert (first.status, second.status) == ("authorized", "authorized")

    response = _act(admin_client, "capture", first, second)

    assert response.status_code == 302
    assert _messages(response) == [("success", "Captured: 2")]
    for payment, amount in ((first, D("100.00")), (second, D("40.00"))):
        payment.refresh_from_db()
        assert (payment.status, payment.captured_amount) == ("completed", amount)
        assert payment.ledger.filter(kind="capture").count() == 1
        assert SandboxCharge.objects.get(payment_ref=payment.pk).status == "captured"


def test_cancel_action(admin_client):
    payment = _pay(capture=False)

    response = _act(admin_client, "cancel", payment)

    assert _messages(response) == [("success", "Cancelled: 1")]
    payment.refresh_from_db()
    assert payment.status == "cancelled"
    entry = payment.ledger.get(kind="cancellation")
    assert entry.amount is None
    assert SandboxCharge.objects.get(payment_ref=payment.pk).status == "cancelled"


def test_sync_action(admin_client):
    payment = _pay(None)  # hosted checkout: waits for the customer
    assert payment.status == "requires_action"
    sandbox = get_payment_provider("sandbox")
    sandbox.complete_checkout(
        provider_payment_id=payment.provider_payment_id, card_number="4242424242424242"
    )

    response = _act(admin_client, "sync", payment)

    assert _messages(response) == [("success", "Synced: 1")]
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert payment.ledger.filter(kind="capture").count() == 1


def test_refund_remaining_action(admin_client, admin_user):
    payment = _pay()
    services.create_refund(payment=payment, amount="25.00")

    response = _act(admin_client, "refund_remaining", payment)

    assert _messages(response) == [("success", "Refunded: 1")]
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("refunded", D("100.00"))
    assert payment.refund_reserved_amount == D(0)
    last = Refund.objects.filter(payment=payment, processed_by=admin_user).get()
    assert (last.amount, last.status, last.reason) == (D("75.00"), "completed", "admin")
    assert payment.ledger.filter(kind="refund_completed").count() == 2
    assert SandboxCharge.objects.get(payment_ref=payment.pk).refunded_amount == D("100.00")


def test_action_errors_are_reported_and_write_nothing(admin_client):
    pending = _pay(process=False)
    ledger_before = list(pending.ledger.values_list("id", flat=True))

    response = _act(admin_client, "refund_remaining", pending)

    messages = _messages(response)
    assert len(messages) == 1
    level, text = messages[0]
    assert level == "error"
    assert text.startswith(f"{pending.pk}: ")
    assert "pending" in text
    assert not Refund.objects.filter(payment=pending).exists()
    assert list(pending.ledger.values_list("id", flat=True)) == ledger_before
    pending.refresh_from_db()
    assert pending.status == "pending"


def test_an_action_over_a_mixed_selection_reports_each_outcome(admin_client):
    authorized = _pay(capture=False)
    completed = _pay()

    response = _act(admin_client, "capture", authorized, completed)

    messages = _messages(response)
    errors = [text for level, text in messages if level == "error"]
    assert len(errors) == 1
    assert errors[0].startswith(f"{completed.pk}: ")
    assert ("success", "Captured: 1") in messages
    authorized.refresh_from_db()
    completed.refresh_from_db()
    assert authorized.status == "completed"
    assert completed.ledger.filter(kind="capture").count() == 1


def test_cancel_action_refuses_a_completed_payment(admin_client):
    payment = _pay()
    response = _act(admin_client, "cancel", payment)
    assert [level for level, _ in _messages(response)] == ["error"]
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert not payment.ledger.filter(kind="cancellation").exists()


# -- what staff cannot do --------------------------------------------------------------


def test_ledger_entries_cannot_be_added_changed_or_deleted(admin_client, data):
    entry = data["entry"]
    before = (entry.kind, entry.amount, entry.message)
    count = TransactionLog.objects.count()

    assert admin_client.get(_url("transactionlog", "add")).status_code == 403
    assert admin_client.post(_url("transactionlog", "add"), {"kind": "note"}).status_code == 403
    change = _url("transactionlog", "change", entry.pk)
    response = admin_client.post(change, {"amount": "1.00", "message": "rewritten"})
    assert response.status_code == 403
    assert admin_client.get(_url("transactionlog", "delete", entry.pk)).status_code == 403
    assert admin_client.post(_url("transactionlog", "delete", entry.pk)).status_code == 403

    changelist = admin_client.get(_url("transactionlog", "changelist"))
    assert changelist.context["has_add_permission"] is False
    offered = changelist.context["action_form"]
    assert offered is None or "delete_selected" not in dict(offered.fields["action"].choices)
    response = admin_client.post(
        _url("transactionlog", "changelist"),
        {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"},
    )
    assert TransactionLog.objects.count() == count
    entry.refresh_from_db()
    assert (entry.kind, entry.amount, entry.message) == before


def test_payments_cannot_be_added_or_deleted_in_the_admin(admin_client, data):
    payment = data["payment"]
    count = Payment.objects.count()

    assert admin_client.get(_url("payment", "add")).status_code == 403
    assert admin_client.post(_url("payment", "add"), {"amount": "1.00"}).status_code == 403
    assert admin_client.post(_url("payment", "delete", payment.pk)).status_code == 403
    changelist = admin_client.get(_url("payment", "changelist"))
    assert changelist.context["has_add_permission"] is False
    assert Payment.objects.count() == count


def test_payment_change_form_cannot_rewrite_amounts(admin_client, data):
    payment = data["payment"]
    admin_client.post(
        _url("payment", "change", payment.pk),
        {"status": "refunded", "amount": "1.00", "captured_amount": "0"},
    )
    payment.refresh_from_db()
    assert (payment.status, payment.amount, payment.captured_amount) == (
        "partially_refunded",
        D("100.00"),
        D("100.00"),
    )


def test_refunds_cannot_be_added_in_the_admin(admin_client):
    assert admin_client.get(_url("refund", "add")).status_code == 403


# -- query count -----------------------------------------------------------------------


def test_payment_changelist_has_no_n_plus_one(
    admin_client, django_user_model, django_assert_max_num_queries, django_assert_num_queries
):
    url = _url("payment", "changelist")

    def make(n: int, prefix: str) -> None:
        for i in range(n):
            buyer = django_user_model.objects.create_user(
                username=f"{prefix}{i}", email=f"{prefix}{i}@example.com"
            )
            _pay(user=buyer, reference=f"{prefix}-{i}")

    make(5, "a")
    admin_client.get(url)  # warm caches (content types, session)
    with django_assert_max_num_queries(15) as few:
        assert admin_client.get(url).context["cl"].result_count == 5
    make(15, "b")
    with django_assert_num_queries(len(few.captured_queries)):
        response = admin_client.get(url)
    assert response.context["cl"].result_count == 20
    assert len(response.context["cl"].result_list) == 20
