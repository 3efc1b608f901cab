"""Currencies, exchange rates and conversion endpoints (filled by the rates work)."""

urlpatterns: list = []
