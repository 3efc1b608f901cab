"""Every provider call the services make is timed and its errors counted."""

import pytest

from paydesk import metrics, services

prometheus_client = pytest.importorskip("prometheus_client")


def _sample(name, **labels):
    return metrics.registry.get_sample_value(name, labels) or 0


@pytest.mark.django_db
def test_payment_and_refund_calls_are_timed_and_errors_counted(mock):
    before = _sample(
        "paydesk_provider_call_duration_seconds_count", provider="mock", operation="create_payment"
    )
    payment = services.create_payment(amount="10.00", currency="USD", provider="mock")
    services.process_payment(payment=payment)
    services.create_refund(payment=payment, amount="1.00")
    after = _sample(
        "paydesk_provider_call_duration_seconds_count", provider="mock", operation="create_payment"
    )
    assert after == before + 1
    assert (
        _sample(
            "paydesk_provider_call_duration_seconds_count",
            provider="mock",
            operation="create_refund",
        )
        >= 1
    )

    mock.set_exception("provider_unavailable")
    failing = services.create_payment(amount="10.00", currency="USD", provider="mock")
    with pytest.raises(Exception):  # noqa: PT011 - the retryable error is re-raised
        services.process_payment(payment=failing)
    assert (
        _sample(
            "paydesk_provider_call_errors_total",
            provider="mock",
            operation="create_payment",
            code="provider_unavailable",
        )
        >= 1
    )
