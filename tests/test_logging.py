"""paydesk.logging: redaction on by default, structured payment records, JSON, setup.

What these tests prove: ``redact`` removes Luhn-valid card numbers in every usual spelling
(and leaves other long numbers), CVCs by their keys, Stripe keys, webhook and client
secrets, JWTs, Authorization values and key=value secrets, and the exact values of the
secrets configured in ``PAYDESK`` (``env()`` resolved); a record is redacted in its message,
arguments, extras, stack and traceback, keeping the message template when it can and
dropping ``exc_info`` when the traceback held a secret; the filter is installed on the
``paydesk`` logger by ``ready()`` and covers child loggers created later, without silencing
Python's last-resort output; ``FILTER_SENSITIVE_DATA`` switches it off. ``PaymentLogger``
records carry the payment's fields and the request id; ``JSONFormatter`` writes them as one
JSON object; ``setup_django_logging`` builds a working ``LOGGING`` from ``PAYDESK["LOGGING"]``
(run for real in a child process). Last, a whole flow (create, process, refund, a sandbox
webhook, a provider exception and failing receivers with secrets in their messages) logs
plenty and leaks none of the configured secrets into caplog, a JSON handler or a text
handler with tracebacks.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from paydesk import services, signals
from paydesk.conf import env
from paydesk.exceptions import ProviderUnavailable
from paydesk.logging import (
    JSONFormatter,
    PaymentLogger,
    RedactionFilter,
    RequestIdMiddleware,
    configured_secrets,
    connect_lifecycle_logging,
    current_request_id,
    disconnect_lifecycle_logging,
    get_logger,
    install_redaction,
    redact,
    redact_record,
    redact_value,
    request_id_context,
    setup_django_logging,
)
from paydesk.testing import MockPaymentProvider

ROOT = Path(__file__).resolve().parent.parent

VISA = "4242424242424242"
MASTERCARD = "5555555555554444"
AMEX = "378282246310005"


def record(msg, *args, exc_info=None, name="paydesk.test", **extra):
    rec = logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, exc_info)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


# -- redact() --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"card {VISA}",
        "card 4242 4242 4242 4242.",
        "card=4242-4242-4242-4242&x=1",
        f"'number': '{MASTERCARD}'",
        "amex 3782 822463 10005",
        f"pan:{AMEX}",
        "4242 4242 4242 4242 123",  # the card, then a CVC-looking group
        f"tok_{VISA}",
    ],
)
def test_card_numbers_are_masked_to_the_last_four(text):
    out = redact(text, ())
    digits = "".join(ch for ch in out if ch.isdigit())
    for card in (VISA, MASTERCARD, AMEX):
        assert card not in digits
    assert "[CARD ****" in out


@pytest.mark.parametrize(
    "text",
    [
        "4242424242424241",  # fails the Luhn check
        "order 1700000000123 at 12:00",  # a millisecond timestamp (not Luhn-valid)
        "id 42424242424242424242424",  # 23 digits: too long to be a card
        "sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "amount 19.99 USD, payment pay_01HX",
    ],
)
def test_other_numbers_are_left_alone(text):
    assert redact(text, ()) == text


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("cvc 123", "cvc "),
        ("CVV: 4567", "CVV: "),
        ("{'cvc': '314'}", "{'cvc': '"),
        ('"security_code":"999"', '"security_code":"'),
        ("card[cvc]=123", "card[cvc]="),
        ("cvv2=123", "cvv2="),
    ],
)
def test_cvcs_next_to_their_keys_are_removed(text, kept):
    out = redact(text, ())
    assert out.startswith(kept)
    assert "[REDACTED]" in out
    assert not any(group in out for group in ("123", "4567", "314", "999"))


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("key sk_live_51HabcDEFghiJKLmnoPQR", "51HabcDEFghiJKLmnoPQR"),
        ("key sk_test_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc"),
        ("restricted rk_live_abcdefghijkl", "abcdefghijkl"),
        ("signing with whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("client pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH", "YrKJUKribcBj"),
        (
            "Authorization: Bearer A21AAFEpH4PsADK7qSS7pSRsgzfENtu",
            "A21AAFEpH4PsADK7qSS7pSRsgzfENtu",
        ),
        ("{'authorization': 'IYZWSv2 YXBpS2V5OnNhbmRib3gtYWJj'}", "YXBpS2V5OnNhbmRib3gtYWJj"),
        ("headers {'x-api-key': 'NP-7H3K9-XXYZ'}", "NP-7H3K9-XXYZ"),
        ("Basic Y2xpZW50OnNlY3JldA==", "Y2xpZW50OnNlY3JldA=="),
        ("Api-Key live_ab12cd34ef56", "live_ab12cd34ef56"),
        ("GET /v1/status?api_key=ZXCVBNM12345&x=1", "ZXCVBNM12345"),
        ("login password: hunter2hunter2", "hunter2hunter2"),
        ('{"client_secret": "EL1tVxAjhT7cJimnz5-Nsx9k2reTKSVfErNQF"}', "EL1tVxAjhT7cJimnz"),
        ("PAYDESK_WEBHOOK_SECRET=s3cr3t-value", "s3cr3t-value"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N", "dozjgNryP4J3"),
    ],
)
def test_keys_tokens_and_authorization_values_are_removed(text, secret):
    out = redact(text, ())
    assert secret not in out
    assert "[REDACTED]" in out


def test_ordinary_words_after_scheme_names_are_kept():
    text = "Basic information is missing; the Bearer token expired"
    assert redact(text, ()) == text


def test_configured_secrets_come_from_paydesk_settings(monkeypatch):
    monkeypatch.setenv("PAYDESK_TEST_IYZICO_SECRET", "sandbox-iyzico-secret-123")
    paydesk = {
        "PROVIDERS": {
            "iyzico": {
                "BACKEND": "iyzico",
                "OPTIONS": {
                    "API_KEY": "sandbox-iyzico-api-key",
                    "SECRET_KEY": env("PAYDESK_TEST_IYZICO_SECRET"),
                    "PUBLISHABLE_KEY": "pk_test_public_value",
                    "IPN_SECRETS": ["ipn-old-secret-1", "ipn-new-secret-2"],
                    "PASSWORD": "short",  # too short to redact as a plain word
                    "BASE_URL": "https://sandbox-api.iyzipay.com",
                },
            }
        },
        "METRICS": {"TOKEN": "metrics-bearer-token"},
    }
    with override_settings(PAYDESK=paydesk):
        found = configured_secrets()
        text = (
            "iyzico answered for sandbox-iyzico-api-key / sandbox-iyzico-secret-123 "
            "ipn ipn-old-secret-1 ipn-new-secret-2 metrics metrics-bearer-token "
            "base https://sandbox-api.iyzipay.com pk pk_test_public_value short"
        )
        out = redact(text)
    assert "sandbox-iyzico-secret-123" in found  # env() resolved when used
    for secret in (
        "sandbox-iyzico-api-key",
        "sandbox-iyzico-secret-123",
        "ipn-old-secret-1",
        "ipn-new-secret-2",
        "metrics-bearer-token",
    ):
        assert secret not in out
    assert "https://sandbox-api.iyzipay.com" in out
    assert "pk_test_public_value" in out
    assert out.endswith("short")
    assert "paydesk-tests-not-secret" in configured_secrets()  # Django's SECRET_KEY


def test_redact_value_walks_containers_and_blanks_sensitive_keys():
    value = {
        "card": {"number": VISA, "cvc": "123", "exp_month": 12},
        "headers": [("Authorization", "Bearer abcdefghijklmnop")],
        "api_key": "anything",
        "amount": Decimal("19.99"),
        "pan_as_int": int(VISA),
        "note": None,
    }
    out = redact_value(value, ())
    assert out["card"]["cvc"] == "[REDACTED]"
    assert out["card"]["exp_month"] == 12
    assert VISA not in out["card"]["number"]
    assert out["headers"] == [("Authorization", "Bearer [REDACTED]")]
    assert out["api_key"] == "[REDACTED]"
    assert out["amount"] == Decimal("19.99")
    assert out["pan_as_int"] == "[CARD ****4242]"
    assert out["note"] is None


# -- records ---------------------------------------------------------------------------------


def test_a_record_keeps_its_template_when_redacting_the_arguments_is_enough():
    rec = record("charge failed for card %s (key %s) amount %s", VISA, "sk_live_abcdefghijkl", 5)
    redact_record(rec, ())
    assert rec.msg == "charge failed for card %s (key %s) amount %s"
    assert rec.getMessage() == (
        "charge failed for card [CARD ****4242] (key sk_live_[REDACTED]) amount 5"
    )


def test_a_record_falls_back_to_the_redacted_message_when_the_template_cannot_hold_it():
    rec = record("card %d", int(VISA))
    redact_record(rec, ())
    assert rec.getMessage() == "card [CARD ****4242]"
    assert rec.args == ()


def test_a_record_with_a_secret_in_its_template_is_redacted():
    rec = record(f"bad key sk_test_{'x' * 20} for %s", "pay_1")
    redact_record(rec, ())
    assert rec.getMessage() == "bad key sk_test_[REDACTED] for pay_1"


def test_extras_and_stack_info_are_redacted():
    rec = record(
        "call",
        paydesk={"payment_id": "pay_1", "request": {"cvc": "123", "number": VISA}},
        password="hunter2",
        headers={"Authorization": "Basic dXNlcjpwYXNzd29yZA=="},
    )
    rec.stack_info = f"Stack (most recent call last):\n  charge(card='{VISA}')"
    redact_record(rec, ())
    assert rec.paydesk == {
        "payment_id": "pay_1",
        "request": {"cvc": "[REDACTED]", "number": "[CARD ****4242]"},
    }
    assert rec.password == "[REDACTED]"
    assert rec.headers == {"Authorization": "[REDACTED]"}
    assert VISA not in rec.stack_info


def raised(exc):
    try:
        raise exc
    except type(exc):
        return sys.exc_info()


def test_a_traceback_with_a_secret_is_kept_only_as_redacted_text():
    secret = "whsec_" + "Q" * 30
    rec = record("provider failed", exc_info=raised(ProviderUnavailable(f"bad signature {secret}")))
    redact_record(rec, ())
    assert rec.exc_info is None  # nothing can format the original exception again
    assert "Traceback (most recent call last)" in rec.exc_text
    assert "ProviderUnavailable: bad signature whsec_[REDACTED]" in rec.exc_text
    formatted = logging.Formatter().format(rec)
    assert secret not in formatted
    assert "whsec_[REDACTED]" in formatted


def test_a_traceback_without_secrets_keeps_its_exception():
    info = raised(RuntimeError("receiver exploded"))
    rec = record("receiver failed", exc_info=info)
    redact_record(rec, ())
    assert rec.exc_info == info
    assert "RuntimeError: receiver exploded" in rec.exc_text


def test_a_record_is_redacted_once():
    rec = record("card %s", VISA)
    redact_record(rec, ())
    rec.msg = f"changed {VISA}"  # what a later handler might do: not our business any more
    redact_record(rec, ())
    assert VISA in rec.msg


# -- installed by default --------------------------------------------------------------------


def test_paydesk_loggers_are_redacted_by_default_even_when_created_later(caplog):
    late = logging.getLogger("paydesk.created_after_ready_for_this_test")
    with caplog.at_level(logging.INFO):
        logging.getLogger("paydesk").info("card %s", VISA)
        logging.getLogger("paydesk.services").warning("key sk_live_abcdefghijklmnop")
        late.error("cvc: 123 for %s", MASTERCARD)
    assert VISA not in caplog.text
    assert MASTERCARD not in caplog.text
    assert "sk_live_abcdefghijklmnop" not in caplog.text
    assert "cvc: [REDACTED] for [CARD ****4444]" in caplog.text


def test_redaction_comes_back_after_a_dictconfig_drops_the_handler(caplog):
    """``dictConfig`` (a second ``django.setup()``) replaces the paydesk logger's handlers
    but keeps logger filters: the next filtered record puts the redacting handler back."""
    top = logging.getLogger("paydesk")
    saved = list(top.handlers)
    top.handlers = [h for h in saved if type(h).__name__ != "_RedactingHandler"]
    try:
        with caplog.at_level(logging.INFO):
            logging.getLogger("paydesk.services").info("first record after the dictConfig")
            logging.getLogger("paydesk.born_after_the_dictconfig").info("card %s", VISA)
        assert type(top.handlers[0]).__name__ == "_RedactingHandler"
    finally:
        top.handlers = saved
    assert VISA not in caplog.text


def test_other_loggers_are_not_touched(caplog):
    with caplog.at_level(logging.INFO):
        logging.getLogger("thirdparty.lib").info("card %s", VISA)
    assert VISA in caplog.text


def test_filter_sensitive_data_false_turns_the_default_filter_off(caplog):
    with override_settings(PAYDESK={"LOGGING": {"FILTER_SENSITIVE_DATA": False}}):
        with caplog.at_level(logging.INFO):
            logging.getLogger("paydesk.services").info("card %s", VISA)
        explicit = record("card %s", VISA)
        RedactionFilter().filter(explicit)  # a filter named in LOGGING always redacts
    assert VISA in caplog.text
    assert VISA not in explicit.getMessage()


def test_install_redaction_is_idempotent_and_keeps_python_s_last_resort(monkeypatch):
    top = logging.getLogger("acmepay_isolated")
    top.propagate = False  # a hierarchy with no handler at all, as in a bare script
    child = logging.getLogger("acmepay_isolated.child")
    last = logging.Handler()
    seen = []
    last.emit = seen.append
    monkeypatch.setattr(logging, "lastResort", last)
    try:
        install_redaction("acmepay_isolated")
        install_redaction("acmepay_isolated")
        assert len(top.handlers) == 1
        assert len(top.filters) == 1
        assert len(child.filters) == 1
        child.warning("card %s", VISA)
    finally:
        top.handlers.clear()
        top.filters.clear()
        child.filters.clear()
        top.propagate = True
    assert [r.getMessage() for r in seen] == ["card [CARD ****4242]"]


def test_paydesk_modules_use_the_standard_library_logging():
    import paydesk.logging as paydesk_logging
    from paydesk import signals as paydesk_signals

    assert paydesk_signals.logging is logging
    assert paydesk_logging.logging is logging
    assert logging.__name__ == "logging"


# -- PaymentLogger ---------------------------------------------------------------------------


class FakePayment:
    pk = "pay_01TEST"
    provider = "stripe"
    amount = Decimal("19.90")
    currency = "EUR"
    status = "completed"
    reference = "order-42"
    attempt = 1


def test_payment_logger_records_carry_the_payment_fields(caplog):
    log = get_logger()
    assert isinstance(log, PaymentLogger)
    with caplog.at_level(logging.INFO, logger="paydesk"), request_id_context("req-123"):
        log.payment_created(FakePayment(), channel="web")
    [rec] = caplog.records
    assert rec.name == "paydesk"
    assert rec.getMessage() == "Payment pay_01TEST created: 19.90 EUR via stripe"
    assert rec.paydesk == {
        "event": "payment.created",
        "payment_id": "pay_01TEST",
        "provider": "stripe",
        "amount": "19.90",
        "currency": "EUR",
        "status": "completed",
        "reference": "order-42",
        "attempt": 1,
        "channel": "web",
        "request_id": "req-123",
    }
    assert rec.funcName == "test_payment_logger_records_carry_the_payment_fields"
    assert rec.pathname == __file__


def test_payment_logger_events(caplog):
    log = get_logger("paydesk.shop").bind(tenant="acme")

    class FakeRefund:
        pk = "re_1"
        payment_id = "pay_01TEST"
        payment = FakePayment()
        amount = Decimal("5.00")
        currency = "EUR"
        status = "pending"

    with caplog.at_level(logging.DEBUG, logger="paydesk.shop"):
        log.payment_confirmed(FakePayment())
        log.payment_failed(FakePayment(), "card_declined", "Your card was declined.")
        log.refund_created(FakeRefund())
        log.webhook_received("stripe", "payment_intent.succeeded", "evt_1")
        log.provider_call("stripe", "create_payment", 123.456, True)
        log.provider_call("stripe", "create_payment", 5000, False, error_code="timeout")
    events = [(r.levelname, r.paydesk["event"]) for r in caplog.records]
    assert events == [
        ("INFO", "payment.confirmed"),
        ("WARNING", "payment.failed"),
        ("INFO", "refund.created"),
        ("INFO", "webhook.received"),
        ("INFO", "provider.call"),
        ("WARNING", "provider.call"),
    ]
    assert all(r.paydesk["tenant"] == "acme" for r in caplog.records)
    failed = caplog.records[1].paydesk
    assert failed["error_code"] == "card_declined"
    refund = caplog.records[2].paydesk
    assert refund["refund_id"] == "re_1"
    assert refund["payment_id"] == "pay_01TEST"
    assert refund["amount"] == "5.00"
    call = caplog.records[4]
    assert call.paydesk["duration_ms"] == 123.5
    assert call.getMessage() == "Provider call stripe.create_payment succeeded in 123.5 ms"
    assert caplog.records[5].paydesk["error_code"] == "timeout"


def test_get_logger_outside_paydesk_gets_the_filter_too(caplog):
    with caplog.at_level(logging.INFO, logger="shop.payments"):
        get_logger("shop.payments").info("card %s", VISA)
    assert VISA not in caplog.text


# -- JSONFormatter ---------------------------------------------------------------------------


def test_json_formatter_writes_one_object_per_record():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    logger = logging.getLogger("paydesk.json_test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        get_logger("paydesk.json_test").payment_failed(
            FakePayment(), "processing_error", "upstream 502", when=Decimal("1.50")
        )
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("with a traceback")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines() if line)
    assert first["level"] == "WARNING"
    assert first["logger"] == "paydesk.json_test"
    assert first["message"] == "Payment pay_01TEST failed (processing_error): upstream 502"
    assert first["paydesk"]["amount"] == "19.90"
    assert first["paydesk"]["when"] == "1.50"
    assert first["timestamp"].endswith("+00:00")
    assert "ValueError: boom" in second["exception"]


# -- setup_django_logging --------------------------------------------------------------------


def test_setup_django_logging_builds_a_logging_dict():
    fragment = setup_django_logging({"LEVEL": "debug", "JSON": True, "FILE": "/var/log/pay.log"})
    assert fragment["version"] == 1
    assert fragment["disable_existing_loggers"] is False
    assert fragment["loggers"]["paydesk"] == {
        "handlers": ["paydesk_console", "paydesk_file"],
        "level": "DEBUG",
        "propagate": False,
    }
    file_handler = fragment["handlers"]["paydesk_file"]
    assert file_handler["class"] == "logging.handlers.WatchedFileHandler"
    assert file_handler["filename"] == "/var/log/pay.log"
    assert file_handler["formatter"] == "paydesk_json"
    assert file_handler["filters"] == ["paydesk_redact"]

    plain = setup_django_logging({"FILTER_SENSITIVE_DATA": False})
    assert list(plain["handlers"]) == ["paydesk_console"]
    assert plain["handlers"]["paydesk_console"]["filters"] == []
    assert plain["handlers"]["paydesk_console"]["formatter"] == "paydesk_text"
    assert plain["loggers"]["paydesk"]["level"] == "INFO"

    with override_settings(PAYDESK={"LOGGING": {"LEVEL": "WARNING"}}):
        assert setup_django_logging()["loggers"]["paydesk"]["level"] == "WARNING"


def test_setup_django_logging_in_a_settings_module_works_end_to_end(tmp_path):
    """A real project: LOGGING built in settings.py, Django set up, records in the file."""
    log_file = tmp_path / "paydesk.log"
    (tmp_path / "ops_settings.py").write_text(
        textwrap.dedent(
            f"""
            from tests.settings import *  # noqa
            from paydesk.logging import setup_django_logging

            PAYDESK = {{
                **PAYDESK,
                "PROVIDERS": {{
                    "sandbox": {{
                        "BACKEND": "paydesk.providers.sandbox.SandboxProvider",
                        "OPTIONS": {{"WEBHOOK_SECRET": "configured-webhook-secret-value"}},
                    }}
                }},
                "LOGGING": {{"LEVEL": "DEBUG", "JSON": True, "FILE": {str(log_file)!r}}},
            }}
            LOGGING = setup_django_logging(PAYDESK["LOGGING"])
            """
        )
    )
    script = textwrap.dedent(
        """
        import logging, django
        django.setup()
        logging.getLogger("paydesk.services").debug(
            "webhook secret configured-webhook-secret-value card %s", "4242 4242 4242 4242"
        )
        logging.getLogger("paydesk.late.module").info("Authorization: Bearer abcdefghijklmnop")
        """
    )
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ops_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT), str(ROOT / "example")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [line["logger"] for line in lines] == ["paydesk.services", "paydesk.late.module"]
    assert lines[0]["message"] == "webhook secret [REDACTED] card [CARD ****4242]"
    assert lines[1]["message"] == "Authorization: [REDACTED]"
    assert "configured-webhook-secret-value" not in done.stderr  # the console handler
    assert "abcdefghijklmnop" not in done.stderr
    assert "[CARD ****4242]" in done.stderr


# -- request ids -----------------------------------------------------------------------------


def test_request_id_middleware_sets_and_answers_the_id():
    seen = []

    def view(request):
        seen.append(current_request_id())
        return HttpResponse("ok")

    middleware = RequestIdMiddleware(view)
    response = middleware(RequestFactory().get("/", HTTP_X_REQUEST_ID="edge-abc.123"))
    assert response["X-Request-ID"] == "edge-abc.123"
    response = middleware(RequestFactory().get("/", HTTP_X_REQUEST_ID="<script>"))
    assert response["X-Request-ID"] != "<script>"
    assert len(response["X-Request-ID"]) == 32
    assert seen == ["edge-abc.123", response["X-Request-ID"]]
    assert current_request_id() is None


def test_request_id_middleware_async():
    seen = []

    async def view(request):
        seen.append(current_request_id())
        return HttpResponse("ok")

    middleware = RequestIdMiddleware(view)
    response = asyncio.run(middleware(RequestFactory().get("/", HTTP_X_REQUEST_ID="req-9")))
    assert response["X-Request-ID"] == "req-9"
    assert seen == ["req-9"]


# -- the whole flow --------------------------------------------------------------------------

WEBHOOK_SECRET = "whsec_flowTestSecret9f8e7d6c5b4a"
MOCK_SECRET_KEY = "sk_test_flowSecretKey0123456789"
MOCK_PASSWORD = "flow-password-Zq81!x"
ENV_API_KEY = "flow-env-api-key-7c1d2e3f"


@pytest.mark.django_db
def test_a_whole_flow_logs_no_configured_secret(
    caplog, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setenv("PAYDESK_FLOW_API_KEY", ENV_API_KEY)
    paydesk = {
        "DEFAULT_PROVIDER": "sandbox",
        "PROVIDERS": {
            "sandbox": {
                "BACKEND": "paydesk.providers.sandbox.SandboxProvider",
                "OPTIONS": {"WEBHOOK_DELIVERY": "inprocess", "WEBHOOK_SECRET": WEBHOOK_SECRET},
            },
            "mock": {
                "BACKEND": "paydesk.testing.MockPaymentProvider",
                "OPTIONS": {
                    "SECRET_KEY": MOCK_SECRET_KEY,
                    "PASSWORD": MOCK_PASSWORD,
                    "API_KEY": env("PAYDESK_FLOW_API_KEY"),
                },
            },
        },
        "WEBHOOKS": {"PROCESS": "inline"},
    }
    json_stream, text_stream = io.StringIO(), io.StringIO()
    json_handler = logging.StreamHandler(json_stream)
    json_handler.setFormatter(JSONFormatter())
    text_handler = logging.StreamHandler(text_stream)
    text_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(json_handler)
    root.addHandler(text_handler)

    def leaky_receiver(sender, **kwargs):
        raise RuntimeError(
            f"receiver misconfigured: webhook secret {WEBHOOK_SECRET}, "
            f"Authorization: Bearer {MOCK_SECRET_KEY}"
        )

    signals.webhook_received.connect(leaky_receiver, weak=False, dispatch_uid="leaky")
    connect_lifecycle_logging()
    connect_lifecycle_logging()  # idempotent
    log = get_logger("paydesk.flow")
    try:
        with override_settings(PAYDESK=paydesk), caplog.at_level(logging.DEBUG):
            with django_capture_on_commit_callbacks(execute=True):
                payment = services.create_payment(
                    amount="30.00", currency="USD", description=f"card {VISA} cvc 123"
                )
                log.payment_created(payment, card=VISA, cvc="123")
            with django_capture_on_commit_callbacks(execute=True):
                payment = services.process_payment(
                    payment=payment, payment_method_token="pm_sandbox_visa"
                )
            assert payment.status == "completed"
            with django_capture_on_commit_callbacks(execute=True):
                refund = services.create_refund(payment=payment, amount="10.00")
            log.refund_created(refund)

            from paydesk.providers import get_payment_provider

            mock = get_payment_provider("mock")
            assert isinstance(mock, MockPaymentProvider)
            mock.set_exception(
                ProviderUnavailable(
                    f"upstream 503 for key {MOCK_SECRET_KEY} (password={MOCK_PASSWORD}, "
                    f"x-api-key: {ENV_API_KEY})",
                    provider="mock",
                )
            )
            failing = services.create_payment(amount="12.00", currency="USD", provider="mock")
            try:
                services.process_payment(payment=failing)
            except ProviderUnavailable as exc:
                log.payment_failed(failing, exc.code, exc.message, exc_info=exc)
                logging.getLogger("paydesk.services").exception("provider call failed: %s", exc)
    finally:
        root.removeHandler(json_handler)
        root.removeHandler(text_handler)
        signals.webhook_received.disconnect(dispatch_uid="leaky")
        disconnect_lifecycle_logging()

    captured = {
        "caplog": caplog.text,
        "records": "\n".join(repr(vars(r)) for r in caplog.records),
        "json": json_stream.getvalue(),
        "text": text_stream.getvalue(),
    }
    # The flow did log, tracebacks included...
    for name, text in captured.items():
        assert payment.pk in text, name
        assert "payment.created" in text or name in ("caplog", "text"), name
    assert "Traceback (most recent call last)" in captured["text"]
    assert "RuntimeError: receiver misconfigured" in captured["text"]
    assert "ProviderUnavailable: upstream 503" in captured["text"]
    events = [getattr(r, "paydesk", {}).get("event") for r in caplog.records]
    for event in ("payment.created", "payment.confirmed", "webhook.received", "refund.completed"):
        assert event in events, event
    assert "refund.created" in events
    assert "payment.failed" in events
    # ...and none of it leaks a secret.
    leaks = [WEBHOOK_SECRET, MOCK_SECRET_KEY, MOCK_PASSWORD, ENV_API_KEY, VISA, "4242 4242"]
    for name, text in captured.items():
        for secret in leaks:
            assert secret not in text, f"{secret!r} leaked into {name}"
        assert "cvc 123" not in text, name


def test_a_record_that_cannot_be_redacted_is_blanked_not_raised(caplog):
    class Unprintable:
        def __str__(self):
            raise RuntimeError(f"no str for you, {VISA}")

    with caplog.at_level(logging.ERROR, logger="paydesk.services"):
        logging.getLogger("paydesk.services").error("failed: %s", Unprintable(), extra={"k": 1})
    [rec] = [r for r in caplog.records if r.name == "paydesk.services"]
    assert rec.getMessage() == ("[REDACTED] (paydesk could not redact this record: RuntimeError)")
    assert rec.k == "[REDACTED]"
    assert VISA not in caplog.text
