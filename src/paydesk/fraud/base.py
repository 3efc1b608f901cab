"""The shapes fraud rules work with: the context they read, the hit they return, the verdict.

This module owns one decision: the contract between paydesk's screening pipeline and a rule,
built-in or a project's own. A rule is a class with ``evaluate(context) -> RuleHit | None``
(and, if it counts recent attempts, ``lock_keys(context)`` naming what it counts, so that
concurrent attempts are counted one after another). Rules read the database but never write:
``paydesk.services.fraud`` records the verdict.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..exceptions import ConfigurationError
from ..money import Money

if TYPE_CHECKING:
    from ..models import Payment

__all__ = ["DECISIONS", "FraudContext", "Rule", "RuleHit", "Verdict", "decide"]

#: Decisions, weakest first.
DECISIONS = ("allow", "review", "block")


@dataclass(frozen=True)
class FraudContext:
    """What the rules know about one payment attempt.

    Identifiers are normalised: ``email`` lower-cased, countries upper-case ISO 3166 alpha-2
    codes, ``ip_address`` a valid address or ``None``. Empty means unknown; a rule that needs
    an unknown identifier does not fire. ``now`` is taken after the screening locks are held.
    """

    payment: Payment
    amount: Money
    attempt: int = 1
    user_id: Any = None
    email: str = ""
    ip_address: str | None = None
    card_fingerprint: str = ""
    card_country: str = ""
    ip_country: str = ""
    billing_country: str = ""
    now: dt.datetime | None = None
    #: Everything else the caller passed in ``fraud_context`` (device ids, session age...),
    #: for project rules.
    extra: Mapping[str, Any] = field(default_factory=dict)

    def identifier(self, by: str) -> Any:
        """The value a velocity-style rule keys on: ``user``, ``email``, ``ip`` or ``card``."""
        return {
            "user": self.user_id,
            "email": self.email,
            "ip": self.ip_address,
            "card": self.card_fingerprint,
        }[by]


@dataclass(frozen=True)
class RuleHit:
    """A rule fired: ``score`` points towards review/block, and why (shown to staff only).

    ``action`` (``"review"`` or ``"block"``) makes the decision at least that, whatever the
    total score; blocklist hits use it.
    """

    rule: str
    score: int
    reason: str
    action: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"rule": self.rule, "score": self.score, "reason": self.reason}
        if self.action:
            data["action"] = self.action
        return data


@dataclass(frozen=True)
class Verdict:
    decision: str  # "allow", "review" or "block"
    score: int = 0
    hits: tuple[RuleHit, ...] = ()
    screened: bool = True  # False: no rules are configured, nothing was recorded

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    @property
    def reasons(self) -> list[dict[str, Any]]:
        return [hit.as_dict() for hit in self.hits]


#: What ``screen_payment`` returns when no rules are configured.
NOT_SCREENED = Verdict(decision="allow", screened=False)


def decide(hits: Iterable[RuleHit], *, review_threshold: int, block_threshold: int) -> Verdict:
    """Add the scores up and compare them with the thresholds; actions set a floor."""
    hits = tuple(hits)
    score = sum(hit.score for hit in hits)
    level = 0
    if score >= block_threshold:
        level = 2
    elif score >= review_threshold:
        level = 1
    for hit in hits:
        if hit.action in DECISIONS:
            level = max(level, DECISIONS.index(hit.action))
    return Verdict(decision=DECISIONS[level], score=score, hits=hits)


class Rule:
    """Base class of fraud rules.

    Configured as ``{"RULE": "<alias or dotted path>", "OPTIONS": {...}}``; the options are
    passed to ``__init__`` as keyword arguments. Every rule takes ``name`` (shown in reasons
    and analytics; default the class's ``name``), ``score`` (points when it fires) and
    ``action`` (``"review"``/``"block"``: the least decision when it fires). A subclass
    takes its own options as keyword-only arguments and implements ``evaluate``.
    """

    name: ClassVar[str] = ""
    default_score: ClassVar[int] = 50
    default_action: ClassVar[str | None] = None

    def __init__(
        self, *, name: str | None = None, score: int | None = None, action: str | None = None
    ) -> None:
        self.rule_name: str = name or self.name or type(self).__name__
        self.score: int = self.default_score if score is None else int(score)
        self.action: str | None = self.default_action if action is None else action
        if self.action not in (None, "review", "block"):
            raise ConfigurationError(
                f"Fraud rule {self.rule_name!r}: action must be 'review', 'block' or None, "
                f"not {self.action!r}."
            )

    def lock_keys(self, context: FraudContext) -> Iterable[str]:
        """Keys whose recent attempts this rule counts; screening locks them first."""
        return ()

    def evaluate(self, context: FraudContext) -> RuleHit | None:
        raise NotImplementedError

    def hit(self, reason: str, *, score: int | None = None) -> RuleHit:
        """A ``RuleHit`` from this rule with its configured score and action."""
        return RuleHit(
            rule=self.rule_name,
            score=self.score if score is None else score,
            reason=reason,
            action=self.action,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.rule_name!r} score={self.score}>"
