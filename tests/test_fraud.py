"""Fraud screening before a payment is sent: rules, decisions, holds, staff reviews, signals.

Runs on SQLite and PostgreSQL; the concurrency guarantee of the velocity rule is tested on
PostgreSQL in test_fraud_concurrency.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from paydesk import services, signals
from paydesk.exceptions import (
    ConfigurationError,
    FraudBlocked,
    InvalidTransition,
    PaymentUnderReview,
    PaymentValidationError,
)
from paydesk.fraud import FraudContext, Rule, RuleHit, decide, load_rules, provider_signals
from paydesk.models import (
    AuditLog,
    BlocklistEntry,
    FraudAssessment,
    FraudCheck,
    FraudRuleHit,
    Payment,
    SandboxCharge,
)
from paydesk.money import Money
from paydesk.services import analytics
from paydesk.services import fraud as fraud_services
from paydesk.testing import assert_ledger_kinds
from paydesk.types import PaymentResult, ProviderStatus

pytestmark = pytest.mark.django_db


@contextmanager
def fraud(rules: list[Any], **extra: Any) -> Iterator[None]:
    """The test settings with ``PAYDESK["FRAUD"]`` set to ``rules`` (plus ``extra`` keys)."""
    with override_settings(PAYDESK={**settings.PAYDESK, "FRAUD": {"RULES": rules, **extra}}):
        yield


def pay(amount: str = "10.00", *, user: Any = None, token: str = "pm_sandbox_visa", **context):
    payment = services.create_payment(amount=amount, currency="USD", user=user)
    return services.process_payment(
        payment=payment, payment_method_token=token, fraud_context=context or None
    )


class Heard:
    """Receivers for the fraud signals (the testing kit's recorder predates them)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __enter__(self) -> Heard:
        for name in ("payment_flagged", "payment_blocked", "payment_failed", "payment_confirmed"):
            getattr(signals, name).connect(self._receiver(name), weak=False, dispatch_uid=name)
        return self

    def _receiver(self, name: str) -> Any:
        def receive(sender: Any, **kwargs: Any) -> None:
            self.calls.append((name, kwargs))

        return receive

    def __exit__(self, *exc: object) -> None:
        for name in ("payment_flagged", "payment_blocked", "payment_failed", "payment_confirmed"):
            getattr(signals, name).disconnect(dispatch_uid=name)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(
        username="risk", email="risk@example.com", password="pw", is_staff=True
    )


VELOCITY_BLOCK = {
    "RULE": "velocity",
    "OPTIONS": {"by": "user", "limit": 2, "window": 3600, "action": "block"},
}
BIG_AMOUNTS = {"RULE": "amount_limit", "OPTIONS": {"limits": {"USD": "500.00"}, "score": 60}}


# -- defaults -----------------------------------------------------------------------------


def test_without_rules_nothing_is_screened_or_recorded(user):
    payment = pay(user=user)

    assert payment.status == "completed"
    assert not FraudCheck.objects.exists()
    assert not FraudAssessment.objects.exists()
    assert_ledger_kinds(payment, ["payment_created", "submitted", "authorization", "capture"])


def test_an_allowed_attempt_is_recorded_and_sent(user):
    with fraud([BIG_AMOUNTS]):
        payment = pay("20.00", user=user, ip_address="203.0.113.9")

    assert payment.status == "completed"
    assert_ledger_kinds(
        payment, ["payment_created", "fraud_check", "submitted", "authorization", "capture"]
    )
    entry = payment.ledger.get(kind="fraud_check")
    assert entry.provider_data == {"decision": "allow", "score": 0, "reasons": []}
    check = FraudCheck.objects.get(payment=payment)
    assert (check.decision, check.score, check.attempt) == ("allow", 0, 1)
    assert check.user_id == user.pk
    assert check.email == "alice@example.com"
    assert check.ip_address == "203.0.113.9"
    assessment = payment.fraud_assessment
    assert (assessment.decision, assessment.review_status) == ("allow", "")


# -- block -------------------------------------------------------------------------------


def test_velocity_per_user_blocks_beyond_the_limit(user, django_capture_on_commit_callbacks):
    with fraud([VELOCITY_BLOCK]):
        assert pay(user=user).status == "completed"
        assert pay(user=user).status == "completed"
        with (
            Heard() as heard,
            django_capture_on_commit_callbacks(execute=True),
            pytest.raises(FraudBlocked) as caught,
        ):
            pay(user=user)

    error = caught.value
    payment = Payment.objects.get(pk=error.payment_id)
    assert payment.status == "failed"
    assert payment.failure_code == "fraud_blocked"
    assert "fraud" not in payment.failure_message.lower()  # nothing to learn for a fraudster
    assert error.code == "fraud_blocked"
    assert error.http_status == 402
    assert error.score == 50
    assert error.reasons == [
        {
            "rule": "velocity_user",
            "score": 50,
            "reason": "2 earlier attempts by this user in the last 1 hour (limit 2).",
            "action": "block",
        }
    ]
    assert set(error.as_dict()) == {"code", "message"}  # the API body names no rule
    assert_ledger_kinds(payment, ["payment_created", "fraud_check", "payment_failed"])
    assert not SandboxCharge.objects.filter(payment_ref=payment.pk).exists()
    assert heard.names == ["payment_failed", "payment_blocked"]
    blocked = dict(heard.calls)["payment_blocked"]
    assert blocked["payment"].pk == payment.pk
    assert blocked["assessment"].decision == "block"
    assert blocked["score"] == 50
    hit = FraudRuleHit.objects.get()
    assert (hit.rule, hit.score, hit.fraud_check.decision) == ("velocity_user", 50, "block")


def test_other_users_are_counted_apart(user, other_user):
    with fraud([VELOCITY_BLOCK]):
        pay(user=user)
        pay(user=user)
        assert pay(user=other_user).status == "completed"


@pytest.mark.parametrize(
    ("by", "context"),
    [
        ("email", {"email": "Card.Tester@Example.com"}),
        ("ip", {"ip_address": "198.51.100.7"}),
        ("card", {"card_fingerprint": "fp_abc"}),
    ],
)
def test_velocity_by_email_ip_and_card(by, context):
    rule = {"RULE": "velocity", "OPTIONS": {"by": by, "limit": 1, "score": 100}}
    with fraud([rule]):
        assert pay(**context).status == "completed"
        with pytest.raises(FraudBlocked) as caught:
            pay(**context)
        # Another identifier is not affected.
        other = {k: v.replace("7", "8").replace("abc", "xyz") for k, v in context.items()}
        other = {k: ("other@example.com" if k == "email" else v) for k, v in other.items()}
        assert pay(**other).status == "completed"
    assert caught.value.reasons[0]["rule"] == f"velocity_{by}"


def test_the_velocity_window_slides(user):
    with fraud([VELOCITY_BLOCK]):
        pay(user=user)
        pay(user=user)
        FraudCheck.objects.update(created_at=timezone.now() - dt.timedelta(hours=2))
        assert pay(user=user).status == "completed"


def test_a_blocked_payment_may_be_retried_and_is_screened_again(user):
    fraud_services.add_to_blocklist(kind="email", value="alice@example.com", reason="chargebacks")
    with fraud(["blocklist"]):
        with pytest.raises(FraudBlocked) as caught:
            pay(user=user)
        BlocklistEntry.objects.update(is_active=False)
        payment = services.retry_payment(
            payment=caught.value.payment_id, payment_method_token="pm_sandbox_visa"
        )
    assert payment.status == "completed"
    assert list(
        FraudCheck.objects.filter(payment=payment)
        .order_by("attempt")
        .values_list("attempt", "decision")
    ) == [(1, "block"), (2, "allow")]
    assert payment.fraud_assessment.attempt == 2
    assert payment.fraud_assessment.decision == "allow"


# -- review -------------------------------------------------------------------------------


def test_review_holds_the_payment_unsent(user, django_capture_on_commit_callbacks):
    with fraud([BIG_AMOUNTS]), Heard() as heard:
        with django_capture_on_commit_callbacks(execute=True):
            payment = pay("750.00", user=user)
        assert payment.status == "pending"
        assessment = payment.fraud_assessment
        assert assessment.decision == "review"
        assert assessment.review_status == "pending"
        assert assessment.held_at is not None
        assert assessment.reasons == [
            {
                "rule": "amount_limit",
                "score": 60,
                "reason": "750.00 USD is above the limit of 500.00 USD.",
            }
        ]
        assert not SandboxCharge.objects.exists()
        assert payment.payment_method_token == "pm_sandbox_visa"  # kept for the approval
        assert_ledger_kinds(payment, ["payment_created", "fraud_check"])
        assert heard.names == ["payment_flagged"]
        with pytest.raises(PaymentUnderReview):
            services.process_payment(payment=payment)
    # Also with the rules gone: a held payment waits for staff.
    with pytest.raises(PaymentUnderReview):
        services.process_payment(payment=payment)
    assert list(fraud_services.review_queue()) == [assessment]


def test_staff_approval_sends_the_held_payment(user, staff):
    with fraud([BIG_AMOUNTS]):
        payment = pay("750.00", user=user)
        approved = fraud_services.approve_review(payment=payment, user=staff, note="known buyer")

    assert approved.status == "completed"
    assert_ledger_kinds(
        approved,
        ["payment_created", "fraud_check", "fraud_review", "submitted", "authorization", "capture"],
    )
    review = approved.ledger.get(kind="fraud_review")
    assert review.provider_data == {"review": "approved", "by": "risk"}
    assert review.message == "known buyer"
    assessment = FraudAssessment.objects.get(payment=payment)
    assert assessment.review_status == "approved"
    assert assessment.reviewed_by == staff
    assert assessment.review_note == "known buyer"
    audit = AuditLog.objects.get(action="fraud_review_approved")
    assert (audit.actor, audit.object_id, audit.amount) == (staff, payment.pk, Decimal("750"))
    assert list(fraud_services.review_queue()) == []
    with pytest.raises(InvalidTransition, match="not held"):
        fraud_services.approve_review(payment=payment, user=staff)


def test_an_approval_without_sending_then_process_skips_the_rules(user, staff):
    with fraud([BIG_AMOUNTS]):
        payment = pay("750.00", user=user)
        fraud_services.approve_review(payment=payment, user=staff, process=False)
        sent = services.process_payment(payment=payment)
    assert sent.status == "completed"
    assert FraudCheck.objects.filter(payment=payment).count() == 1


def test_staff_rejection_fails_the_held_payment(user, staff, django_capture_on_commit_callbacks):
    with fraud([BIG_AMOUNTS]):
        payment = pay("750.00", user=user)
        with Heard() as heard, django_capture_on_commit_callbacks(execute=True):
            rejected = fraud_services.reject_review(
                payment=payment, user=staff, reason="stolen card reported"
            )

    assert rejected.status == "failed"
    assert rejected.failure_code == "fraud_rejected"
    assert "stolen" not in rejected.failure_message
    assert_ledger_kinds(
        rejected, ["payment_created", "fraud_check", "fraud_review", "payment_failed"]
    )
    assert rejected.fraud_assessment.review_status == "rejected"
    assert AuditLog.objects.get(action="fraud_review_rejected").details["reason"] == (
        "stolen card reported"
    )
    assert heard.names == ["payment_failed"]
    with pytest.raises(InvalidTransition):
        fraud_services.reject_review(payment=payment, user=staff, reason="again")


def test_review_decisions_need_a_person_a_reason_and_another_person(user, staff):
    user.is_staff = True
    user.save()
    with fraud([BIG_AMOUNTS]):
        payment = pay("750.00", user=user)
        with pytest.raises(PaymentValidationError, match="user="):
            fraud_services.approve_review(payment=payment, user=None)
        with pytest.raises(PaymentValidationError, match="reason"):
            fraud_services.reject_review(payment=payment, user=staff, reason=" ")
        with pytest.raises(PaymentValidationError) as caught:
            fraud_services.approve_review(payment=payment, user=user)
    assert caught.value.code == "four_eyes"
    assert Payment.objects.get(pk=payment.pk).fraud_assessment.review_status == "pending"


def test_a_cancelled_held_payment_leaves_the_queue(user):
    with fraud([BIG_AMOUNTS]):
        payment = pay("750.00", user=user)
    services.cancel_payment(payment=payment, reason="customer gave up")
    assert list(fraud_services.review_queue()) == []


def test_scores_add_up_to_the_thresholds(user):
    rules = [
        BIG_AMOUNTS,  # 60
        {"RULE": "first_purchase", "OPTIONS": {"thresholds": {"USD": "100"}}},  # 40
    ]
    with fraud(rules), pytest.raises(FraudBlocked) as caught:
        pay("750.00", user=user)  # 60 + 40 = 100: block
    assert caught.value.score == 100
    with fraud(rules, BLOCK_THRESHOLD=150):
        held = pay("750.00", user=user)
    assert held.fraud_assessment.decision == "review"
    assert held.fraud_assessment.score == 100


# -- the other built-in rules --------------------------------------------------------------


def test_failed_attempts_in_a_row(user):
    rule = {"RULE": "failed_attempts", "OPTIONS": {"by": "user", "count": 3, "score": 50}}
    with fraud([rule]):
        pay(user=user, token="pm_sandbox_declined")
        pay(user=user, token="pm_sandbox_declined")
        assert pay(user=user).status == "completed"  # a success breaks the streak
        pay(user=user, token="pm_sandbox_declined")
        pay(user=user, token="pm_sandbox_declined")
        third = pay(user=user, token="pm_sandbox_declined")
        assert third.fraud_assessment.decision == "allow"  # 2 failures before it
        held = pay(user=user)
    assert held.fraud_assessment.decision == "review"
    assert held.fraud_assessment.reasons[0]["reason"] == (
        "3 failed attempts in a row by this user (limit 3)."
    )


def test_failed_attempts_count_the_payments_own_retries(user):
    rule = {"RULE": "failed_attempts", "OPTIONS": {"count": 2}}
    with fraud([rule]):
        payment = pay(user=user, token="pm_sandbox_declined")
        payment = services.retry_payment(
            payment=payment, payment_method_token="pm_sandbox_declined"
        )
        assert payment.fraud_assessment.decision == "allow"  # one failure before attempt 2
        payment = services.retry_payment(payment=payment, payment_method_token="pm_sandbox_visa")
    assert payment.status == "pending"
    assert payment.fraud_assessment.decision == "review"


def test_failed_attempts_by_card_fingerprint():
    rule = {"RULE": "failed_attempts", "OPTIONS": {"by": "card", "count": 2}}
    with fraud([rule]):
        pay(token="pm_sandbox_declined", card_fingerprint="fp_1")
        pay(token="pm_sandbox_declined", card_fingerprint="fp_1")
        assert pay(card_fingerprint="fp_2").fraud_assessment.decision == "allow"
        assert pay(card_fingerprint="fp_1").fraud_assessment.decision == "review"


def test_country_mismatch_compares_card_ip_and_billing():
    with fraud(["country_mismatch"]):
        same = pay(card_country="tr", ip_country="TR", billing_country="TR")
        unknown = pay(card_country="TR")
        mismatch = pay(card_country="US", ip_country="TR", billing_country="US")
    assert same.fraud_assessment.score == 0
    assert unknown.fraud_assessment.score == 0
    assert mismatch.fraud_assessment.score == 30
    assert mismatch.fraud_assessment.reasons[0]["reason"] == (
        "Country mismatch: card country US vs ip country TR."
    )


def resolve_country(ip: str) -> str:
    return {"198.51.100.1": "DE"}.get(ip, "")


def test_the_ip_country_may_come_from_a_resolver(user):
    rule = {"RULE": "country_mismatch", "OPTIONS": {"score": 50}}
    with fraud([rule], IP_COUNTRY_RESOLVER=f"{__name__}.resolve_country"):
        held = pay(ip_address="198.51.100.1", card_country="US")
    assert held.status == "pending"
    check = FraudCheck.objects.get(payment=held)
    assert (check.ip_country, check.card_country) == ("DE", "US")


def test_the_saved_methods_fingerprint_and_country_are_used(user):
    method = services.add_payment_method(
        user=user,
        provider="sandbox",
        provider_token="pm_sandbox_visa",
        fingerprint="fp_saved",
        metadata={"country": "GB"},
    )
    fraud_services.add_to_blocklist(kind="card_fingerprint", value="fp_saved")
    payment = services.create_payment(
        amount="10.00", currency="USD", user=user, payment_method=method
    )
    with fraud(["blocklist"]), pytest.raises(FraudBlocked):
        services.process_payment(payment=payment, fraud_context={"ip_country": "GB"})
    check = FraudCheck.objects.get(payment=payment)
    assert (check.card_fingerprint, check.card_country) == ("fp_saved", "GB")


@pytest.mark.parametrize(
    ("kind", "value", "context"),
    [
        ("email", " Bad@Example.COM ", {"email": "bad@example.com"}),
        ("email_domain", "@Mailinator.com", {"email": "anyone@mailinator.com"}),
        ("ip_network", "203.0.113.0/24", {"ip_address": "203.0.113.200"}),
        ("ip_network", "2001:db8::/32", {"ip_address": "2001:db8::1"}),
        ("ip_network", "192.0.2.5", {"ip_address": "192.0.2.5"}),
        ("card_fingerprint", "fp_stolen", {"card_fingerprint": "fp_stolen"}),
    ],
)
def test_blocklist_entries_block(kind, value, context):
    entry = fraud_services.add_to_blocklist(kind=kind, value=value, reason="test")
    with fraud(["blocklist"]):
        with pytest.raises(FraudBlocked) as caught:
            pay(**context)
        assert pay(ip_address="192.0.2.99", email="good@example.org").status == "completed"
    assert caught.value.reasons[0]["action"] == "block"
    assert entry.value in caught.value.reasons[0]["reason"]


def test_inactive_and_expired_blocklist_entries_do_not_block():
    fraud_services.add_to_blocklist(
        kind="email", value="old@example.com", expires_at=timezone.now() - dt.timedelta(days=1)
    )
    entry = fraud_services.add_to_blocklist(kind="ip_network", value="10.0.0.0/8")
    BlocklistEntry.objects.filter(pk=entry.pk).update(is_active=False)
    with fraud(["blocklist"]):
        assert pay(email="old@example.com", ip_address="10.1.2.3").status == "completed"


def test_add_to_blocklist_validates_and_is_idempotent(staff):
    with pytest.raises(PaymentValidationError, match="not an IP"):
        fraud_services.add_to_blocklist(kind="ip_network", value="10.0.0.300")
    with pytest.raises(PaymentValidationError, match="kind must be"):
        fraud_services.add_to_blocklist(kind="phone", value="123")
    first = fraud_services.add_to_blocklist(kind="ip_network", value="10.0.0.7/8", user=staff)
    second = fraud_services.add_to_blocklist(kind="ip_network", value="10.0.0.0/8")
    assert first.pk == second.pk
    assert second.value == "10.0.0.0/8"
    assert AuditLog.objects.filter(action="fraud_blocklist_added").count() == 2


def test_first_purchase_above_the_threshold(user):
    rule = {"RULE": "first_purchase", "OPTIONS": {"thresholds": {"USD": "100.00"}}}
    with fraud([rule]):
        small = pay("50.00", user=user)
        assert small.fraud_assessment.score == 0
        big = pay("150.00", user=user)  # not the first: small succeeded
        assert big.fraud_assessment.score == 0
        guest = pay("150.00", email="new@example.com")
        anonymous = services.process_payment(
            payment=services.create_payment(amount="150.00", currency="USD"),
            payment_method_token="pm_sandbox_visa",
        )
    assert guest.fraud_assessment.score == 40
    assert anonymous.fraud_assessment.score == 40
    assert guest.fraud_assessment.reasons[0]["rule"] == "first_purchase"


# -- project rules and configuration -------------------------------------------------------


class NightOwlRule(Rule):
    name = "night_owl"
    default_score = 70

    def __init__(self, *, marker: str = "night", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.marker = marker

    def evaluate(self, context: FraudContext) -> RuleHit | None:
        if context.extra.get("session") == self.marker:
            return self.hit("Checkout in the middle of the night.")
        return None


def disposable_device(context: FraudContext) -> tuple[int, str] | None:
    if context.extra.get("device") == "emulator":
        return 100, "Emulated device."
    return None


def test_project_rules_by_dotted_path():
    rules = [
        {"RULE": f"{__name__}.NightOwlRule", "OPTIONS": {"marker": "3am"}},
        {"RULE": f"{__name__}.disposable_device"},
    ]
    with fraud(rules):
        held = pay(session="3am")
        with pytest.raises(FraudBlocked) as caught:
            pay(device="emulator")
        assert pay(session="noon").status == "completed"
    assert held.fraud_assessment.reasons == [
        {"rule": "night_owl", "score": 70, "reason": "Checkout in the middle of the night."}
    ]
    assert caught.value.reasons == [
        {"rule": "disposable_device", "score": 100, "reason": "Emulated device."}
    ]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (["nonsense"], "neither a built-in rule"),
        ([{"RULE": "velocity", "OPTIONS": {"limits": 3}}], "bad OPTIONS"),
        ([{"RULE": "velocity", "OPTIONS": {"by": "phone"}}], "by must be one of"),
        ([{"RULE": "velocity", "LIMIT": 3}], "unknown keys"),
        ([{"OPTIONS": {}}], "must be a rule alias"),
        ([{"RULE": "amount_limit", "OPTIONS": {"limits": {"USD": 100.5}}}], "float"),
        ([{"RULE": "amount_limit", "OPTIONS": {"limits": {"USD": "1.001"}}}], "not an amount"),
        ([{"RULE": "blocklist", "OPTIONS": {"action": "deny"}}], "action must be"),
        (["blocklist", "blocklist"], "more than once"),
        ([{"RULE": "paydesk.money.Money"}], "not a Rule subclass"),
        ([{"RULE": "paydesk.conf.DEFAULTS"}], "not a Rule subclass"),
    ],
)
def test_misconfigured_rules_fail_loudly(rules, message):
    with fraud(rules), pytest.raises(ConfigurationError, match=message):
        load_rules()


def test_thresholds_are_checked():
    with (
        fraud(["blocklist"], REVIEW_THRESHOLD=80, BLOCK_THRESHOLD=50),
        pytest.raises(ConfigurationError, match="REVIEW_THRESHOLD <= BLOCK_THRESHOLD"),
    ):
        pay()
    assert not Payment.objects.filter(status="processing").exists()


def test_decide_uses_the_strongest_action_and_the_thresholds():
    hits = [RuleHit("a", 10, "x"), RuleHit("b", 20, "y", action="review")]
    assert decide(hits, review_threshold=50, block_threshold=100).decision == "review"
    assert decide(hits[:1], review_threshold=50, block_threshold=100).decision == "allow"
    assert decide(hits * 4, review_threshold=50, block_threshold=100).score == 120
    assert decide(hits * 4, review_threshold=50, block_threshold=100).decision == "block"


# -- provider signals ----------------------------------------------------------------------


def test_provider_fraud_signals_are_kept_on_the_assessment(mock):
    mock.set_next_result(
        PaymentResult(
            status=ProviderStatus.PROCESSING,
            provider_payment_id="iyz_1",
            raw={"provider": "iyzico", "fraudStatus": "0", "paymentStatus": "SUCCESS"},
        )
    )
    payment = services.create_payment(amount="10.00", currency="USD", provider="mock")
    payment = services.process_payment(payment=payment, payment_method_token="tok")

    assessment = FraudAssessment.objects.get(payment=payment)
    assert assessment.decision == ""  # paydesk's rules did not run
    assert assessment.provider_signals == {"mock": {"fraudStatus": "0"}}
    assert assessment.provider_flagged is True

    # A later, quieter answer records the new status but never clears the flag.
    mock.set_next_result(
        PaymentResult(
            status=ProviderStatus.CAPTURED,
            provider_payment_id="iyz_1",
            raw={"provider": "iyzico", "fraudStatus": "1"},
        )
    )
    services.sync_payment(payment=payment)
    assessment.refresh_from_db()
    assert assessment.provider_signals == {"mock": {"fraudStatus": "1"}}
    assert assessment.provider_flagged is True


def test_results_without_signals_write_nothing(mock):
    payment = services.create_payment(amount="10.00", currency="USD", provider="mock")
    services.process_payment(payment=payment, payment_method_token="tok")
    assert not FraudAssessment.objects.exists()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, None),
        ({"status": "succeeded"}, None),
        ({"fraudStatus": 1}, ({"fraudStatus": "1"}, False)),
        ({"fraudStatus": "-1"}, ({"fraudStatus": "-1"}, True)),
        (
            {"outcome": {"type": "authorized", "risk_level": "normal", "risk_score": 12}},
            ({"type": "authorized", "risk_level": "normal", "risk_score": 12}, False),
        ),
        (
            {"latest_charge": {"outcome": {"type": "manual_review", "rule": {"id": "rule_1"}}}},
            ({"type": "manual_review", "rule": "rule_1"}, True),
        ),
        (
            {"outcome": {"risk_level": "elevated"}},
            ({"risk_level": "elevated"}, True),
        ),
        (
            {"last_payment_error": {"code": "card_declined", "decline_code": "fraudulent"}},
            ({"decline_code": "fraudulent"}, True),
        ),
        (
            {"last_payment_error": {"code": "card_declined", "decline_code": "generic_decline"}},
            None,
        ),
        ({"latest_charge": "ch_123"}, None),
        ({"risk": {"flagged": True, "score": 91}}, ({"flagged": True, "score": 91}, True)),
    ],
)
def test_provider_signal_extraction(raw, expected):
    assert provider_signals.extract(raw) == expected


# -- fraud analytics -----------------------------------------------------------------------


def test_fraud_report(user, other_user, staff, django_assert_num_queries):
    with fraud([BIG_AMOUNTS, VELOCITY_BLOCK]):
        pay("10.00", user=user)
        pay("10.00", user=user)
        with pytest.raises(FraudBlocked):
            pay("20.00", user=user)
        held_1 = pay("600.00", user=other_user)
        held_2 = pay("700.00", user=other_user)
        with pytest.raises(FraudBlocked):
            pay("800.00", user=other_user)  # velocity and amount
        fraud_services.approve_review(payment=held_1, user=staff)
    pay("900.00")  # no rules: not screened
    today = timezone.localdate()

    with django_assert_num_queries(4):
        report = analytics.fraud_report(start=today, end=today)

    assert report.checks == 6
    assert report.decisions == {"allow": 2, "review": 2, "block": 2}
    assert report.blocked_volume == {"USD": Money("820.00", "USD")}
    assert report.by_rule == {
        "amount_limit": {"block": 1, "review": 2},
        "velocity_user": {"block": 2},
    }
    assert report.review_queue == 1  # held_2
    assert report.oldest_held_for is not None
    assert (report.approved, report.rejected) == (1, 0)
    assert report.false_positive_rate == Decimal("1.0000")
    assert held_2.fraud_assessment.review_status == "pending"

    summary = analytics.summary(start=today, end=today)["USD"]
    assert summary.failures == {"fraud_blocked": 2}
    assert summary.payments == 7  # held_2 pending: not attempted
    assert summary.attempted == 6
