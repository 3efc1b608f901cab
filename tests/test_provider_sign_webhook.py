"""PaymentProvider.sign_webhook: the one place a provider's signature is made (the dashboard's
test deliveries and the CLI's sign-webhook both use it)."""

import pytest

from paydesk.exceptions import NotSupported
from paydesk.providers.iyzico import IyzicoProvider
from paydesk.providers.nowpayments import NowPaymentsProvider
from paydesk.providers.paypal import PayPalProvider
from paydesk.providers.stripe import StripeProvider

BODY = b'{"id":"evt_1"}'


@pytest.mark.parametrize(
    "provider",
    [
        StripeProvider(alias="s", options={"SECRET_KEY": "sk_test_1", "WEBHOOK_SECRET": "whsec_1"}),
        NowPaymentsProvider(alias="n", options={"API_KEY": "k", "IPN_SECRET": "ipn"}),
        IyzicoProvider(alias="i", options={"API_KEY": "k", "SECRET_KEY": "sec"}),
    ],
    ids=["stripe", "nowpayments", "iyzico"],
)
def test_what_a_provider_signs_its_own_verification_accepts(provider) -> None:
    test_headers, body = provider.build_test_webhook(event_id="paydesk_test_1")
    headers = provider.sign_webhook(body)
    expected = ["Content-Type", provider.webhook_signature_header]
    assert list(headers) == list(test_headers) == expected
    assert provider.verify_webhook(body, headers).event_id


def test_without_the_secret_or_the_key_it_refuses_with_the_reason() -> None:
    stripe = StripeProvider(alias="s", options={"SECRET_KEY": "sk_test_1"})
    paypal = PayPalProvider(alias="p", options={"CLIENT_ID": "a", "CLIENT_SECRET": "b"})
    with pytest.raises(NotSupported) as no_secret:
        stripe.sign_webhook(BODY)
    with pytest.raises(NotSupported) as not_ours:
        paypal.sign_webhook(BODY)
    assert no_secret.value.message == stripe.test_webhook_unavailable()
    assert not_ours.value.message == paypal.test_webhook_unavailable()
    assert stripe.webhook_secret_option == "WEBHOOK_SECRET"
    assert paypal.webhook_secret_option == ""
