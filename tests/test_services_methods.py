"""Saved payment method services.

What these tests prove: card data is never stored (a token that looks like a card number is
refused); a user's first method becomes the default; there is exactly one default per user,
enforced by the database itself; ``set_default_payment_method`` switches it atomically;
``deactivate_payment_method`` is a soft delete that also clears the default.
"""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from paydesk import services
from paydesk.exceptions import PaymentValidationError
from paydesk.models import PaymentMethod

pytestmark = pytest.mark.django_db


def add(user, token, **kwargs):
    kwargs.setdefault("provider", "sandbox")
    return services.add_payment_method(user=user, provider_token=token, **kwargs)


def defaults(user):
    return list(
        PaymentMethod.objects.filter(user=user, is_default=True).values_list("pk", flat=True)
    )


@pytest.mark.parametrize(
    "token",
    [
        "4242424242424242",
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "378282246310005",  # Amex, 15 digits
        "424242424242",  # 12 digits is already too card-like
    ],
)
def test_a_card_number_is_refused(user, token):
    with pytest.raises(PaymentValidationError) as info:
        add(user, token)
    assert info.value.field == "provider_token"
    assert "never card data" in info.value.message
    assert "pm_" in info.value.message  # says what to pass instead
    assert PaymentMethod.objects.count() == 0


def test_an_empty_token_is_refused(user):
    with pytest.raises(PaymentValidationError) as info:
        add(user, "")
    assert info.value.field == "provider_token"
    assert PaymentMethod.objects.count() == 0


@pytest.mark.parametrize("last4", ["424", "42424", "abcd"])
def test_last4_must_be_four_digits(user, last4):
    with pytest.raises(PaymentValidationError) as info:
        add(user, "pm_sandbox_visa", last4=last4)
    assert info.value.field == "last4"
    assert PaymentMethod.objects.count() == 0


def test_unknown_type_is_refused(user):
    with pytest.raises(PaymentValidationError) as info:
        add(user, "pm_x", type="cheque")
    assert info.value.field == "type"
    assert "credit_card" in info.value.message
    assert PaymentMethod.objects.count() == 0


def test_tokens_and_short_references_are_accepted(user):
    method = add(user, "pm_sandbox_visa", brand="visa", last4="4242", exp_month=12, exp_year=2030)
    assert method.pk.startswith("pm_")
    assert method.provider_token == "pm_sandbox_visa"
    assert str(method) == "visa •••• 4242"
    # A short numeric id (some providers use them) is not a card number.
    assert add(user, "12345678901").provider_token == "12345678901"


def test_first_method_becomes_the_default(user):
    first = add(user, "pm_1")
    assert first.is_default is True
    assert PaymentMethod.objects.get(pk=first.pk).is_default is True
    second = add(user, "pm_2")
    assert second.is_default is False
    assert defaults(user) == [first.pk]


def test_adding_with_set_default_switches(user):
    first = add(user, "pm_1")
    second = add(user, "pm_2", set_default=True)
    assert second.is_default is True
    assert defaults(user) == [second.pk]
    first.refresh_from_db()
    assert first.is_default is False


def test_set_default_switches_and_keeps_exactly_one(user, other_user):
    first = add(user, "pm_1")
    second = add(user, "pm_2")
    theirs = add(other_user, "pm_3")
    result = services.set_default_payment_method(method=second)
    assert result.is_default is True
    assert defaults(user) == [second.pk]
    # Another user's default is untouched.
    assert defaults(other_user) == [theirs.pk]
    services.set_default_payment_method(method=first)
    assert defaults(user) == [first.pk]
    # Setting the current default again is harmless.
    services.set_default_payment_method(method=first)
    assert defaults(user) == [first.pk]


def test_the_database_allows_only_one_default_per_user(user, other_user):
    add(user, "pm_1")
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentMethod.objects.create(
            user=user,
            provider="sandbox",
            provider_token="pm_2",
            type="credit_card",
            is_default=True,
        )
    assert len(defaults(user)) == 1
    # Non-default methods are unlimited, and other users have their own default.
    PaymentMethod.objects.create(
        user=user, provider="sandbox", provider_token="pm_3", type="credit_card"
    )
    PaymentMethod.objects.create(
        user=other_user,
        provider="sandbox",
        provider_token="pm_4",
        type="credit_card",
        is_default=True,
    )
    assert len(defaults(other_user)) == 1


def test_the_database_refuses_a_second_default_via_update(user):
    add(user, "pm_1")
    second = add(user, "pm_2")
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentMethod.objects.filter(pk=second.pk).update(is_default=True)
    assert len(defaults(user)) == 1


def test_deactivate_clears_the_default(user):
    first = add(user, "pm_1")
    second = add(user, "pm_2")
    result = services.deactivate_payment_method(method=first)
    assert (result.is_active, result.is_default) == (False, False)
    first.refresh_from_db()
    assert first.is_active is False
    assert first.is_default is False
    assert defaults(user) == []
    # Soft delete: the row stays for the payments that used it.
    assert PaymentMethod.objects.filter(pk=first.pk).exists()
    # The next default can be chosen, but not the deactivated one.
    services.set_default_payment_method(method=second)
    assert defaults(user) == [second.pk]
    with pytest.raises(PaymentValidationError) as info:
        services.set_default_payment_method(method=first)
    assert info.value.field == "payment_method"
    assert "deactivated" in info.value.message
    assert defaults(user) == [second.pk]


def test_after_the_default_is_deactivated_the_next_method_added_becomes_default(user):
    first = add(user, "pm_1")
    services.deactivate_payment_method(method=first)
    replacement = add(user, "pm_2")
    assert replacement.is_default is True
    assert defaults(user) == [replacement.pk]


def test_a_deactivated_method_cannot_pay(user):
    from paydesk.exceptions import PaymentMethodNotUsable

    method = add(user, "pm_sandbox_visa")
    services.deactivate_payment_method(method=method)
    with pytest.raises(PaymentMethodNotUsable):
        services.create_payment(amount="5.00", currency="USD", user=user, payment_method=method)


def test_a_saved_method_pays_through_the_sandbox(user):
    method = add(user, "pm_sandbox_visa", brand="visa", last4="4242")
    payment = services.create_payment(
        amount="5.00", currency="USD", user=user, payment_method=method
    )
    payment = services.process_payment(payment=payment)
    assert payment.status == "completed"
    assert payment.payment_method == method


def test_the_same_token_for_another_user_is_a_validation_error(user, other_user):
    # A provider token belongs to one customer. Saving it again for someone else must be an
    # answer in paydesk's error tree (a 400 naming the field), not a bare IntegrityError
    # (a 500 from the API).
    mine = add(user, "pm_shared")
    with pytest.raises(PaymentValidationError) as info:
        add(other_user, "pm_shared")
    assert info.value.field == "provider_token"
    assert PaymentMethod.objects.filter(provider_token="pm_shared").get() == mine
    assert not PaymentMethod.objects.filter(user=other_user).exists()


def test_saving_the_same_token_twice_for_one_user_is_not_a_crash(user):
    first = add(user, "pm_again")

    def save_again():
        try:
            return add(user, "pm_again")
        except PaymentValidationError as exc:
            return exc

    # Either answer is fine: the existing method back, or a validation error on the field.
    outcome = save_again()
    if isinstance(outcome, PaymentValidationError):
        assert outcome.field == "provider_token"
    else:
        assert outcome.pk == first.pk
    assert PaymentMethod.objects.filter(provider_token="pm_again").count() == 1
