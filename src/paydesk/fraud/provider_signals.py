"""Fraud signals providers report, read out of a ``PaymentResult``'s raw answer.

This module owns one decision: which parts of a provider's answer are about fraud, and
when they mean "flagged". ``extract(raw)`` returns ``(signals, flagged)`` or ``None`` when
the answer says nothing about fraud:

* iyzico: ``fraudStatus`` (``1`` passed, ``0`` held for iyzico's review, ``-1`` refused);
  flagged unless ``1``.
* Stripe: the charge ``outcome`` (``type``, ``risk_level``, ``risk_score``,
  ``network_status``, ``reason``, ``rule``), read from ``outcome`` or an expanded
  ``latest_charge``, and a ``last_payment_error`` whose decline code is ``fraudulent`` or
  ``merchant_blacklist``; flagged when the risk level is ``elevated`` or ``highest``, the
  outcome type is ``blocked`` or ``manual_review``, or the decline is for fraud.
* Any provider: a ``risk`` mapping in the raw answer (a provider adapter's own convention:
  ``{"flagged": bool, ...}``) is kept as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["extract"]

_STRIPE_OUTCOME_KEYS = ("type", "risk_level", "risk_score", "network_status", "reason", "rule")
_STRIPE_FRAUD_DECLINES = frozenset({"fraudulent", "merchant_blacklist", "stolen_card"})


def _stripe(raw: Mapping[str, Any]) -> tuple[dict[str, Any], bool] | None:
    outcome = raw.get("outcome")
    charge = raw.get("latest_charge")
    if not isinstance(outcome, Mapping) and isinstance(charge, Mapping):
        outcome = charge.get("outcome")
    signals: dict[str, Any] = {}
    flagged = False
    if isinstance(outcome, Mapping):
        for key in _STRIPE_OUTCOME_KEYS:
            value = outcome.get(key)
            if isinstance(value, Mapping):  # outcome.rule may be expanded
                value = value.get("id")
            if value not in (None, ""):
                signals[key] = value
        flagged = signals.get("risk_level") in ("elevated", "highest") or signals.get("type") in (
            "blocked",
            "manual_review",
        )
    error = raw.get("last_payment_error")
    if isinstance(error, Mapping) and error.get("decline_code") in _STRIPE_FRAUD_DECLINES:
        signals["decline_code"] = error["decline_code"]
        flagged = True
    return (signals, flagged) if signals else None


def extract(raw: Mapping[str, Any] | None) -> tuple[dict[str, Any], bool] | None:
    """``(signals, flagged)`` from a provider's raw answer, or ``None`` if it has none."""
    if not raw:
        return None
    if "fraudStatus" in raw:  # iyzico
        status = str(raw.get("fraudStatus"))
        return {"fraudStatus": status}, status != "1"
    risk = raw.get("risk")
    if isinstance(risk, Mapping):
        return dict(risk), bool(risk.get("flagged"))
    return _stripe(raw)
