from __future__ import annotations

from django import forms

from shop.forms import CheckoutTokenField


class BookForm(forms.Form):
    email = forms.EmailField(help_text="Where the ticket goes.")
    checkout_token = CheckoutTokenField()


class RefundForm(forms.Form):
    # No decimal_places limit here: paydesk decides what the payment's currency allows and
    # says so (e.g. "10.005 USD has more decimal places than USD allows").
    amount = forms.DecimalField(max_digits=19, help_text="Leave the whole amount or a part.")
    reason = forms.CharField(max_length=255, required=False)
