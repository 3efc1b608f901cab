"""Building the rule list from ``PAYDESK["FRAUD"]`` and evaluating it.

This module owns one decision: how a settings entry becomes a rule. An entry is an alias of
a built-in rule or a dotted path, alone (``"blocklist"``) or as ``{"RULE": ..., "OPTIONS":
{...}}``. A dotted path may name a ``Rule`` subclass (built with the options) or a plain
function ``fn(context)`` returning a ``RuleHit``, a ``(score, reason)`` pair or ``None``.
Rules are built from settings on every screening (cheap: imports are cached), so
``override_settings`` in tests and a changed setting in production apply at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.utils.module_loading import import_string

from ..conf import paydesk_settings
from ..exceptions import ConfigurationError
from .base import FraudContext, Rule, RuleHit, Verdict, decide
from .rules import BUILTIN_RULES

__all__ = ["FunctionRule", "evaluate", "load_rules", "thresholds"]


class FunctionRule(Rule):
    """A project rule written as a function: ``fn(context) -> RuleHit | (score, reason) | None``."""

    def __init__(self, function: Callable[[FraudContext], Any], **kwargs: Any) -> None:
        kwargs.setdefault("name", getattr(function, "__name__", "custom"))
        super().__init__(**kwargs)
        self.function = function

    def evaluate(self, context: FraudContext) -> RuleHit | None:
        outcome = self.function(context)
        if outcome is None or isinstance(outcome, RuleHit):
            return outcome
        score, reason = outcome
        return self.hit(str(reason), score=int(score))


def _entry(index: int, entry: Any) -> Rule:
    if isinstance(entry, Rule):
        return entry
    if isinstance(entry, str):
        entry = {"RULE": entry}
    where = f'PAYDESK["FRAUD"]["RULES"][{index}]'
    if not isinstance(entry, Mapping) or not entry.get("RULE"):
        raise ConfigurationError(
            f'{where} must be a rule alias or {{"RULE": "<alias or dotted path>", "OPTIONS": '
            f"{{...}}}}; built-in aliases: {', '.join(BUILTIN_RULES)}."
        )
    unknown = set(entry) - {"RULE", "OPTIONS"}
    if unknown:
        raise ConfigurationError(
            f"{where} has unknown keys {sorted(unknown)}; put a rule's settings in OPTIONS."
        )
    path = str(entry["RULE"])
    options = dict(entry.get("OPTIONS") or {})
    target: Any = BUILTIN_RULES.get(path)
    if target is None:
        try:
            target = import_string(path)
        except ImportError as exc:
            raise ConfigurationError(
                f"{where}: {path!r} is neither a built-in rule ({', '.join(BUILTIN_RULES)}) "
                f"nor an importable dotted path ({exc})."
            ) from exc
    try:
        if isinstance(target, type) and issubclass(target, Rule):
            return target(**options)
        if callable(target) and not isinstance(target, type):
            return FunctionRule(target, **options)
    except TypeError as exc:
        raise ConfigurationError(f"{where} ({path}): bad OPTIONS: {exc}") from exc
    raise ConfigurationError(f"{where}: {path!r} is not a Rule subclass or a function.")


def load_rules(entries: Iterable[Any] | None = None) -> list[Rule]:
    """The configured rules (``PAYDESK["FRAUD"]["RULES"]`` unless ``entries`` is given)."""
    if entries is None:
        entries = paydesk_settings.FRAUD.get("RULES") or []
    rules = [_entry(index, entry) for index, entry in enumerate(entries)]
    names = [rule.rule_name for rule in rules]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigurationError(
            f'PAYDESK["FRAUD"]["RULES"] names {", ".join(duplicates)} more than once; give '
            'each a distinct OPTIONS["name"] so reasons and analytics can tell them apart.'
        )
    return rules


def thresholds(config: Mapping[str, Any] | None = None) -> tuple[int, int]:
    """``(review, block)`` score thresholds, checked."""
    config = paydesk_settings.FRAUD if config is None else config
    try:
        review = int(config["REVIEW_THRESHOLD"])
        block = int(config["BLOCK_THRESHOLD"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(
            'PAYDESK["FRAUD"]: REVIEW_THRESHOLD and BLOCK_THRESHOLD must be whole numbers.'
        ) from exc
    if not 0 < review <= block:
        raise ConfigurationError(
            'PAYDESK["FRAUD"]: need 0 < REVIEW_THRESHOLD <= BLOCK_THRESHOLD '
            f"(got {review} and {block})."
        )
    return review, block


def evaluate(rules: Iterable[Rule], context: FraudContext) -> Verdict:
    """Run every rule on ``context`` and decide (no writes)."""
    review, block = thresholds()
    hits = [hit for rule in rules if (hit := rule.evaluate(context)) is not None]
    return decide(hits, review_threshold=review, block_threshold=block)
