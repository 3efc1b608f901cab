"""Checking an uploaded transfer receipt before it is stored.

This module owns one decision: which uploads count as a receipt. The file's type is decided by
its first bytes (its "magic number"), not by its name or the Content-Type the browser sent,
both of which the uploader controls; the name's extension must also be one of the allowed
types, so a file cannot pose as something else by name only. The stored file is named after
the sniffed type. Size is checked against ``RECEIPT_MAX_SIZE``; an empty or missing file is
refused. Every refusal is a ``ReceiptRejected`` whose message can be shown to the customer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import ReceiptRejected

__all__ = [
    "DEFAULT_RECEIPT_TYPES",
    "RECEIPT_KINDS",
    "ReceiptKind",
    "check_receipt",
    "describe",
    "megabytes",
    "parse_receipt_types",
    "sniff",
]


@dataclass(frozen=True, slots=True)
class ReceiptKind:
    name: str
    content_type: str
    extensions: tuple[str, ...]
    label: str

    @property
    def extension(self) -> str:
        return self.extensions[0]


RECEIPT_KINDS: dict[str, ReceiptKind] = {
    "pdf": ReceiptKind("pdf", "application/pdf", ("pdf",), "PDF"),
    "png": ReceiptKind("png", "image/png", ("png",), "PNG"),
    "jpeg": ReceiptKind("jpeg", "image/jpeg", ("jpg", "jpeg"), "JPEG"),
    "gif": ReceiptKind("gif", "image/gif", ("gif",), "GIF"),
    "webp": ReceiptKind("webp", "image/webp", ("webp",), "WebP"),
}
DEFAULT_RECEIPT_TYPES = ("pdf", "png", "jpeg")

_ALIASES = {
    "jpg": "jpeg",
    **{kind.content_type: name for name, kind in RECEIPT_KINDS.items()},
}

SNIFF_BYTES = 16


def sniff(head: bytes) -> str | None:
    """The receipt kind whose signature ``head`` (the file's first bytes) starts with."""
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    return None


def parse_receipt_types(value: Any) -> tuple[str, ...]:
    """``RECEIPT_TYPES`` as kind names: a list, or a comma-separated string from the
    environment; ``jpg`` and MIME types are accepted as aliases. Unknown names raise
    ``ValueError`` (the registry reports it as paydesk.E010)."""
    if value is None or value == "":
        return DEFAULT_RECEIPT_TYPES
    items: Iterable[Any] = value.split(",") if isinstance(value, str) else value
    kinds: list[str] = []
    for item in items:
        name = str(item).strip().lower().lstrip(".")
        if not name:
            continue
        name = _ALIASES.get(name, name)
        if name not in RECEIPT_KINDS:
            raise ValueError(
                f"RECEIPT_TYPES: unknown type {item!r}; use some of {', '.join(RECEIPT_KINDS)}."
            )
        if name not in kinds:
            kinds.append(name)
    if not kinds:
        raise ValueError("RECEIPT_TYPES is empty; allow at least one of pdf, png, jpeg.")
    return tuple(kinds)


def describe(kinds: Iterable[str]) -> str:
    """``"PDF, PNG or JPEG"``."""
    labels = [RECEIPT_KINDS[name].label for name in kinds]
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} or {labels[-1]}"


def megabytes(size: int) -> str:
    """``5242880`` -> ``"5 MB"``, ``1572864`` -> ``"1.5 MB"``."""
    return f"{size / 1_048_576:.1f}".rstrip("0").rstrip(".") + " MB"


def check_receipt(file: Any, *, allowed: Iterable[str], max_size: int) -> ReceiptKind:
    """The kind of the uploaded ``file`` (a Django ``File``), or ``ReceiptRejected``.

    Reads only the first bytes, then rewinds the file so it can be saved.
    """
    allowed = tuple(allowed)
    accepted = describe(allowed)
    if file is None:
        raise ReceiptRejected(f"Choose a receipt file ({accepted}) to upload.")
    size = getattr(file, "size", None)
    if not size:
        raise ReceiptRejected("The receipt file is empty; choose the file your bank gave you.")
    if size > max_size:
        raise ReceiptRejected(
            f"The receipt is {megabytes(size)}; files up to {megabytes(max_size)} are "
            "accepted. Upload a smaller scan or a PDF export."
        )
    name = str(getattr(file, "name", "") or "")
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    allowed_extensions = {ext for kind in allowed for ext in RECEIPT_KINDS[kind].extensions}
    if extension and extension not in allowed_extensions:
        raise ReceiptRejected(f"Receipts must be {accepted} files; {name!r} is not.")
    file.seek(0)
    head = file.read(SNIFF_BYTES)
    file.seek(0)
    kind = sniff(head if isinstance(head, bytes) else bytes(head))
    if kind is None or kind not in allowed:
        what = f"a {RECEIPT_KINDS[kind].label} file" if kind else "not a file type we accept"
        raise ReceiptRejected(
            f"{name or 'The file'} is {what}: its content is not {accepted}, whatever its "
            "name says. Upload the receipt as your bank issued it."
        )
    return RECEIPT_KINDS[kind]
