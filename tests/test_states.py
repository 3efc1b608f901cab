"""The ledger fold (``paydesk.states``): a pure function of a *set* of facts.

What these tests prove:

* ``fold`` gives the same ``PaymentState`` for the same facts in any order, with any fact
  repeated under its own key, and with any fact re-reported under a new key (the same capture
  arriving through the API response, a webhook and a sync);
* the precedence rules in the module docstring, one example each;
* in-flight refunds are reserved until they complete or fail, and ``fold_refund`` lets
  completion beat failure.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paydesk.states import (
    CANCELLABLE,
    CAPTURABLE,
    PROCESSABLE,
    REFUNDABLE,
    TERMINAL,
    LedgerFact,
    LedgerKind,
    PaymentState,
    PaymentStatus,
    RefundStatus,
    fold,
    fold_refund,
)

K = LedgerKind
S = PaymentStatus
D = Decimal

MONEY_KINDS = frozenset(
    {K.AUTHORIZATION, K.CAPTURE, K.REFUND_REQUESTED, K.REFUND_COMPLETED, K.PAYMENT_CREATED}
)

FOLD_SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, database=None)


def fact(kind: LedgerKind, key: str, *, attempt: int = 1, amount: str | None = None, ref: str = ""):
    return LedgerFact(
        kind=kind,
        key=key,
        attempt=attempt,
        amount=None if amount is None else D(amount),
        ref=ref,
    )


# -- strategies ----------------------------------------------------------------------------

_amounts = st.integers(min_value=1, max_value=20_000).map(lambda cents: D(cents).scaleb(-2))


@st.composite
def _fact_bodies(draw):
    """(kind, attempt, amount, ref) of one fact; money facts always carry a ref."""
    kind = draw(st.sampled_from(list(LedgerKind)))
    attempt = draw(st.integers(min_value=1, max_value=3))
    ref = draw(st.sampled_from(["a", "b", "c"]))
    amount = draw(_amounts) if kind in MONEY_KINDS else None
    return kind, attempt, amount, ref


@st.composite
def ledgers(draw):
    """A list of facts with unique keys (what a ledger table holds)."""
    bodies = draw(st.lists(_fact_bodies(), max_size=14))
    return [
        LedgerFact(kind=kind, key=f"k{i}", attempt=attempt, amount=amount, ref=ref)
        for i, (kind, attempt, amount, ref) in enumerate(bodies)
    ]


@st.composite
def ledger_and_arrivals(draw):
    """A ledger plus the way its facts arrived: shuffled, with duplicates and re-reports."""
    facts = draw(ledgers())
    arrivals = list(facts)
    if facts:
        # The same key delivered again (a retried webhook, a replayed API response).
        repeats = draw(st.lists(st.sampled_from(facts), max_size=8))
        arrivals.extend(repeats)
        # The same fact reported again under a *different* key (API call, then webhook,
        # then sync): same kind, attempt, amount and ref.
        rereported = draw(st.lists(st.sampled_from(facts), max_size=6))
        arrivals.extend(
            LedgerFact(
                kind=f.kind, key=f"{f.key}-via-{n}", attempt=f.attempt, amount=f.amount, ref=f.ref
            )
            for n, f in enumerate(rereported)
        )
    arrivals = draw(st.permutations(arrivals))
    return facts, arrivals


# -- properties ----------------------------------------------------------------------------


@FOLD_SETTINGS
@given(ledger_and_arrivals())
def test_fold_ignores_order_duplicate_keys_and_rereported_facts(case):
    facts, arrivals = case
    assert fold(arrivals) == fold(facts)


@FOLD_SETTINGS
@given(ledgers(), st.randoms(use_true_random=False))
def test_fold_is_order_independent(facts, rnd):
    shuffled = list(facts)
    rnd.shuffle(shuffled)
    assert fold(shuffled) == fold(facts)
    assert fold(reversed(facts)) == fold(facts)
    # A generator is consumed once and must give the same answer as a list.
    assert fold(f for f in shuffled) == fold(facts)


@FOLD_SETTINGS
@given(ledger_and_arrivals())
def test_fold_refund_ignores_order_and_duplicates(case):
    facts, arrivals = case
    for ref in ("a", "b", "c", "missing"):
        assert fold_refund(arrivals, ref) == fold_refund(facts, ref)


@FOLD_SETTINGS
@given(ledgers())
def test_fold_invariants(facts):
    state = fold(facts)
    assert isinstance(state, PaymentState)
    assert state.attempt == max((f.attempt for f in facts), default=1)
    assert state.authorized >= state.captured >= 0
    assert state.refunded >= 0
    assert state.refund_reserved >= 0
    assert state.open_disputes >= 0
    assert state.refundable == state.captured - state.refunded - state.refund_reserved
    if state.captured > 0:
        assert state.status in {S.COMPLETED, S.PARTIALLY_REFUNDED, S.REFUNDED}
    else:
        assert state.status not in {S.COMPLETED, S.PARTIALLY_REFUNDED, S.REFUNDED}
    if state.status != S.AUTHORIZED:
        assert state.capturable == 0
    else:
        assert state.capturable == state.authorized - state.captured


# -- precedence, one rule at a time --------------------------------------------------------


def test_empty_ledger_is_pending_attempt_one_with_zero_amounts():
    state = fold([])
    assert state == PaymentState(
        status=S.PENDING,
        attempt=1,
        authorized=D(0),
        captured=D(0),
        refunded=D(0),
        refund_reserved=D(0),
        open_disputes=0,
    )
    assert state.refundable == 0
    assert state.capturable == 0


def test_payment_created_alone_is_pending():
    assert fold([fact(K.PAYMENT_CREATED, "created", amount="10.00")]).status == S.PENDING


def test_submitted_then_requires_action_then_processing_then_authorization():
    facts = [fact(K.PAYMENT_CREATED, "created", amount="10.00")]
    facts.append(fact(K.SUBMITTED, "attempt-1:submitted"))
    assert fold(facts).status == S.PROCESSING
    facts.append(fact(K.REQUIRES_ACTION, "attempt-1:requires_action"))
    assert fold(facts).status == S.REQUIRES_ACTION
    facts.append(fact(K.PROCESSING, "attempt-1:processing"))
    assert fold(facts).status == S.PROCESSING
    facts.append(fact(K.AUTHORIZATION, "authorization:pi_1", amount="10.00", ref="pi_1"))
    state = fold(facts)
    assert state.status == S.AUTHORIZED
    assert state.authorized == D("10.00")
    assert state.captured == 0
    assert state.capturable == D("10.00")


def test_submitted_shows_as_processing_and_yields_to_any_provider_answer():
    submitted = fact(K.SUBMITTED, "attempt-1:submitted")
    assert fold([submitted]).status == S.PROCESSING
    # The provider asked for 3-D Secure: its answer outranks paydesk's own in-flight marker.
    action = fact(K.REQUIRES_ACTION, "attempt-1:requires_action")
    assert fold([submitted, action]).status == S.REQUIRES_ACTION
    assert fold([action, submitted]).status == S.REQUIRES_ACTION
    failed = fact(K.PAYMENT_FAILED, "attempt-1:failed")
    assert fold([submitted, failed]).status == S.FAILED
    processing = fact(K.PROCESSING, "attempt-1:processing")
    assert fold([submitted, processing, action]).status == S.PROCESSING


def test_submitted_of_an_old_attempt_does_not_count():
    facts = [
        fact(K.SUBMITTED, "attempt-1:submitted"),
        fact(K.PAYMENT_FAILED, "attempt-1:failed"),
        fact(K.ATTEMPT_STARTED, "attempt-2:started", attempt=2),
    ]
    assert fold(facts).status == S.PENDING
    facts.append(fact(K.SUBMITTED, "attempt-2:submitted", attempt=2))
    assert fold(facts).status == S.PROCESSING


def test_processing_reported_after_capture_is_ignored():
    facts = [
        fact(K.AUTHORIZATION, "authorization:pi_1", amount="10.00", ref="pi_1"),
        fact(K.CAPTURE, "capture:pi_1", amount="10.00", ref="pi_1"),
        fact(K.PROCESSING, "webhook:evt_late_processing"),
        fact(K.REQUIRES_ACTION, "webhook:evt_late_action"),
    ]
    state = fold(facts)
    assert state.status == S.COMPLETED
    assert state.captured == D("10.00")
    assert state.capturable == 0


def test_failure_after_capture_is_ignored():
    facts = [
        fact(K.CAPTURE, "capture:pi_1", amount="10.00", ref="pi_1"),
        fact(K.PAYMENT_FAILED, "attempt-1:failed"),
    ]
    assert fold(facts).status == S.COMPLETED


def test_capture_without_authorization_counts_as_authorized_too():
    state = fold([fact(K.CAPTURE, "capture:pi_1", amount="7.00", ref="pi_1")])
    assert state.status == S.COMPLETED
    assert state.authorized == D("7.00")
    assert state.captured == D("7.00")


def test_failure_in_attempt_one_then_attempt_two_started_is_pending():
    facts = [
        fact(K.PAYMENT_CREATED, "created", amount="10.00"),
        fact(K.PROCESSING, "attempt-1:processing"),
        fact(K.PAYMENT_FAILED, "attempt-1:failed"),
    ]
    assert fold(facts).status == S.FAILED
    assert fold(facts).attempt == 1
    facts.append(fact(K.ATTEMPT_STARTED, "attempt-2:started", attempt=2))
    state = fold(facts)
    assert state.status == S.PENDING
    assert state.attempt == 2
    facts.append(fact(K.PROCESSING, "attempt-2:processing", attempt=2))
    assert fold(facts).status == S.PROCESSING
    facts.append(fact(K.PAYMENT_FAILED, "attempt-2:failed", attempt=2))
    assert fold(facts).status == S.FAILED
    facts.append(fact(K.ATTEMPT_STARTED, "attempt-3:started", attempt=3))
    facts.append(fact(K.CAPTURE, "capture:pi_3", attempt=3, amount="10.00", ref="pi_3"))
    state = fold(facts)
    assert state.status == S.COMPLETED
    assert state.attempt == 3


def test_progress_facts_of_an_old_attempt_do_not_count():
    facts = [
        fact(K.REQUIRES_ACTION, "attempt-1:requires_action"),
        fact(K.PROCESSING, "attempt-1:processing"),
        fact(K.ATTEMPT_STARTED, "attempt-2:started", attempt=2),
        fact(K.REQUIRES_ACTION, "attempt-2:requires_action", attempt=2),
    ]
    assert fold(facts).status == S.REQUIRES_ACTION


def test_money_facts_count_across_attempts():
    # An authorization that arrives late for attempt 1 still counts after attempt 2 began.
    facts = [
        fact(K.PAYMENT_FAILED, "attempt-1:failed"),
        fact(K.ATTEMPT_STARTED, "attempt-2:started", attempt=2),
        fact(K.AUTHORIZATION, "authorization:pi_1", attempt=1, amount="10.00", ref="pi_1"),
    ]
    state = fold(facts)
    assert state.status == S.AUTHORIZED
    assert state.authorized == D("10.00")


def test_failure_beats_processing_and_requires_action_in_the_same_attempt():
    facts = [
        fact(K.REQUIRES_ACTION, "attempt-1:requires_action"),
        fact(K.PROCESSING, "attempt-1:processing"),
        fact(K.PAYMENT_FAILED, "attempt-1:failed"),
    ]
    assert fold(facts).status == S.FAILED


def test_authorization_beats_failure():
    facts = [
        fact(K.PAYMENT_FAILED, "attempt-1:failed"),
        fact(K.AUTHORIZATION, "authorization:pi_1", amount="10.00", ref="pi_1"),
    ]
    assert fold(facts).status == S.AUTHORIZED


def test_cancellation_beats_authorization():
    facts = [
        fact(K.AUTHORIZATION, "authorization:pi_1", amount="10.00", ref="pi_1"),
        fact(K.CANCELLATION, "cancellation:pi_1"),
    ]
    state = fold(facts)
    assert state.status == S.CANCELLED
    assert state.capturable == 0
    assert state.authorized == D("10.00")


def test_cancellation_counts_from_any_attempt():
    facts = [
        fact(K.CANCELLATION, "cancellation:local"),
        fact(K.ATTEMPT_STARTED, "attempt-2:started", attempt=2),
        fact(K.PROCESSING, "attempt-2:processing", attempt=2),
    ]
    assert fold(facts).status == S.CANCELLED


def test_captured_money_beats_cancellation():
    facts = [
        fact(K.CANCELLATION, "cancellation:pi_1"),
        fact(K.CAPTURE, "capture:pi_1", amount="10.00", ref="pi_1"),
    ]
    assert fold(facts).status == S.COMPLETED


def test_refunded_when_refunds_equal_captured():
    facts = [
        fact(K.CAPTURE, "capture:pi_1", amount="10.00", ref="pi_1"),
        fact(K.REFUND_REQUESTED, "refund:re_1:requested", amount="4.00", ref="re_1"),
        fact(K.REFUND_COMPLETED, "refund:re_1:completed", amount="4.00", ref="re_1"),
    ]
    state = fold(facts)
    assert state.status == S.PARTIALLY_REFUNDED
    assert state.refunded == D("4.00")
    assert state.refundable == D("6.00")
    facts += [
        fact(K.REFUND_REQUESTED, "refund:re_2:requested", amount="6.00", ref="re_2"),
        fact(K.REFUND_COMPLETED, "refund:re_2:completed", amount="6.00", ref="re_2"),
    ]
    state = fold(facts)
    assert state.status == S.REFUNDED
    assert state.refunded == D("10.00")
    assert state.refundable == 0
    assert state.refund_reserved == 0


def test_in_flight_refund_is_reserved_until_completed():
    capture = fact(K.CAPTURE, "capture:pi_1", amount="10.00", ref="pi_1")
    requested = fact(K.REFUND_REQUESTED, "refund:re_1:requested", amount="3.00", ref="re_1")
    state = fold([capture, requested])
    # Reserved money does not change the status yet, but cannot be refunded again.
    assert state.status == S.COMPLETED
    assert state.refund_reserved == D("3.00")
    assert state.refunded == 0
    assert state.refundable == D("7.00")

    done = fact(K.REFUND_COMPLETED, "refund:re_1:completed", amount="3.00", ref="re_1")
    state = fold([capture, requested, done])
    assert state.status == S.PARTIALLY_REFUNDED
    assert state.refund_reserved == 0
    assert state.refunded == D("3.00")
    assert state.refundable == D("7.00")


def test_failed_refund_releases_its_reservation():
    facts = [
        fact(K.CAPTURE, "capture:pi_1", amount="10.00", ref="pi_1"),
        fact(K.REFUND_REQUESTED, "refund:re_1:requested", amount="3.00", ref="re_1"),
        fact(K.REFUND_FAILED, "refund:re_1:failed", ref="re_1"),
    ]
    state = fold(facts)
    assert state.status == S.COMPLETED
    assert state.refund_reserved == 0
    assert state.refunded == 0
    assert state.refundable == D("10.00")


def test_a_failure_of_one_refund_does_not_release_another():
    facts = [
        fact(K.CAPTURE, "capture:pi_1", amount="10.00", ref="pi_1"),
        fact(K.REFUND_REQUESTED, "refund:re_1:requested", amount="3.00", ref="re_1"),
        fact(K.REFUND_REQUESTED, "refund:re_2:requested", amount="2.00", ref="re_2"),
        fact(K.REFUND_FAILED, "refund:re_1:failed", ref="re_1"),
    ]
    state = fold(facts)
    assert state.refund_reserved == D("2.00")
    assert state.refundable == D("8.00")


def test_refund_completion_beats_failure():
    facts = [
        fact(K.CAPTURE, "capture:pi_1", amount="10.00", ref="pi_1"),
        fact(K.REFUND_REQUESTED, "refund:re_1:requested", amount="10.00", ref="re_1"),
        fact(K.REFUND_FAILED, "webhook:evt_refund_failed", ref="re_1"),
        fact(K.REFUND_COMPLETED, "refund:re_1:completed", amount="10.00", ref="re_1"),
    ]
    for ordering in (facts, list(reversed(facts))):
        state = fold(ordering)
        assert state.status == S.REFUNDED
        assert state.refunded == D("10.00")
        assert state.refund_reserved == 0
        assert fold_refund(ordering, "re_1") == RefundStatus.COMPLETED


def test_same_capture_reported_three_times_counts_once():
    facts = [
        fact(K.CAPTURE, "capture:pi_1", amount="10.00", ref="pi_1"),
        fact(K.CAPTURE, "webhook:evt_1", amount="10.00", ref="pi_1"),
        fact(K.CAPTURE, "sync:1", amount="10.00", ref="pi_1"),
        fact(K.REFUND_COMPLETED, "refund:re_1:completed", amount="5.00", ref="re_1"),
        fact(K.REFUND_COMPLETED, "webhook:evt_2", amount="5.00", ref="re_1"),
    ]
    state = fold(facts)
    assert state.captured == D("10.00")
    assert state.refunded == D("5.00")
    assert state.status == S.PARTIALLY_REFUNDED


def test_distinct_captures_add_up():
    facts = [
        fact(K.AUTHORIZATION, "authorization:pi_1", amount="10.00", ref="pi_1"),
        fact(K.CAPTURE, "capture:cap_1", amount="4.00", ref="cap_1"),
        fact(K.CAPTURE, "capture:cap_2", amount="6.00", ref="cap_2"),
    ]
    state = fold(facts)
    assert state.captured == D("10.00")
    assert state.authorized == D("10.00")


def test_repeated_key_counts_once():
    capture = fact(K.CAPTURE, "capture:pi_1", amount="10.00", ref="pi_1")
    assert fold([capture, capture, capture]).captured == D("10.00")


def test_disputes_open_and_close_by_ref():
    facts = [
        fact(K.CAPTURE, "capture:pi_1", amount="10.00", ref="pi_1"),
        fact(K.DISPUTE_OPENED, "dispute:dp_1:opened", ref="dp_1"),
        fact(K.DISPUTE_OPENED, "webhook:evt_dp_1", ref="dp_1"),
        fact(K.DISPUTE_OPENED, "dispute:dp_2:opened", ref="dp_2"),
    ]
    assert fold(facts).open_disputes == 2
    facts.append(fact(K.DISPUTE_CLOSED, "dispute:dp_1:closed", ref="dp_1"))
    state = fold(facts)
    assert state.open_disputes == 1
    assert state.status == S.COMPLETED


def test_notes_and_webhook_receipts_do_not_move_the_status():
    facts = [
        fact(K.PAYMENT_CREATED, "created", amount="10.00"),
        fact(K.NOTE, "note:1"),
        fact(K.WEBHOOK_RECEIVED, "webhook:evt_1"),
    ]
    assert fold(facts).status == S.PENDING


# -- fold_refund ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        ([], RefundStatus.PENDING),
        ([K.REFUND_REQUESTED], RefundStatus.PENDING),
        ([K.REFUND_REQUESTED, K.REFUND_FAILED], RefundStatus.FAILED),
        ([K.REFUND_REQUESTED, K.REFUND_COMPLETED], RefundStatus.COMPLETED),
        ([K.REFUND_FAILED, K.REFUND_COMPLETED], RefundStatus.COMPLETED),
        ([K.REFUND_COMPLETED, K.REFUND_FAILED], RefundStatus.COMPLETED),
    ],
)
def test_fold_refund(kinds, expected):
    facts = [fact(kind, f"{kind}:{n}", amount="1.00", ref="re_1") for n, kind in enumerate(kinds)]
    # Facts about other refunds never leak into this one.
    facts += [
        fact(K.REFUND_COMPLETED, "refund:re_other:completed", amount="1.00", ref="re_other"),
        fact(K.REFUND_FAILED, "refund:re_x:failed", ref="re_x"),
    ]
    assert fold_refund(facts, "re_1") == expected


# -- the operation tables --------------------------------------------------------------


def test_operation_tables():
    assert frozenset({S.PENDING}) == PROCESSABLE
    assert frozenset({S.AUTHORIZED}) == CAPTURABLE
    assert frozenset({S.PENDING, S.REQUIRES_ACTION, S.AUTHORIZED}) == CANCELLABLE
    assert frozenset({S.COMPLETED, S.PARTIALLY_REFUNDED}) == REFUNDABLE
    assert frozenset({S.CANCELLED, S.REFUNDED}) == TERMINAL
