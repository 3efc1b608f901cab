from decimal import Decimal

import pytest

from paydesk import services
from paydesk.testing import assert_ledger_kinds


@pytest.mark.django_db
def test_sandbox_happy_path(django_capture_on_commit_callbacks, recorder):
    with django_capture_on_commit_callbacks(execute=True):
        payment = services.create_payment(amount="19.99", currency="USD")
        payment = services.process_payment(payment=payment, payment_method_token="pm_sandbox_visa")
    assert payment.status == "completed"
    assert payment.captured_amount == Decimal("19.99")
    with django_capture_on_commit_callbacks(execute=True):
        refund = services.create_refund(payment=payment, amount="5.00", reason="x")
    assert refund.status == "completed"
    payment.refresh_from_db()
    assert payment.status == "partially_refunded"
    assert_ledger_kinds(
        payment,
        [
            "payment_created",
            "submitted",
            "authorization",
            "capture",
            "refund_requested",
            "refund_completed",
        ],
    )
    assert recorder.names == ["payment_created", "payment_confirmed", "payment_refunded"]
