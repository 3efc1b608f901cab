"""The return view forwards only the query parameters the provider declares."""

import pytest

from paydesk import services
from paydesk.types import NextAction, PaymentResult, ProviderStatus


@pytest.mark.django_db
def test_unknown_query_parameters_never_reach_the_provider(client, mock, monkeypatch):
    mock.set_next_result(
        PaymentResult(
            status=ProviderStatus.REQUIRES_ACTION,
            provider_payment_id="mock_pi_1",
            next_action=NextAction(type="redirect", redirect_url="https://provider.example/"),
        )
    )
    payment = services.create_payment(amount="10.00", currency="USD", provider="mock")
    payment = services.process_payment(payment=payment)
    assert payment.status == "requires_action"

    monkeypatch.setattr(type(mock), "return_params", frozenset({"session"}))
    client.get(f"/paydesk/return/{payment.pk}/?session=s1&payment_method=pm_evil")

    (confirm,) = [request for name, request in mock.calls if name == "confirm_payment"]
    assert dict(confirm.params) == {"session": "s1"}
