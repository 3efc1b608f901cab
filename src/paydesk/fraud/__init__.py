"""Fraud screening: the rules pipeline that runs before a payment is sent to its provider.

This package owns one decision: which rules run, with which options, and what their hits add
up to. It is configured by ``PAYDESK["FRAUD"]``; ``paydesk.services.fraud`` runs it and
records the verdict. See docs/fraud.md for each rule and how to write your own.
"""

from .base import FraudContext, Rule, RuleHit, Verdict, decide
from .pipeline import FunctionRule, load_rules, thresholds
from .rules import BUILTIN_RULES

__all__ = [
    "BUILTIN_RULES",
    "FraudContext",
    "FunctionRule",
    "Rule",
    "RuleHit",
    "Verdict",
    "decide",
    "load_rules",
    "thresholds",
]
