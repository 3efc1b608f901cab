from __future__ import annotations

from django import forms

from .checkout import is_checkout_token


class CheckoutTokenField(forms.CharField):
    """The hidden one-time token that makes a double-submitted form create one payment."""

    widget = forms.HiddenInput

    def validate(self, value: str) -> None:
        super().validate(value)
        if not is_checkout_token(value):
            raise forms.ValidationError("This form has expired; reload the page and try again.")


class BuyForm(forms.Form):
    quantity = forms.IntegerField(min_value=1, max_value=10, initial=1)
    checkout_token = CheckoutTokenField()
