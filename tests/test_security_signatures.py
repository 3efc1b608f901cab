"""Webhook signature verifiers: real HMACs and RSA signatures, official vectors, SDK cross-checks.

Vectors come from /work/shared/docs/providers.md (Stripe [LOCAL], iyzico's two official
vectors from its PHP SDK sample, NOWPayments [LOCAL], PayPal's CRC sample) and, for the
nested NOWPayments payload and JavaScript number formatting, from node v20's own
``JSON.stringify`` (the script is quoted next to the vector).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time

import pytest
import stripe
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from paydesk.exceptions import ConfigurationError, SignatureVerificationError
from paydesk.security import signatures as sig_module
from paydesk.security.signatures import (
    HMACVerifier,
    IyzicoWebhookVerifier,
    NowPaymentsVerifier,
    PayPalWebhookVerifier,
    SandboxWebhookVerifier,
    StripeSignatureVerifier,
    get_header,
)

NOW = 1_700_000_000


def assert_no_leak(exc: BaseException, *expected: str) -> None:
    """The error message must never contain a signature paydesk computed."""
    for value in expected:
        assert value not in str(exc)


# --- get_header ------------------------------------------------------------------------------


def test_get_header_matches_any_case_and_meta_names():
    assert get_header({"stripe-signature": "a"}, "Stripe-Signature") == "a"
    assert get_header({"STRIPE-SIGNATURE": "b"}, "Stripe-Signature") == "b"
    assert get_header({"HTTP_STRIPE_SIGNATURE": "c"}, "Stripe-Signature") == "c"
    assert get_header({"Other": "x"}, "Stripe-Signature") is None


# --- HMACVerifier ----------------------------------------------------------------------------


def _hex(secret: str, message: bytes, algo=hashlib.sha256) -> str:
    return hmac.new(secret.encode(), message, algo).hexdigest()


def test_hmac_hex_sha256_body_only_with_prefix():
    verifier = HMACVerifier("s3cret", header="X-Hub-Signature-256", prefix="sha256=")
    body = b'{"action":"opened"}'
    header = verifier.sign(body)
    assert header == "sha256=" + _hex("s3cret", body)
    verifier.verify(body, {"x-hub-signature-256": header})
    with pytest.raises(SignatureVerificationError, match="does not match") as err:
        verifier.verify(body + b" ", {"X-Hub-Signature-256": header})
    assert_no_leak(err.value, header, header.removeprefix("sha256="))
    with pytest.raises(SignatureVerificationError, match="does not start with"):
        verifier.verify(body, {"X-Hub-Signature-256": header.removeprefix("sha256=")})


def test_hmac_base64_sha512():
    verifier = HMACVerifier("k", header="X-Sig", algorithm="sha512", encoding="base64")
    body = "héllo".encode()
    expected = base64.b64encode(hmac.new(b"k", body, hashlib.sha512).digest()).decode()
    assert verifier.sign(body) == expected
    verifier.verify(body, {"X-Sig": expected})
    with pytest.raises(SignatureVerificationError, match="not valid base64"):
        verifier.verify(body, {"X-Sig": "***"})


def test_hmac_hex_is_case_insensitive_and_rejects_non_hex():
    verifier = HMACVerifier("k", header="X-Sig")
    verifier.verify(b"x", {"X-Sig": verifier.sign(b"x").upper()})
    with pytest.raises(SignatureVerificationError, match="not valid hex"):
        verifier.verify(b"x", {"X-Sig": "zz"})


def test_hmac_missing_header():
    with pytest.raises(SignatureVerificationError, match="X-Sig header is missing"):
        HMACVerifier("k", header="X-Sig").verify(b"x", {})


def test_hmac_rotation_accepts_any_configured_secret():
    old, new = HMACVerifier("old", header="X-Sig"), HMACVerifier("new", header="X-Sig")
    both = HMACVerifier(["new", "old"], header="X-Sig")
    both.verify(b"x", {"X-Sig": old.sign(b"x")})
    both.verify(b"x", {"X-Sig": new.sign(b"x")})
    assert both.sign(b"x") == new.sign(b"x")  # signs with the first (current) secret
    with pytest.raises(SignatureVerificationError):
        HMACVerifier("other", header="X-Sig").verify(b"x", {"X-Sig": old.sign(b"x")})


def test_hmac_with_timestamp_header():
    verifier = HMACVerifier("k", header="X-Sig", timestamp_header="X-Ts", tolerance=300)
    body = b'{"a":1}'
    headers = verifier.sign_headers(body, timestamp=NOW)
    assert headers == {"X-Sig": _hex("k", f"{NOW}.".encode() + body), "X-Ts": str(NOW)}
    verifier.verify(body, headers, now=NOW + 300)
    with pytest.raises(SignatureVerificationError, match="old, beyond the 300 s tolerance"):
        verifier.verify(body, headers, now=NOW + 301)
    with pytest.raises(SignatureVerificationError, match="in the future"):
        verifier.verify(body, headers, now=NOW - 301)
    # The timestamp is signed: moving it breaks the signature.
    with pytest.raises(SignatureVerificationError, match="does not match"):
        verifier.verify(body, {**headers, "X-Ts": str(NOW + 1)}, now=NOW)
    with pytest.raises(SignatureVerificationError, match="not a Unix timestamp"):
        verifier.verify(body, {"X-Sig": headers["X-Sig"], "X-Ts": "soon"}, now=NOW)


def test_hmac_custom_signed_payload():
    verifier = HMACVerifier(
        "k", header="X-Sig", timestamp_header="X-Ts", signed_payload="v0:{timestamp}:{body}"
    )
    headers = verifier.sign_headers(b"B", timestamp=NOW)
    assert headers["X-Sig"] == _hex("k", f"v0:{NOW}:B".encode())
    verifier.verify(b"B", headers, now=NOW)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"secret": ""}, "empty"),
        ({"secret": []}, "No HMAC secret"),
        ({"secret": ["ok", None]}, "empty or not a string"),
        ({"secret": "k", "algorithm": "md5"}, "algorithm"),
        ({"secret": "k", "encoding": "base32"}, "encoding"),
        ({"secret": "k", "signed_payload": "{timestamp}"}, "exactly once"),
        ({"secret": "k", "signed_payload": "{timestamp}.{body}"}, "no timestamp_header"),
        ({"secret": "k", "tolerance": -1}, "tolerance"),
    ],
)
def test_hmac_configuration_errors(kwargs, message):
    secret = kwargs.pop("secret")
    with pytest.raises(ConfigurationError, match=message):
        HMACVerifier(secret, header="X-Sig", **kwargs)


# --- Stripe ----------------------------------------------------------------------------------

STRIPE_BODY = b'{"id":"evt_test_1","object":"event","type":"payment_intent.succeeded"}'
STRIPE_SECRET = "whsec_test_secret"
STRIPE_SIG = "871acfe933554b446cc41d791076dd56a10c0553cc61aafbeb881d0082b45043"


def test_stripe_local_vector_from_providers_md():
    verifier = StripeSignatureVerifier(STRIPE_SECRET)
    assert verifier.sign(STRIPE_BODY, timestamp=NOW) == f"t={NOW},v1={STRIPE_SIG}"
    verifier.verify(STRIPE_BODY, f"t={NOW},v1={STRIPE_SIG}", now=NOW)
    # An extra bogus v1 (another secret's signature) does not matter.
    verifier.verify(STRIPE_BODY, f"t={NOW},v1={STRIPE_SIG},v1=deadbeef", now=NOW)
    verifier.verify(STRIPE_BODY, f"t={NOW},v1=deadbeef,v0=abc,v1={STRIPE_SIG}", now=NOW)
    verifier.verify(STRIPE_BODY.decode(), f"t={NOW}, v1={STRIPE_SIG}", now=NOW)


def test_stripe_paydesk_signature_is_accepted_by_the_sdk():
    verifier = StripeSignatureVerifier(STRIPE_SECRET)
    header = verifier.sign(STRIPE_BODY)
    assert stripe.WebhookSignature.verify_header(STRIPE_BODY, header, STRIPE_SECRET, 300)
    # And the SDK refuses what paydesk would refuse.
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(STRIPE_BODY + b" ", header, STRIPE_SECRET, 300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(STRIPE_BODY, header, "whsec_other", 300)


def test_stripe_sdk_signature_is_accepted_by_paydesk():
    header = stripe.WebhookSignature.generate_signature_header(
        STRIPE_BODY.decode(), STRIPE_SECRET, timestamp=NOW
    )
    assert header == f"t={NOW},v1={STRIPE_SIG}"
    StripeSignatureVerifier(STRIPE_SECRET).verify(STRIPE_BODY, header, now=NOW + 10)
    # The SDK's own primitive, the way verify_header computes it.
    computed = stripe.WebhookSignature._compute_signature(
        f"{NOW}.{STRIPE_BODY.decode()}", STRIPE_SECRET
    )
    StripeSignatureVerifier(STRIPE_SECRET).verify(STRIPE_BODY, f"t={NOW},v1={computed}", now=NOW)


@settings(max_examples=60, deadline=None)
@given(
    body=st.text(max_size=200),
    secret=st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40).filter(
        lambda s: s.strip()
    ),
    timestamp=st.integers(min_value=1, max_value=4_000_000_000),
)
def test_stripe_agrees_with_the_sdk_in_both_directions(body, secret, timestamp):
    ours = StripeSignatureVerifier(secret, tolerance=None)
    header = ours.sign(body.encode(), timestamp=timestamp)
    assert stripe.WebhookSignature.verify_header(body, header, secret, tolerance=None)
    sdk_header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp)
    assert sdk_header == header
    ours.verify(body.encode(), sdk_header)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "header is missing"),
        ("", "header is missing"),
        ("garbage", "no readable t="),
        ("t=abc,v1=00", "no readable t="),
        (f"v1={STRIPE_SIG}", "no readable t="),
        (f"t={NOW}", "no v1= signature"),
        (f"t={NOW},v0={STRIPE_SIG}", "no v1= signature"),
        (f"t={NOW},v1=deadbeef", "No Stripe-Signature signature matches"),
        (f"t={NOW + 1},v1={STRIPE_SIG}", "No Stripe-Signature signature matches"),
        (f"t={NOW},v1=é", "No Stripe-Signature signature matches"),
    ],
)
def test_stripe_rejections(header, message):
    verifier = StripeSignatureVerifier(STRIPE_SECRET)
    with pytest.raises(SignatureVerificationError, match=message) as err:
        verifier.verify(STRIPE_BODY, header, now=NOW)
    assert_no_leak(err.value, STRIPE_SIG)


def test_stripe_tampered_body_and_wrong_secret():
    header = f"t={NOW},v1={STRIPE_SIG}"
    with pytest.raises(SignatureVerificationError):
        StripeSignatureVerifier(STRIPE_SECRET).verify(
            STRIPE_BODY.replace(b"1", b"2"), header, now=NOW
        )
    with pytest.raises(SignatureVerificationError):
        StripeSignatureVerifier("whsec_other").verify(STRIPE_BODY, header, now=NOW)


def test_stripe_stale_and_future_timestamps():
    verifier = StripeSignatureVerifier(STRIPE_SECRET, tolerance=300)
    header = f"t={NOW},v1={STRIPE_SIG}"
    verifier.verify(STRIPE_BODY, header, now=NOW + 300)
    with pytest.raises(SignatureVerificationError, match="301 s old"):
        verifier.verify(STRIPE_BODY, header, now=NOW + 301)
    # Stricter than the SDK (which only refuses old timestamps): far-future is refused too.
    verifier.verify(STRIPE_BODY, header, now=NOW - 300)
    with pytest.raises(SignatureVerificationError, match="in the future"):
        verifier.verify(STRIPE_BODY, header, now=NOW - 301)
    assert stripe.WebhookSignature.verify_header(
        STRIPE_BODY, verifier.sign(STRIPE_BODY, int(time.time()) + 3600), STRIPE_SECRET, 300
    )
    # tolerance=None: no timestamp check at all (replaying stored deliveries in tests).
    StripeSignatureVerifier(STRIPE_SECRET, tolerance=None).verify(STRIPE_BODY, header, now=NOW * 2)


def test_stripe_signature_is_checked_before_the_timestamp():
    # As in the SDK: a stale delivery with a bad signature reports the signature.
    with pytest.raises(SignatureVerificationError, match="No Stripe-Signature signature"):
        StripeSignatureVerifier(STRIPE_SECRET).verify(STRIPE_BODY, f"t={NOW},v1=00", now=NOW * 2)


def test_stripe_rotation_several_secrets_and_several_signatures():
    old, new = "whsec_old", "whsec_new"
    verifier = StripeSignatureVerifier([new, old])
    for secret in (old, new):
        verifier.verify(STRIPE_BODY, verifier.sign(STRIPE_BODY, NOW, secret=secret), now=NOW)
    # Stripe sends one v1 per active secret; any one matching is enough.
    old_sig = verifier.sign(STRIPE_BODY, NOW, secret=old).split("v1=")[1]
    StripeSignatureVerifier(old).verify(STRIPE_BODY, f"t={NOW},v1=ab,v1={old_sig}", now=NOW)


def test_stripe_verify_request_reads_the_header_in_any_form():
    verifier = StripeSignatureVerifier(STRIPE_SECRET, tolerance=None)
    header = f"t={NOW},v1={STRIPE_SIG}"
    for headers in (
        {"Stripe-Signature": header},
        {"stripe-signature": header},
        {"HTTP_STRIPE_SIGNATURE": header},
    ):
        verifier.verify_request(STRIPE_BODY, headers)
    with pytest.raises(SignatureVerificationError, match="missing"):
        verifier.verify_request(STRIPE_BODY, {"Paydesk-Sandbox-Signature": header})


def test_stripe_configuration_errors():
    for bad in ("", "  ", [], [STRIPE_SECRET, ""]):
        with pytest.raises(ConfigurationError):
            StripeSignatureVerifier(bad)


# --- sandbox ---------------------------------------------------------------------------------


def test_sandbox_uses_stripes_scheme_under_its_own_header():
    verifier = SandboxWebhookVerifier(["whsec_sb_new", "whsec_sb_old"], tolerance=300)
    body = b'{"id":"evt_sb_1","type":"payment.succeeded"}'
    header = verifier.sign(body, timestamp=NOW)
    assert header == StripeSignatureVerifier("whsec_sb_new").sign(body, timestamp=NOW)
    verifier.verify_request(body, {"Paydesk-Sandbox-Signature": header}, now=NOW)
    with pytest.raises(SignatureVerificationError, match="Paydesk-Sandbox-Signature header"):
        verifier.verify_request(body, {"Stripe-Signature": header}, now=NOW)
    with pytest.raises(SignatureVerificationError):
        verifier.verify_request(body + b"x", {"Paydesk-Sandbox-Signature": header}, now=NOW)
    old = SandboxWebhookVerifier("whsec_sb_old").sign(body)
    verifier.verify_request(body, {"paydesk-sandbox-signature": old})


# --- iyzico ----------------------------------------------------------------------------------

IYZICO_SECRET = "sandbox-UuLnD7wZa0a3DmytfIrwHQqAMfqCNJrs"
IYZICO_HPP = {
    "iyziEventType": "CHECKOUT_FORM_AUTH",
    "iyziPaymentId": "22483975",
    "token": "e828c62d-fd12-4b1a-ad5a-380f15fe6596",
    "paymentConversationId": "conversationId",
    "status": "SUCCESS",
}
IYZICO_HPP_SIG = "4031c575763486a2d2bf3f7ace0baebfcd6bed65393ab4df3fe80c00d5fd6878"
IYZICO_DIRECT = {
    "iyziEventType": "API_AUTH",
    "paymentId": "22484059",
    "paymentConversationId": "conversationId",
    "status": "SUCCESS",
}
IYZICO_DIRECT_SIG = "92c7a72b7741bc83eb696066605c894778c87297b2c88d6037670666230e18ae"


def test_iyzico_official_vectors():
    verifier = IyzicoWebhookVerifier(IYZICO_SECRET)
    assert verifier.sign(IYZICO_HPP) == IYZICO_HPP_SIG
    assert verifier.sign(IYZICO_DIRECT) == IYZICO_DIRECT_SIG
    assert verifier.verify(IYZICO_HPP, IYZICO_HPP_SIG) is True
    assert verifier.verify(IYZICO_DIRECT, IYZICO_DIRECT_SIG) is True
    assert verifier.signed_fields(IYZICO_HPP)[2] == "token"
    assert "token" not in verifier.signed_fields(IYZICO_DIRECT)


def test_iyzico_real_payloads_as_bytes_with_extra_fields_and_numeric_ids():
    payload = {
        **IYZICO_DIRECT,
        "paymentId": 22484059,  # a JSON number in the body
        "merchantId": 3397,
        "iyziReferenceCode": "ref",
        "iyziEventTime": 1700000000000,
        "iyziPaymentId": 22484059,
    }
    body = json.dumps(payload).encode()
    verifier = IyzicoWebhookVerifier(IYZICO_SECRET)
    assert verifier.verify(body, IYZICO_DIRECT_SIG)
    assert verifier.verify(body.decode(), IYZICO_DIRECT_SIG.upper())
    verifier.verify_request(body, {"x-iyz-signature-v3": IYZICO_DIRECT_SIG})


def test_iyzico_mismatch_returns_false_and_verify_or_raise_raises():
    verifier = IyzicoWebhookVerifier(IYZICO_SECRET)
    tampered = {**IYZICO_HPP, "status": "FAILURE"}
    assert verifier.verify(tampered, IYZICO_HPP_SIG) is False
    assert verifier.verify(IYZICO_HPP, "") is False
    assert verifier.verify(IYZICO_HPP, "not-hex") is False
    assert verifier.verify(b"not json", IYZICO_HPP_SIG) is False
    assert verifier.verify(b"[1, 2]", IYZICO_HPP_SIG) is False
    assert verifier.verify({"status": "SUCCESS"}, IYZICO_HPP_SIG) is False
    assert IyzicoWebhookVerifier("sandbox-other").verify(IYZICO_HPP, IYZICO_HPP_SIG) is False
    with pytest.raises(SignatureVerificationError, match="does not match") as err:
        verifier.verify_or_raise(tampered, IYZICO_HPP_SIG)
    assert_no_leak(err.value, verifier.sign(tampered))
    with pytest.raises(SignatureVerificationError, match="no usable 'paymentId'"):
        verifier.verify_or_raise({"iyziEventType": "API_AUTH", "status": "SUCCESS"}, "00")
    with pytest.raises(SignatureVerificationError, match="X-Iyz-Signature-V3 header is missing"):
        verifier.verify_request(json.dumps(IYZICO_HPP).encode(), {"X-Iyz-Signature": "v1"})


def test_iyzico_rotation():
    verifier = IyzicoWebhookVerifier(["sandbox-new", IYZICO_SECRET])
    assert verifier.verify(IYZICO_HPP, IYZICO_HPP_SIG)


IYZICO_PROVIDERS = {
    "sandbox": {"BACKEND": "paydesk.providers.sandbox.SandboxProvider", "OPTIONS": {}},
    "iyzico": {
        "BACKEND": "paydesk.providers.iyzico.IyzicoProvider",
        "OPTIONS": {"API_KEY": "sandbox-api", "SECRET_KEY": IYZICO_SECRET},
    },
}


def test_iyzico_secret_comes_from_settings_lazily(monkeypatch):
    verifier = IyzicoWebhookVerifier()  # constructed before settings say anything
    with override_settings(PAYDESK={"PROVIDERS": IYZICO_PROVIDERS}):
        assert verifier.verify(IYZICO_HPP, IYZICO_HPP_SIG)
    monkeypatch.setenv("TEST_IYZICO_SECRET", IYZICO_SECRET)
    from paydesk.conf import env

    providers = {
        "tr": {
            "BACKEND": "myproject.payments.IyzicoBackend",
            "OPTIONS": {"SECRET_KEY": env("TEST_IYZICO_SECRET")},
        }
    }
    with override_settings(PAYDESK={"PROVIDERS": providers}):
        assert verifier.verify(IYZICO_DIRECT, IYZICO_DIRECT_SIG)


def test_iyzico_without_any_secret_is_a_configuration_error(monkeypatch):
    monkeypatch.delenv("TEST_IYZICO_SECRET", raising=False)
    from paydesk.conf import env

    verifier = IyzicoWebhookVerifier()
    with pytest.raises(ConfigurationError, match="no secret key"):
        verifier.verify(IYZICO_HPP, IYZICO_HPP_SIG)  # not a silent False
    unset = {
        "iyzico": {
            "BACKEND": "paydesk.providers.iyzico.IyzicoProvider",
            "OPTIONS": {"SECRET_KEY": env("TEST_IYZICO_SECRET")},
        }
    }
    with override_settings(PAYDESK={"PROVIDERS": unset}), pytest.raises(ConfigurationError):
        verifier.verify_or_raise(IYZICO_HPP, IYZICO_HPP_SIG)


# --- NOWPayments -----------------------------------------------------------------------------

NP_SECRET = "test_ipn_secret"
NP_BODY = (
    '{"actually_paid":0,"created_at":"2021-04-12T14:22:54.942Z","order_description":'
    '"Apple Macbook Pro 2019 x 1","order_id":"2","outcome_amount":1131.7812095,'
    '"outcome_currency":"trx","pay_address":"0xd1cDE08A07cD25adEbEd35c3867a59228C09B606",'
    '"pay_amount":155.38559757,"pay_currency":"mana","payment_id":5077125051,'
    '"payment_status":"waiting","price_amount":170,"price_currency":"usd","purchase_id":'
    '"6084744717","updated_at":"2021-04-12T14:23:06.244Z"}'
)
NP_SIG = (
    "29111f602032aa7596fba251a6b56ec9cc0788a75506d8348ee31fbedcca63fe"
    "fdac77e6debdc64326568d36418ac4321be9a9f24e0201b3628cb403de84a861"
)

# Computed with node v20:
#   const p = JSON.parse(body);
#   whitelist = JSON.stringify(p, Object.keys(p).sort());
#   recursive = JSON.stringify(sortObject(p));   // keys sorted at every depth
#   crypto.createHmac('sha512', 'test_ipn_secret').update(form).digest('hex')
NP_NESTED_BODY = (
    '{"payment_id":5077125051,"payment_status":"finished","pay_amount":0.00000123,'
    '"actually_paid":5e-7,"price_amount":1.0,"big":1e21,"fee":{"currency":"btc",'
    '"depositFee":0.0000005,"withdrawalFee":0,"serviceFee":1.50},"order_description":'
    '"\u00c7ay \u2615 \\u2028 na\u00efve","outcome_amount":12.340,'
    '"list":[{"pay_amount":2.0,"x":1}]}'
)
NP_NESTED_WHITELIST = (
    '{"actually_paid":5e-7,"big":1e+21,"fee":{},"list":[{"pay_amount":2}],'
    '"order_description":"\u00c7ay \u2615 \u2028 na\u00efve","outcome_amount":12.34,'
    '"pay_amount":0.00000123,"payment_id":5077125051,"payment_status":"finished",'
    '"price_amount":1}'
)
NP_NESTED_RECURSIVE = (
    '{"actually_paid":5e-7,"big":1e+21,"fee":{"currency":"btc","depositFee":5e-7,'
    '"serviceFee":1.5,"withdrawalFee":0},"list":[{"pay_amount":2,"x":1}],'
    '"order_description":"\u00c7ay \u2615 \u2028 na\u00efve","outcome_amount":12.34,'
    '"pay_amount":0.00000123,"payment_id":5077125051,"payment_status":"finished",'
    '"price_amount":1}'
)
NP_NESTED_WHITELIST_SIG = (
    "df35af14dab336d73f44671377c9c6a9bcee71d33c525b09bd6aac022ca94ac3"
    "153bad51eedb4e24dba791a9404b6e06e2bfe5c819d0f4d6204c126fe841d311"
)
NP_NESTED_RECURSIVE_SIG = (
    "60cea74c62d9112a45e7d5f22fe33255cc6e2df8674ce4a3e7a82003ab8a4fc3"
    "70f1b93abe58c1711ea7e3c99107dc87794881bfed23697df151e5e83d6d0816"
)


def test_nowpayments_vector_from_providers_md():
    verifier = NowPaymentsVerifier(NP_SECRET)
    assert verifier.sign(NP_BODY) == NP_SIG
    verifier.verify(NP_BODY.encode(), NP_SIG)
    verifier.verify_request(NP_BODY.encode(), {"X-NOWPAYMENTS-SIG": NP_SIG.upper()})
    # The same payload with keys in another order and with whitespace: same signature.
    shuffled = json.dumps(dict(reversed(json.loads(NP_BODY).items())), indent=2)
    verifier.verify(shuffled, NP_SIG)


def test_nowpayments_nested_payload_both_forms_match_javascript():
    forms = NowPaymentsVerifier.canonical_forms(NP_NESTED_BODY)
    assert forms[0] == NP_NESTED_RECURSIVE
    assert NP_NESTED_WHITELIST in forms
    verifier = NowPaymentsVerifier(NP_SECRET)
    assert verifier.sign(NP_NESTED_BODY) == NP_NESTED_RECURSIVE_SIG
    verifier.verify(NP_NESTED_BODY, NP_NESTED_RECURSIVE_SIG)
    verifier.verify(NP_NESTED_BODY, NP_NESTED_WHITELIST_SIG)


def test_nowpayments_numbers_also_accepted_as_written():
    # A sender that kept the number text (e.g. 1.0, 5e-07) instead of JavaScript's formatting.
    body = '{"b":1.0,"a":5e-07}'
    raw_form = '{"a":5e-07,"b":1.0}'
    assert NowPaymentsVerifier.canonical_forms(body)[:2] == ['{"a":5e-7,"b":1}', raw_form]
    digest = hmac.new(NP_SECRET.encode(), raw_form.encode(), hashlib.sha512).hexdigest()
    NowPaymentsVerifier(NP_SECRET).verify(body, digest)


# node v20: JSON.stringify(n) for each literal.
JS_NUMBERS = [
    ("1.0", "1"),
    ("5e-7", "5e-7"),
    ("0.00000123", "0.00000123"),
    ("1e21", "1e+21"),
    ("123456789012345678901", "123456789012345680000"),
    ("-0", "0"),
    ("-0.0", "0"),
    ("1.5e300", "1.5e+300"),
    ("1e-7", "1e-7"),
    ("0.000001", "0.000001"),
    ("2.5e3", "2500"),
    ("1131.7812095", "1131.7812095"),
    ("155.38559757", "155.38559757"),
    ("0.30000000000000004", "0.30000000000000004"),
    ("5e-324", "5e-324"),
    ("1.7976931348623157e308", "1.7976931348623157e+308"),
    ("123e-20", "1.23e-18"),
    ("1e20", "100000000000000000000"),
    ("4.35", "4.35"),
    ("0.000001234567", "0.000001234567"),
    ("-12.50", "-12.5"),
    ("1E400", "null"),
]


@pytest.mark.parametrize(("literal", "javascript"), JS_NUMBERS)
def test_nowpayments_number_formatting_is_javascripts(literal, javascript):
    assert sig_module._js_number(literal) == javascript


def test_nowpayments_strings_are_escaped_like_javascript():
    body = '{"s":"quote\\" back\\\\ nl\\n tab\\t ctl\\u0001 slash/ lone\\ud800 pair\\ud83d\\ude00"}'
    assert NowPaymentsVerifier.canonical_forms(body)[0] == (
        '{"s":"quote\\" back\\\\ nl\\n tab\\t ctl\\u0001 slash/ lone\\ud800 pair\U0001f600"}'
    )


def test_nowpayments_keys_sort_by_utf16_code_units_like_javascript():
    # U+FF21 sorts before U+1F600 in UTF-16 (0xFF21 < 0xD83D is false: 0xD83D < 0xFF21).
    body = json.dumps({"\uff21": 1, "\U0001f600": 2, "a": 3}, ensure_ascii=False)
    assert NowPaymentsVerifier.canonical_forms(body)[0] == '{"a":3,"\U0001f600":2,"\uff21":1}'


def test_nowpayments_rejections():
    verifier = NowPaymentsVerifier(NP_SECRET)
    with pytest.raises(SignatureVerificationError, match="does not match") as err:
        verifier.verify(NP_BODY.replace("waiting", "finished"), NP_SIG)
    assert_no_leak(err.value, verifier.sign(NP_BODY.replace("waiting", "finished")))
    with pytest.raises(SignatureVerificationError, match="does not match"):
        NowPaymentsVerifier("other").verify(NP_BODY, NP_SIG)
    with pytest.raises(SignatureVerificationError, match="does not match"):
        verifier.verify(NP_BODY, "xyz")
    with pytest.raises(SignatureVerificationError, match="header is missing"):
        verifier.verify_request(NP_BODY, {})
    with pytest.raises(SignatureVerificationError, match="not valid JSON"):
        verifier.verify("{not json", NP_SIG)
    with pytest.raises(SignatureVerificationError, match="not valid JSON"):
        verifier.verify('{"a":NaN}', NP_SIG)
    with pytest.raises(SignatureVerificationError, match="not a JSON object"):
        verifier.verify("[1]", NP_SIG)


def test_nowpayments_secret_is_trimmed_and_rotates():
    NowPaymentsVerifier(f"  {NP_SECRET}\n").verify(NP_BODY, NP_SIG)
    NowPaymentsVerifier(["new-secret", NP_SECRET]).verify(NP_BODY, NP_SIG)


# --- PayPal ----------------------------------------------------------------------------------

PP_BODY = b'{"id":"WH-TEST","event_type":"PAYMENT.CAPTURE.COMPLETED"}'
PP_WEBHOOK_ID = "WEBHOOKID123"
CERT_URL = "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594"
VALID_FROM = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
VALID_TO = dt.datetime(2033, 1, 1, tzinfo=dt.UTC)
PP_NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC).timestamp()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject_cn, key, issuer_cn, issuer_key, *, ca, start=VALID_FROM, end=VALID_TO, san=None):
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject_cn))
        .issuer_name(_name(issuer_cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(*certs) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


class PKI:
    """A test root CA, an intermediate, PayPal-like leaves, and an untrusted look-alike."""

    def __init__(self):
        new_key = lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)  # noqa: E731
        self.root_key, self.inter_key, self.leaf_key = new_key(), new_key(), new_key()
        self.root = _cert("Test Root CA", self.root_key, "Test Root CA", self.root_key, ca=True)
        self.inter = _cert(
            "Test Intermediate", self.inter_key, "Test Root CA", self.root_key, ca=True
        )
        cn = "messageverificationcerts.sandbox.paypal.com"
        self.leaf_direct = _cert(cn, self.leaf_key, "Test Root CA", self.root_key, ca=False)
        self.leaf = _cert(cn, self.leaf_key, "Test Intermediate", self.inter_key, ca=False)
        self.expired = _cert(
            cn,
            self.leaf_key,
            "Test Root CA",
            self.root_key,
            ca=False,
            end=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        )
        self.not_paypal = _cert(
            "evil.example.com", self.leaf_key, "Test Root CA", self.root_key, ca=False
        )
        self.san_only = _cert(
            "Signing key",
            self.leaf_key,
            "Test Root CA",
            self.root_key,
            ca=False,
            san=["messageverificationcerts.paypal.com"],
        )
        evil_root_key = new_key()
        self.evil_root = _cert(
            "Test Root CA", evil_root_key, "Test Root CA", evil_root_key, ca=True
        )
        self.forged = _cert(cn, self.leaf_key, "Test Root CA", evil_root_key, ca=False)
        # The intermediate's key signing a leaf while the intermediate is not a CA.
        self.non_ca_inter = _cert(
            "Test Intermediate", self.inter_key, "Test Root CA", self.root_key, ca=False
        )


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


class Fetcher:
    def __init__(self, pem: bytes):
        self.pem = pem
        self.calls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        return self.pem


def _paypal_headers(
    pki, body=PP_BODY, *, webhook_id=PP_WEBHOOK_ID, algo="SHA256withRSA", url=CERT_URL
):
    transmission_id, transmission_time = "tid-1", "2024-01-01T00:00:00Z"
    message = PayPalWebhookVerifier.expected_message(
        transmission_id=transmission_id,
        transmission_time=transmission_time,
        webhook_id=webhook_id,
        body=body,
    )
    digest = hashes.SHA256() if algo == "SHA256withRSA" else hashes.SHA1()
    signature = pki.leaf_key.sign(message, padding.PKCS1v15(), digest)
    return {
        "PAYPAL-TRANSMISSION-ID": transmission_id,
        "PAYPAL-TRANSMISSION-TIME": transmission_time,
        "PAYPAL-TRANSMISSION-SIG": base64.b64encode(signature).decode(),
        "PAYPAL-CERT-URL": url,
        "PAYPAL-AUTH-ALGO": algo,
    }


def _verifier(pki, pem, **kwargs):
    fetcher = Fetcher(pem)
    kwargs.setdefault("trusted_roots", [pki.root])
    return PayPalWebhookVerifier(PP_WEBHOOK_ID, cert_fetcher=fetcher, **kwargs), fetcher


def test_paypal_crc_vector_from_providers_md():
    message = PayPalWebhookVerifier.expected_message(
        transmission_id="tid-1",
        transmission_time="2024-01-01T00:00:00Z",
        webhook_id="WEBHOOKID123",
        body=PP_BODY,
    )
    assert message == b"tid-1|2024-01-01T00:00:00Z|WEBHOOKID123|3391999205"


def test_paypal_valid_delivery_through_an_intermediate(pki):
    verifier, fetcher = _verifier(pki, _pem(pki.leaf, pki.inter))
    headers = _paypal_headers(pki)
    verifier.verify(PP_BODY, headers, now=PP_NOW)
    verifier.verify_request(PP_BODY, {k.lower(): v for k, v in headers.items()}, now=PP_NOW)
    assert fetcher.calls == [CERT_URL]  # fetched once, then cached


def test_paypal_leaf_signed_by_the_root_and_sha1(pki):
    verifier, _ = _verifier(pki, _pem(pki.leaf_direct))
    verifier.verify(PP_BODY, _paypal_headers(pki, algo="SHA1withRSA"), now=PP_NOW)
    verifier.verify(PP_BODY, _paypal_headers(pki), now=PP_NOW)


def test_paypal_san_names_count(pki):
    verifier, _ = _verifier(pki, _pem(pki.san_only))
    verifier.verify(PP_BODY, _paypal_headers(pki), now=PP_NOW)


def test_paypal_tampered_body_and_wrong_webhook_id(pki):
    verifier, _ = _verifier(pki, _pem(pki.leaf, pki.inter))
    headers = _paypal_headers(pki)
    with pytest.raises(SignatureVerificationError, match="does not match"):
        verifier.verify(PP_BODY.replace(b"COMPLETED", b"REFUNDED"), headers, now=PP_NOW)
    with pytest.raises(SignatureVerificationError, match="check the webhook id"):
        verifier.verify(PP_BODY, _paypal_headers(pki, webhook_id="OTHER"), now=PP_NOW)
    with pytest.raises(SignatureVerificationError, match="does not match"):
        verifier.verify(PP_BODY, {**headers, "PAYPAL-TRANSMISSION-ID": "tid-2"}, now=PP_NOW)
    # Rotation: several webhook ids configured, any one matches.
    rotated = PayPalWebhookVerifier(
        ["NEWID", PP_WEBHOOK_ID],
        trusted_roots=[pki.root],
        cert_fetcher=Fetcher(_pem(pki.leaf, pki.inter)),
    )
    rotated.verify(PP_BODY, headers, now=PP_NOW)


def test_paypal_untrusted_chain_is_refused(pki):
    # A look-alike root with the same name: the signature check, not the name, decides.
    verifier, _ = _verifier(pki, _pem(pki.forged, pki.evil_root))
    with pytest.raises(SignatureVerificationError, match="does not chain to a trusted root"):
        verifier.verify(PP_BODY, _paypal_headers(pki), now=PP_NOW)
    # The intermediate is not served and not trusted.
    verifier, _ = _verifier(pki, _pem(pki.leaf))
    with pytest.raises(SignatureVerificationError, match="trusted root"):
        verifier.verify(PP_BODY, _paypal_headers(pki), now=PP_NOW)
    # An "intermediate" without CA rights cannot issue.
    verifier, _ = _verifier(pki, _pem(pki.leaf, pki.non_ca_inter))
    with pytest.raises(SignatureVerificationError, match="trusted root"):
        verifier.verify(PP_BODY, _paypal_headers(pki), now=PP_NOW)
    # Trusting only the evil root refuses the real chain.
    verifier, _ = _verifier(pki, _pem(pki.leaf, pki.inter), trusted_roots=[pki.evil_root])
    with pytest.raises(SignatureVerificationError, match="trusted root"):
        verifier.verify(PP_BODY, _paypal_headers(pki), now=PP_NOW)


def test_paypal_default_trust_store_is_certifi_and_refuses_a_private_ca(pki):
    verifier = PayPalWebhookVerifier(PP_WEBHOOK_ID, cert_fetcher=Fetcher(_pem(pki.leaf, pki.inter)))
    with pytest.raises(SignatureVerificationError, match="trusted root"):
        verifier.verify(PP_BODY, _paypal_headers(pki), now=PP_NOW)


def test_paypal_expired_and_not_yet_valid_certificates(pki):
    verifier, _ = _verifier(pki, _pem(pki.expired))
    with pytest.raises(SignatureVerificationError, match="expired or not yet valid"):
        verifier.verify(PP_BODY, _paypal_headers(pki), now=PP_NOW)
    verifier, _ = _verifier(pki, _pem(pki.leaf, pki.inter))
    with pytest.raises(SignatureVerificationError, match="expired or not yet valid"):
        verifier.verify(PP_BODY, _paypal_headers(pki), now=VALID_FROM.timestamp() - 1)
    # The verifier's clock is injectable too.
    clocked = PayPalWebhookVerifier(
        PP_WEBHOOK_ID,
        trusted_roots=[pki.root],
        cert_fetcher=Fetcher(_pem(pki.leaf, pki.inter)),
        now=lambda: VALID_TO.timestamp() + 1,
    )
    with pytest.raises(SignatureVerificationError, match="expired"):
        clocked.verify(PP_BODY, _paypal_headers(pki))


def test_paypal_certificate_must_be_issued_to_paypal(pki):
    verifier, _ = _verifier(pki, _pem(pki.not_paypal))
    with pytest.raises(SignatureVerificationError, match="not issued to a PayPal host"):
        verifier.verify(PP_BODY, _paypal_headers(pki), now=PP_NOW)
    relaxed, _ = _verifier(pki, _pem(pki.not_paypal), allowed_cert_subjects=(".example.com",))
    relaxed.verify(PP_BODY, _paypal_headers(pki), now=PP_NOW)


@pytest.mark.parametrize(
    "url",
    [
        "http://api.sandbox.paypal.com/v1/notifications/certs/CERT-1",
        "https://evil.example.com/cert.pem",
        "https://paypal.com.evil.example.com/cert.pem",
        "https://evilpaypal.com/cert.pem",
        "https://api.paypal.com@evil.example.com/cert.pem",
        "https://evil.example.com/?https://api.paypal.com/",
        "file:///etc/ssl/cert.pem",
        "not a url",
        "https://[::1/",
    ],
)
def test_paypal_refuses_foreign_cert_urls_before_fetching(pki, url):
    verifier, fetcher = _verifier(pki, _pem(pki.leaf, pki.inter))
    with pytest.raises(SignatureVerificationError, match="refusing to fetch"):
        verifier.verify(PP_BODY, _paypal_headers(pki, url=url), now=PP_NOW)
    assert fetcher.calls == []


def test_paypal_header_and_fetch_problems(pki):
    verifier, _ = _verifier(pki, _pem(pki.leaf, pki.inter))
    headers = _paypal_headers(pki)
    for name in headers:
        missing = {k: v for k, v in headers.items() if k != name}
        with pytest.raises(SignatureVerificationError, match=f"{name} header is missing"):
            verifier.verify(PP_BODY, missing, now=PP_NOW)
    with pytest.raises(SignatureVerificationError, match="not supported"):
        verifier.verify(PP_BODY, {**headers, "PAYPAL-AUTH-ALGO": "MD5withRSA"}, now=PP_NOW)
    with pytest.raises(SignatureVerificationError, match="not valid base64"):
        verifier.verify(PP_BODY, {**headers, "PAYPAL-TRANSMISSION-SIG": "!!"}, now=PP_NOW)

    def broken(url: str) -> bytes:
        raise OSError("connection refused")

    offline = PayPalWebhookVerifier(PP_WEBHOOK_ID, trusted_roots=[pki.root], cert_fetcher=broken)
    with pytest.raises(SignatureVerificationError, match="Could not fetch"):
        offline.verify(PP_BODY, headers, now=PP_NOW)
    garbage, _ = _verifier(pki, b"not a certificate")
    with pytest.raises(SignatureVerificationError, match="Could not fetch or read"):
        garbage.verify(PP_BODY, headers, now=PP_NOW)


def test_paypal_non_rsa_certificate_is_refused(pki):
    ec_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert(
        "messageverificationcerts.paypal.com", ec_key, "Test Root CA", pki.root_key, ca=False
    )
    verifier, _ = _verifier(pki, _pem(leaf))
    with pytest.raises(SignatureVerificationError, match="no RSA key"):
        verifier.verify(PP_BODY, _paypal_headers(pki), now=PP_NOW)


def test_paypal_configuration_errors(pki):
    with pytest.raises(ConfigurationError, match="trusted_roots is empty"):
        PayPalWebhookVerifier(PP_WEBHOOK_ID, trusted_roots=[])
    with pytest.raises(ConfigurationError):
        PayPalWebhookVerifier("", trusted_roots=[pki.root])


def test_paypal_default_fetcher_uses_httpx_without_redirects(monkeypatch):
    import httpx

    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["url"] = str(request.url)
        return httpx.Response(302, headers={"Location": "https://evil.example.com/"})

    real_client = httpx.Client

    def client(**kwargs):
        seen["kwargs"] = kwargs
        return real_client(transport=httpx.MockTransport(handler), **kwargs)

    monkeypatch.setattr(httpx, "Client", client)
    with pytest.raises(httpx.HTTPStatusError):
        sig_module._httpx_fetch(CERT_URL)
    assert seen["url"] == CERT_URL
    assert seen["kwargs"]["follow_redirects"] is False
    assert seen["kwargs"]["timeout"] > 0


def test_the_package_exports_every_tool_lazily():
    import subprocess
    import sys

    import paydesk.security as security

    for name in security.__all__:
        assert getattr(security, name) is not None
    assert set(security.__all__) == set(security._EXPORTS)
    assert "RateLimiter" in dir(security)
    with pytest.raises(AttributeError):
        security.NoSuchThing
    # Importing the signature verifiers must not need Django's app registry (providers
    # import them while apps load).
    code = (
        "import paydesk.security.signatures as s, sys; "
        "assert 'paydesk.models' not in sys.modules, 'models imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
