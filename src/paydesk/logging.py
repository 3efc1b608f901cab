"""Structured, redacted logging for payments.

This module owns one decision: what paydesk's log records may contain. Every record a
``paydesk.*`` logger emits passes a :class:`RedactionFilter` before any handler formats it
(installed by ``PaydeskConfig.ready``; ``PAYDESK["LOGGING"]["FILTER_SENSITIVE_DATA"]``,
default ``True``, switches it off). The filter rewrites the record in place, so every
handler downstream (console, file, Sentry, pytest's ``caplog``) sees the redacted version.
It removes:

* card numbers: Luhn-valid runs of 13 to 19 digits, also written with spaces or dashes
  (kept: the last four digits, ``[CARD ****4242]``);
* CVCs next to a ``cvc`` / ``cvv`` / ``csc`` / ``security_code`` key;
* secret keys and tokens: ``sk_live_``/``sk_test_``/``rk_...`` Stripe keys, ``whsec_``
  webhook secrets, client secrets (``pi_..._secret_...``), JWTs, ``Authorization`` header
  values (``Bearer``, ``Basic``, ``Api-Key``, ``IYZWSv2`` ...), ``x-api-key``, and any
  ``api_key=`` / ``password:`` / ``client_secret=`` style pair;
* the exact values of configured secrets: every string in ``PAYDESK`` (the providers'
  ``OPTIONS`` included, ``env()`` markers resolved) whose key contains ``SECRET``,
  ``KEY``, ``PASSWORD`` or ``TOKEN`` (not ``PUBLIC``/``PUBLISHABLE``), and Django's
  ``SECRET_KEY``.

The same filter is on ``django.dispatch``, where Django's ``send_robust`` logs the exceptions
of paydesk's failing signal receivers. It looks at the message and its arguments, ``extra``
values (keys such as ``cvc`` or ``api_key`` are blanked whole), ``stack_info`` and the
formatted traceback. A record whose traceback held a secret keeps only the redacted text
(``exc_text``) and loses ``exc_info``, so no handler can format the original exception
again. The message template is kept when redacting the arguments alone is enough (error
trackers group on it).

For host code: :func:`get_logger` returns a :class:`PaymentLogger` whose methods
(``payment_created``, ``payment_failed``, ``provider_call``, ...) emit one record each with
``extra={"paydesk": {...}}`` (event, payment id, provider, amount as a string, currency,
request id). :class:`JSONFormatter` writes one JSON object per line.
:func:`setup_django_logging` builds a ``LOGGING`` dict from ``PAYDESK["LOGGING"]``.
:func:`connect_lifecycle_logging` logs every lifecycle signal. :class:`RequestIdMiddleware`
sets the request id the records carry.

(This module is ``paydesk.logging``. Inside paydesk, ``import logging`` is the standard
library's: imports are absolute.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import logging.config
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from .conf import DEFAULTS, paydesk_settings, resolve

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

__all__ = [
    "JSONFormatter",
    "PaymentLogger",
    "RedactionFilter",
    "RequestIdMiddleware",
    "configured_secrets",
    "connect_lifecycle_logging",
    "current_request_id",
    "disconnect_lifecycle_logging",
    "get_logger",
    "install_redaction",
    "redact",
    "redact_record",
    "redact_value",
    "request_id_context",
    "setup_django_logging",
]

REDACTED = "[REDACTED]"

# -- what a secret looks like ---------------------------------------------------------------

_L = r"(?<![A-Za-z0-9])"  # a left word edge that treats "_" as an edge (PAYDESK_API_KEY)
_R = r"(?![A-Za-z0-9])"
_SEP = r"""(["'\]]*\s*[:=]\s*["']?)"""  # key: value, key=value, "key": "value", card[key]=
_NOT_DONE = r"(?!\[REDACTED|\[CARD)"

_AUTH_HEADER = re.compile(
    r"(?i)" + _L + r"((?:proxy-)?authorization)" + _SEP + _NOT_DONE + r"""([^"'\r\n,}]+)"""
)
_KEY_VALUE = re.compile(
    r"(?i)" + _L + r"(x-api-key|api[_-]?key|api[_-]?secret|secret[_-]?key|client[_-]?secret|"
    r"webhook[_-]?secret|ipn[_-]?secret|signing[_-]?secret|access[_-]?token|"
    r"refresh[_-]?token|auth[_-]?token|password|passwd|secret)"
    + _R
    + _SEP
    + _NOT_DONE
    + r"""([^"'\s,&}\]]+)"""
)
_SCHEME = re.compile(
    r"(?i)"
    + _L
    + r"(Bearer|Api-Key|ApiKey|IYZWSv2|IYZWS)\s+"
    + _NOT_DONE
    + r"([A-Za-z0-9._~+/=:\-]{8,})"
)
_BASIC = re.compile(r"(?i)" + _L + r"(Basic)\s+([A-Za-z0-9+/]{8,}={0,2})(?![A-Za-z0-9+/=])")
_STRIPE_KEY = re.compile(_L + r"((?:sk|rk)_(?:live|test))_[A-Za-z0-9]{6,}")
_WEBHOOK_SECRET = re.compile(_L + r"whsec_[A-Za-z0-9+/=]{6,}")
_CLIENT_SECRET = re.compile(_L + r"((?:pi|seti|src|cs)_[A-Za-z0-9_]+?_secret_)[A-Za-z0-9]+")
_JWT = re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")
_CVC = re.compile(
    r"(?i)"
    + _L
    + r"(cvc2?|cvv2?|cvn|csc|security[_\- ]?code|card[_\- ]?code)"
    + r"""(["'\]]*\s*[:=]?\s*["']?)(\d{3,4})(?!\d)"""
)
# A run of digits, single spaces or dashes allowed between them, at least 13 digits long.
_DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z])\d(?:[ -]?\d){12,}(?![0-9A-Za-z])")

#: ``extra`` keys whose whole value is blanked (compared lower-cased, without ``-``/``_``).
SENSITIVE_KEYS = frozenset(
    {
        "cvc",
        "cvc2",
        "cvv",
        "cvv2",
        "cvn",
        "csc",
        "securitycode",
        "cardcode",
        "cardnumber",
        "password",
        "passwd",
        "secret",
        "secretkey",
        "apikey",
        "apisecret",
        "xapikey",
        "clientsecret",
        "webhooksecret",
        "webhooksecrets",
        "ipnsecret",
        "ipnsecrets",
        "signingsecret",
        "authorization",
        "proxyauthorization",
        "accesstoken",
        "refreshtoken",
        "authtoken",
    }
)
_SECRET_NAME_PARTS = ("SECRET", "KEY", "PASSWORD", "TOKEN")
_PUBLIC_NAME_PARTS = ("PUBLIC", "PUBLISHABLE")
_MIN_SECRET_LENGTH = 8  # shorter configured values would blank ordinary words


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _is_card(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and _luhn(digits)


def _mask(digits: str) -> str:
    return f"[CARD ****{digits[-4:]}]"


def _cards(match: re.Match[str]) -> str:
    run = match.group()
    parts = re.split(r"([ -])", run)  # digits, separator, digits, ...
    tokens = parts[0::2]
    whole = "".join(tokens)
    if _is_card(whole):
        return _mask(whole)
    # A card next to other digits ("4242 4242 4242 4242 123"): look for a card made of
    # consecutive groups, longest first, left to right.
    out: list[str] = []
    i = 0
    while i < len(tokens):
        found = 0
        for j in range(len(tokens), i, -1):
            if _is_card("".join(tokens[i:j])):
                found = j
                break
        if found:
            out.append(_mask("".join(tokens[i:found])))
            if found < len(tokens):
                out.append(parts[2 * found - 1])
            i = found
        else:
            out.append(tokens[i])
            if i + 1 < len(tokens):
                out.append(parts[2 * i + 1])
            i += 1
    return "".join(out)


def _basic(match: re.Match[str]) -> str:
    token = match.group(2)
    body = token[1:]
    encoded = any(c.isdigit() or c in "+/=" for c in token) or (
        any(c.isupper() for c in body) and any(c.islower() for c in body)
    )
    return f"{match.group(1)} {REDACTED}" if encoded else match.group()


def redact(text: str, secrets: tuple[str, ...] | None = None) -> str:
    """``text`` without card numbers, CVCs, keys, tokens and configured secrets.

    ``secrets`` are exact values to remove (default: :func:`configured_secrets`).
    """
    if not text:
        return text
    for secret in configured_secrets() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    text = _KEY_VALUE.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    text = _SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _BASIC.sub(_basic, text)
    text = _STRIPE_KEY.sub(lambda m: f"{m.group(1)}_{REDACTED}", text)
    text = _WEBHOOK_SECRET.sub("whsec_" + REDACTED, text)
    text = _CLIENT_SECRET.sub(lambda m: m.group(1) + REDACTED, text)
    text = _JWT.sub(REDACTED, text)
    text = _CVC.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    return _DIGIT_RUN.sub(_cards, text)


def _sensitive_key(key: Any) -> bool:
    return isinstance(key, str) and re.sub(r"[-_ ]", "", key.lower()) in SENSITIVE_KEYS


def redact_value(value: Any, secrets: tuple[str, ...] | None = None, _depth: int = 0) -> Any:
    """``value`` with :func:`redact` applied to every string in it (dicts, lists, tuples,
    sets), and the values of sensitive keys (``cvc``, ``api_key``, ...) blanked."""
    if secrets is None:
        secrets = configured_secrets()
    if _depth > 8:
        return value
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, bool) or value is None or isinstance(value, float | Decimal):
        return value
    if isinstance(value, int):
        text = str(value)
        cleaned = redact(text, secrets)
        return value if cleaned == text else cleaned  # a card number passed as an int
    if isinstance(value, Mapping):
        return {
            key: (
                REDACTED
                if _sensitive_key(key) and item not in (None, "")
                else redact_value(item, secrets, _depth + 1)
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = [redact_value(item, secrets, _depth + 1) for item in value]
        return items if isinstance(value, list) else type(value)(items)
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}", secrets)
    return value


def _secret_name(name: str) -> bool:
    upper = name.upper()
    return any(part in upper for part in _SECRET_NAME_PARTS) and not any(
        part in upper for part in _PUBLIC_NAME_PARTS
    )


def _collect(value: Any, found: set[str], secret: bool = False, depth: int = 0) -> None:
    if depth > 6:
        return
    value = resolve(value)
    if isinstance(value, Mapping):
        for key, item in value.items():
            _collect(item, found, secret or (isinstance(key, str) and _secret_name(key)), depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _collect(item, found, secret, depth + 1)
    elif secret and isinstance(value, str | bytes):
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if len(text) >= _MIN_SECRET_LENGTH:
            found.add(text)


def configured_secrets() -> tuple[str, ...]:
    """The exact secret values configured now, longest first (see the module docstring).

    Read on every call (``env()`` values are resolved when used, and tests change
    settings); empty before Django's settings are configured.
    """
    try:
        from django.conf import settings

        if not settings.configured:
            return ()
        found: set[str] = set()
        _collect(paydesk_settings.user_settings, found)
        secret_key = getattr(settings, "SECRET_KEY", "")
        if isinstance(secret_key, str) and len(secret_key) >= _MIN_SECRET_LENGTH:
            found.add(secret_key)
    except Exception:  # never let logging fail because settings are odd
        return ()
    return tuple(sorted(found, key=len, reverse=True))


# -- redacting a record ---------------------------------------------------------------------

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}
_DONE = "_paydesk_redacted"


def _redact_args(args: Any, secrets: tuple[str, ...]) -> Any:
    def one(arg: Any) -> Any:
        if isinstance(arg, bool) or arg is None or isinstance(arg, float | Decimal):
            return arg
        text = arg if isinstance(arg, str) else str(arg)
        cleaned = redact(text, secrets)
        return arg if cleaned == text else cleaned

    if isinstance(args, Mapping):
        return {key: one(value) for key, value in args.items()}
    if isinstance(args, tuple):
        return tuple(one(arg) for arg in args)
    return args


def redact_record(record: logging.LogRecord, secrets: tuple[str, ...] | None = None) -> None:
    """Redact ``record`` in place: message and arguments, extras, stack and traceback."""
    if getattr(record, _DONE, False):
        return
    if secrets is None:
        secrets = configured_secrets()
    try:
        message: str | None = record.getMessage()
    except Exception:  # a broken format string: the handler reports it; redact the parts
        message = None
    if message is None:
        record.msg = redact(str(record.msg), secrets)
        record.args = _redact_args(record.args, secrets) if record.args else record.args
    else:
        cleaned = redact(message, secrets)
        if cleaned != message:
            # Keep the template (error trackers group on it) if redacting the parts is enough.
            template = redact(record.msg, secrets) if isinstance(record.msg, str) else record.msg
            args = _redact_args(record.args, secrets) if record.args else record.args
            try:
                candidate = str(template) % args if args else str(template)
            except Exception:
                candidate = None
            if candidate is not None and redact(candidate, secrets) == candidate:
                record.msg, record.args = template, args
            else:
                record.msg, record.args = cleaned, ()
    for key, value in list(vars(record).items()):
        if key not in _STANDARD_ATTRS and not key.startswith("_"):
            setattr(record, key, REDACTED if _sensitive_key(key) else redact_value(value, secrets))
    if record.stack_info:
        record.stack_info = redact(record.stack_info, secrets)
    if record.exc_info and record.exc_info[0] is not None:
        text = record.exc_text or logging.Formatter().formatException(record.exc_info)
        record.exc_text = redact(text, secrets)
        if record.exc_text != text:
            # The exception itself still holds the secret: no handler may format it again.
            record.exc_info = None
    elif record.exc_text:
        record.exc_text = redact(record.exc_text, secrets)
    setattr(record, _DONE, True)


def _filtering_enabled() -> bool:
    try:
        return bool(paydesk_settings.LOGGING.get("FILTER_SENSITIVE_DATA", True))
    except Exception:
        return True


class RedactionFilter(logging.Filter):
    """A logging filter that redacts records in place and lets every record through.

    ``enabled=None`` (what paydesk installs) follows ``PAYDESK["LOGGING"]
    ["FILTER_SENSITIVE_DATA"]`` at each record; ``True`` always redacts (for a filter you
    name in your own ``LOGGING``: ``{"()": "paydesk.logging.RedactionFilter"}``).
    """

    def __init__(self, name: str = "", enabled: bool | None = True) -> None:
        super().__init__(name)
        self.enabled = enabled

    def filter(self, record: logging.LogRecord) -> bool:
        if self.enabled or (self.enabled is None and _filtering_enabled()):
            try:
                redact_record(record)
            except Exception as exc:  # a filter must never raise into the code that logs
                _blank(record, exc)
        return True


def _blank(record: logging.LogRecord, exc: Exception) -> None:
    """What is left of a record that could not be redacted: nothing it carried."""
    record.msg = f"{REDACTED} (paydesk could not redact this record: {type(exc).__name__})"
    record.args = ()
    record.exc_info = None
    record.exc_text = None
    record.stack_info = None
    for key in list(vars(record)):
        if key not in _STANDARD_ATTRS and not key.startswith("_"):
            setattr(record, key, REDACTED)
    setattr(record, _DONE, True)


class _RedactingHandler(logging.Handler):
    """First handler of the ``paydesk`` logger: redacts records from every ``paydesk.*``
    logger, including those created after start-up, before the handlers after it (and the
    root logger's) see them. Writes nothing itself."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.addFilter(RedactionFilter(enabled=None))

    def handle(self, record: logging.LogRecord) -> bool:
        self.filter(record)
        if not self._others_handle(record):
            # Without us the record would reach no handler and Python would print it on
            # stderr (logging.lastResort); keep that behaviour.
            last = logging.lastResort
            if last is not None and record.levelno >= last.level:
                last.handle(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() decides
        pass

    def _others_handle(self, record: logging.LogRecord) -> bool:
        current: logging.Logger | None = logging.getLogger(record.name or None)
        while current is not None:
            if any(handler is not self for handler in current.handlers):
                return True
            current = current.parent if current.propagate else None
        return False


class _InstalledFilter(RedactionFilter):
    """The filter :func:`install_redaction` puts on loggers. It follows the setting, and it
    puts the redacting handler back if a later ``dictConfig`` (or a second
    ``django.setup()``) removed it from the top logger of its tree."""

    def __init__(self, tree: str | None) -> None:
        super().__init__(enabled=None)
        self.tree = tree

    def filter(self, record: logging.LogRecord) -> bool:
        if self.tree is not None:
            top = logging.getLogger(self.tree)
            if not (top.handlers and isinstance(top.handlers[0], _RedactingHandler)):
                install_redaction(self.tree)
        return super().filter(record)


_install_lock = threading.Lock()


def _ensure_filter(logger: logging.Logger, tree: str | None) -> None:
    if not any(isinstance(f, _InstalledFilter) for f in logger.filters):
        logger.addFilter(_InstalledFilter(tree))


def install_redaction(name: str = "paydesk") -> None:
    """Redact every record of logger ``name`` and its children, now and later. Idempotent.

    ``PaydeskConfig.ready`` calls it for ``"paydesk"``. It adds a redacting first handler
    to the logger, which redacts what its children (those created later too) propagate to
    it, and a :class:`RedactionFilter` to the logger and each existing child (for handlers
    attached to a child). For ``"paydesk"`` it also filters ``django.dispatch``, where
    ``send_robust`` logs the failures of paydesk's signal receivers. Whether records are
    redacted follows ``FILTER_SENSITIVE_DATA`` at log time. A ``dictConfig`` that
    configures the logger again removes the handler (not the filters); the next record
    through a filtered logger puts it back, and calling this again does so at once.
    """
    with _install_lock:
        top = logging.getLogger(name)
        _ensure_filter(top, name)
        if name == "paydesk":
            # paydesk's signals go out through send_robust, which (Django >= 5.0) logs a
            # failing receiver's exception on "django.dispatch": records paydesk causes.
            _ensure_filter(logging.getLogger("django.dispatch"), name)
        prefix = name + "."
        for other, candidate in list(logging.Logger.manager.loggerDict.items()):
            if other.startswith(prefix) and isinstance(candidate, logging.Logger):
                _ensure_filter(candidate, name)
        ours = [h for h in top.handlers if isinstance(h, _RedactingHandler)]
        handler = ours[0] if ours else _RedactingHandler()
        if top.handlers[:1] != [handler]:
            for extra in ours:
                top.removeHandler(extra)
            top.addHandler(handler)  # under logging's lock; then first in line
            top.handlers.remove(handler)
            top.handlers.insert(0, handler)


# -- structured records ---------------------------------------------------------------------

_request_id: ContextVar[str | None] = ContextVar("paydesk_request_id", default=None)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def current_request_id() -> str | None:
    """The request id set by :class:`RequestIdMiddleware` or :func:`request_id_context`."""
    return _request_id.get()


@contextmanager
def request_id_context(request_id: str | None) -> Iterator[None]:
    """Tag the records logged inside the block (tasks, commands) with ``request_id``."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


class RequestIdMiddleware:
    """Give each request an id for the log records it causes.

    Takes the ``X-Request-ID`` header when it is a plausible id (the proxy's), else makes a
    new one; sets it for paydesk's records (``current_request_id()``) and answers it in the
    ``X-Request-ID`` response header. Works in sync and async stacks.
    """

    sync_capable = True
    async_capable = True
    header = "HTTP_X_REQUEST_ID"

    def __init__(self, get_response: Callable[..., Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def _id(self, request: HttpRequest) -> str:
        given = request.META.get(self.header, "")
        return given if _REQUEST_ID.match(given or "") else uuid.uuid4().hex

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        request_id = self._id(request)
        with request_id_context(request_id):
            response: HttpResponse = self.get_response(request)
        response.headers.setdefault("X-Request-ID", request_id)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        request_id = self._id(request)
        with request_id_context(request_id):
            response: HttpResponse = await self.get_response(request)
        response.headers.setdefault("X-Request-ID", request_id)
        return response


def _amount(value: Any, currency: str = "") -> str | None:
    """An amount as an exact string in its currency's exponent ("30.00", never a float)."""
    if value is None:
        return None
    value = getattr(value, "amount", value)  # Money or Decimal
    if isinstance(value, Decimal) and currency:
        from .money import Money

        with contextlib.suppress(Exception):  # an odd currency must not stop a log record
            value = Money(value, currency).amount  # the database's 30.0000 -> 30.00
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _payment_fields(payment: Any) -> dict[str, Any]:
    return {
        "payment_id": str(payment.pk),
        "provider": getattr(payment, "provider", ""),
        "amount": _amount(getattr(payment, "amount", None), getattr(payment, "currency", "")),
        "currency": getattr(payment, "currency", ""),
        "status": str(getattr(payment, "status", "")),
        "reference": getattr(payment, "reference", ""),
        "attempt": getattr(payment, "attempt", None),
    }


def _refund_fields(refund: Any) -> dict[str, Any]:
    payment = getattr(refund, "payment", None)
    return {
        "refund_id": str(refund.pk),
        "payment_id": str(getattr(refund, "payment_id", "") or getattr(payment, "pk", "")),
        "provider": getattr(payment, "provider", ""),
        "amount": _amount(getattr(refund, "amount", None), getattr(refund, "currency", "")),
        "currency": getattr(refund, "currency", ""),
        "status": str(getattr(refund, "status", "")),
    }


class PaymentLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger adapter with one method per payment event.

    Each method emits one record whose ``extra`` holds ``{"paydesk": {"event": ...,
    "payment_id": ..., "provider": ..., "amount": "19.99", "currency": "USD", ...,
    "request_id": ...}}``. Fields bound with :meth:`bind` (or ``get_logger(**context)``) are
    added to every record; so is the current request id. Ordinary ``info()``/``warning()``
    calls get the same ``paydesk`` extra.
    """

    def __init__(self, logger: logging.Logger, context: Mapping[str, Any] | None = None) -> None:
        super().__init__(logger, dict(context or {}))

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(kwargs.get("extra") or {})
        fields = {**dict(self.extra or {}), **dict(extra.get("paydesk") or {})}
        request_id = current_request_id()
        if request_id and not fields.get("request_id"):
            fields["request_id"] = request_id
        extra["paydesk"] = fields
        kwargs["extra"] = extra
        return msg, kwargs

    def bind(self, **context: Any) -> PaymentLogger:
        """A logger like this one whose records also carry ``context``."""
        return PaymentLogger(self.logger, {**dict(self.extra or {}), **context})

    def _event(
        self,
        level: int,
        event: str,
        msg: str,
        args: tuple[Any, ...],
        fields: Mapping[str, Any],
        extra: Mapping[str, Any],
        exc_info: Any = None,
    ) -> None:
        if not self.isEnabledFor(level):
            return
        data = {"event": event, **fields, **extra}
        data = {key: value for key, value in data.items() if value is not None and value != ""}
        self.log(level, msg, *args, extra={"paydesk": data}, exc_info=exc_info, stacklevel=3)

    def payment_created(self, payment: Any, **extra: Any) -> None:
        f = _payment_fields(payment)
        self._event(
            logging.INFO,
            "payment.created",
            "Payment %s created: %s %s via %s",
            (f["payment_id"], f["amount"], f["currency"], f["provider"]),
            f,
            extra,
        )

    def payment_requires_action(self, payment: Any, **extra: Any) -> None:
        f = _payment_fields(payment)
        self._event(
            logging.INFO,
            "payment.requires_action",
            "Payment %s requires the customer's action",
            (f["payment_id"],),
            f,
            extra,
        )

    def payment_confirmed(self, payment: Any, **extra: Any) -> None:
        f = _payment_fields(payment)
        self._event(
            logging.INFO,
            "payment.confirmed",
            "Payment %s %s: %s %s via %s",
            (f["payment_id"], f["status"], f["amount"], f["currency"], f["provider"]),
            f,
            extra,
        )

    def payment_failed(
        self,
        payment: Any,
        error_code: str,
        error_message: str,
        *,
        exc_info: Any = None,
        **extra: Any,
    ) -> None:
        f = {**_payment_fields(payment), "error_code": error_code, "error_message": error_message}
        self._event(
            logging.WARNING,
            "payment.failed",
            "Payment %s failed (%s): %s",
            (f["payment_id"], error_code, error_message),
            f,
            extra,
            exc_info,
        )

    def payment_cancelled(self, payment: Any, **extra: Any) -> None:
        f = _payment_fields(payment)
        self._event(
            logging.INFO,
            "payment.cancelled",
            "Payment %s cancelled",
            (f["payment_id"],),
            f,
            extra,
        )

    def refund_created(self, refund: Any, **extra: Any) -> None:
        f = _refund_fields(refund)
        self._event(
            logging.INFO,
            "refund.created",
            "Refund %s of %s %s created for payment %s",
            (f["refund_id"], f["amount"], f["currency"], f["payment_id"]),
            f,
            extra,
        )

    def refund_completed(self, refund: Any, **extra: Any) -> None:
        f = _refund_fields(refund)
        self._event(
            logging.INFO,
            "refund.completed",
            "Refund %s of %s %s completed for payment %s",
            (f["refund_id"], f["amount"], f["currency"], f["payment_id"]),
            f,
            extra,
        )

    def refund_failed(self, refund: Any, error_code: str, error_message: str, **extra: Any) -> None:
        f = {**_refund_fields(refund), "error_code": error_code, "error_message": error_message}
        self._event(
            logging.WARNING,
            "refund.failed",
            "Refund %s for payment %s failed (%s): %s",
            (f["refund_id"], f["payment_id"], error_code, error_message),
            f,
            extra,
        )

    def webhook_received(self, provider: str, event_type: str, event_id: str, **extra: Any) -> None:
        f = {"provider": provider, "event_type": event_type, "event_id": event_id}
        self._event(
            logging.INFO,
            "webhook.received",
            "Webhook %s (%s) received from %s",
            (event_id, event_type, provider),
            f,
            extra,
        )

    def provider_call(
        self, provider: str, operation: str, duration_ms: float, ok: bool, **extra: Any
    ) -> None:
        f = {
            "provider": provider,
            "operation": operation,
            "duration_ms": round(float(duration_ms), 1),
            "ok": bool(ok),
        }
        self._event(
            logging.INFO if ok else logging.WARNING,
            "provider.call",
            "Provider call %s.%s %s in %.1f ms",
            (provider, operation, "succeeded" if ok else "failed", float(duration_ms)),
            f,
            extra,
        )


def get_logger(name: str = "paydesk", **context: Any) -> PaymentLogger:
    """A :class:`PaymentLogger` on logger ``name``, its records carrying ``context``.

    The logger gets the redaction filter (also a name outside ``paydesk.*``).
    """
    logger = logging.getLogger(name)
    paydesk_own = name == "paydesk" or name.startswith("paydesk.")
    _ensure_filter(logger, "paydesk" if paydesk_own else None)
    return PaymentLogger(logger, context)


class JSONFormatter(logging.Formatter):
    """One JSON object per record: ``timestamp`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, every ``extra`` (``paydesk`` among them), ``exception`` and ``stack``.

    Values JSON cannot hold are written as strings (``Decimal("19.99")`` -> ``"19.99"``).
    """

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_") and key not in data:
                data[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=_json_default, ensure_ascii=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def setup_django_logging(
    config: Mapping[str, Any] | None = None,
    *,
    configure: bool = False,
    propagate: bool = False,
) -> dict[str, Any]:
    """A ``LOGGING`` dict for paydesk's records, from ``PAYDESK["LOGGING"]``.

    ``config`` is that dict (pass it in ``settings.py``, where Django's settings cannot be
    read yet: ``LOGGING = setup_django_logging(PAYDESK.get("LOGGING"))``); by default the
    configured one. The result has a console handler, a ``WatchedFileHandler`` when ``FILE``
    is set, the JSON or text formatter (``JSON``), the redaction filter on both handlers
    (``FILTER_SENSITIVE_DATA``) and the ``paydesk`` logger at ``LEVEL``, not propagating to
    the root logger unless ``propagate``. Merge it into a larger ``LOGGING`` as you like.
    ``configure=True`` also applies it now (``logging.config.dictConfig``).
    """
    if config is None:
        try:
            from django.conf import settings

            config = paydesk_settings.LOGGING if settings.configured else {}
        except Exception:
            config = {}
    options = {**DEFAULTS["LOGGING"], **dict(config or {})}
    formatter = "paydesk_json" if options["JSON"] else "paydesk_text"
    filters = ["paydesk_redact"] if options["FILTER_SENSITIVE_DATA"] else []
    handlers: dict[str, dict[str, Any]] = {
        "paydesk_console": {
            "class": "logging.StreamHandler",
            "formatter": formatter,
            "filters": filters,
        }
    }
    if options["FILE"]:
        handlers["paydesk_file"] = {
            "class": "logging.handlers.WatchedFileHandler",
            "filename": str(options["FILE"]),
            "encoding": "utf-8",
            "formatter": formatter,
            "filters": filters,
        }
    fragment: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"paydesk_redact": {"()": "paydesk.logging.RedactionFilter", "enabled": True}},
        "formatters": {
            "paydesk_json": {"()": "paydesk.logging.JSONFormatter"},
            "paydesk_text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        },
        "handlers": handlers,
        "loggers": {
            "paydesk": {
                "handlers": list(handlers),
                "level": str(options["LEVEL"]).upper(),
                "propagate": propagate,
            }
        },
    }
    if configure:
        logging.config.dictConfig(fragment)
        install_redaction()  # dictConfig replaced the paydesk logger's handlers
    return fragment


# -- lifecycle signals -> records -----------------------------------------------------------

_LIFECYCLE = "paydesk.lifecycle"


def _lifecycle_receivers() -> dict[str, Callable[..., None]]:
    log = get_logger(_LIFECYCLE)

    def created(sender: Any, *, payment: Any, **kwargs: Any) -> None:
        log.payment_created(payment)

    def requires_action(sender: Any, *, payment: Any, **kwargs: Any) -> None:
        log.payment_requires_action(payment)

    def confirmed(sender: Any, *, payment: Any, **kwargs: Any) -> None:
        log.payment_confirmed(payment)

    def failed(
        sender: Any, *, payment: Any, error_code: str = "", error_message: str = "", **kw: Any
    ) -> None:
        log.payment_failed(
            payment, error_code or payment.failure_code, error_message or payment.failure_message
        )

    def cancelled(sender: Any, *, payment: Any, **kwargs: Any) -> None:
        log.payment_cancelled(payment)

    def refunded(sender: Any, *, refund: Any, **kwargs: Any) -> None:
        log.refund_completed(refund)

    def refund_failed(
        sender: Any, *, refund: Any, error_code: str = "", error_message: str = "", **kw: Any
    ) -> None:
        log.refund_failed(refund, error_code, error_message)

    def webhook(
        sender: Any, *, provider: str = "", event_type: str = "", delivery: Any = None, **kw: Any
    ) -> None:
        log.webhook_received(
            provider,
            event_type,
            str(getattr(delivery, "event_id", "")),
            result=kw.get("result"),
        )

    return {
        "payment_created": created,
        "payment_requires_action": requires_action,
        "payment_confirmed": confirmed,
        "payment_failed": failed,
        "payment_cancelled": cancelled,
        "payment_refunded": refunded,
        "refund_failed": refund_failed,
        "webhook_received": webhook,
    }


def connect_lifecycle_logging() -> None:
    """Log every lifecycle signal (created, confirmed, failed, refunded, webhook received,
    ...) as a structured record on the ``paydesk.lifecycle`` logger. Idempotent; call it
    from your ``AppConfig.ready()``."""
    from . import signals

    for name, receiver in _lifecycle_receivers().items():
        getattr(signals, name).connect(receiver, weak=False, dispatch_uid=f"{_LIFECYCLE}.{name}")


def disconnect_lifecycle_logging() -> None:
    """Undo :func:`connect_lifecycle_logging`."""
    from . import signals

    for name in _lifecycle_receivers():
        getattr(signals, name).disconnect(dispatch_uid=f"{_LIFECYCLE}.{name}")
