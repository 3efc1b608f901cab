"""Statements on the webhook and ledger hot path, built once instead of compiled per call.

This module owns one decision: which few statements paydesk runs without the ORM's query
compiler, and how they keep the ORM's behaviour. The ORM compiles every query anew (a few
hundred microseconds of Python for a one-row read), and a delivery runs the same handful
of statements thousands of times an hour. So:

- ``insert_on_conflict``: store a row "unless it is already there" in one statement,
  ``INSERT ... ON CONFLICT (...) DO NOTHING | DO UPDATE ... RETURNING ...``, instead of a
  savepoint, an ``INSERT`` that fails and a rollback. Atomic on its own, so it needs no
  transaction; concurrent inserts of the same key are settled by the database. Columns at
  their field's constant default are written as literals.
- ``select_one`` / ``select_values``: an equality look-up (``.get()`` with an optional
  ``FOR UPDATE``, or ``values_list``) whose statement is built once, with values converted
  as the ORM converts them.
- ``fetch_one`` / ``fetch_all``: how those statements reach the database (server-side
  binding through one kept psycopg cursor per connection, inside Django's cursor wrapper).

Callers check ``supported()`` and keep the ORM path for other databases; tests compare each
statement's result with the ORM's.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.db import connections, models
from django.db.transaction import TransactionManagementError

_M = TypeVar("_M", bound=models.Model)

__all__ = [
    "Columns",
    "columns",
    "fetch_all",
    "fetch_one",
    "insert_on_conflict",
    "load",
    "mark_inserted",
    "select_one",
    "select_values",
    "supported",
]


def supported(using: str) -> bool:
    """Whether ``insert_on_conflict`` works on the database ``using``."""
    vendor = connections[using].vendor
    if vendor == "postgresql":
        return True
    # ON CONFLICT since 3.24, RETURNING since 3.35.
    return vendor == "sqlite" and sqlite3.sqlite_version_info >= (3, 35)


def insert_on_conflict(
    instance: models.Model,
    *,
    using: str,
    unique: Sequence[str],
    increment: str | None = None,
    returning: Sequence[models.Field[Any, Any]] | None = None,
) -> dict[str, Any] | None:
    """Insert ``instance``'s row (every concrete field but an auto primary key).

    On a conflict on the ``unique`` fields: with ``increment`` (a field name), add 1 to that
    column of the existing row and return the existing row's ``returning`` values; without,
    do nothing and return ``None``. Returns ``{attname: value}`` of ``returning`` (default:
    the primary key), converted as the ORM would (``mark_inserted`` then makes the instance
    a saved one). Sends no model signals; callers decide.
    """
    connection = connections[using]
    base = _plan(type(instance), using, tuple(unique), increment, tuple(returning or ()))
    get = instance.__dict__.get
    # Which columns hold their field's constant default (see ``_constant``): those are
    # written into the statement, the rest are parameters. Type-exact, as ``_same``, inline
    # because it runs for every candidate column of every insert.
    at_default = tuple(
        [
            type(value := get(attname, _MISSING)) is type(default) and value == default
            for attname, default in base.constants
        ]
    )
    plan = base.variants.get(at_default) or _variant(base, at_default, connection)
    params = []
    for sent, plain in zip(plan.fields, plan.plain, strict=True):
        value = sent.pre_save(instance, True)
        if value is None or type(value) not in plain:
            # ``None`` too: a field may turn it into something else (a default, SQL NULL).
            value = sent.get_db_prep_save(value, connection)
        params.append(value)
    row = fetch_one(connection, plan.sql, params)
    if row is None:
        return None  # DO NOTHING: the row was there
    values = list(row)
    for index, col, converters in base.converters:
        for converter in converters:
            values[index] = converter(values[index], col, connection)
    return dict(zip(base.attnames, values, strict=True))


_MISSING = object()


def _same(value: Any, default: Any) -> bool:
    # Exact type: ``True == 1`` and ``0 == False``, but they are different SQL literals.
    return type(value) is type(default) and value == default


# Field classes whose ``get_db_prep_save`` returns a value of these exact types unchanged
# (``to_python`` of a ``str``/``bool`` is the value itself, and no backend adapts them).
# Exact classes only: a subclass may convert differently. Not integers: on psycopg 3 Django
# wraps them in the column's integer type.
_PLAIN: dict[type[models.Field[Any, Any]], frozenset[type]] = {
    models.CharField: frozenset({str}),
    models.TextField: frozenset({str}),
    models.BooleanField: frozenset({bool}),
}
_NONE: frozenset[type] = frozenset()


#: Django's (private) method that wraps a raw cursor in its CursorWrapper.
_PREPARE_HOOK = "_prepare_cursor"


#: Where a database connection keeps its psycopg cursor for ``fetch_one``.
_KEPT = "_paydesk_cursor"


def fetch_one(connection: Any, sql: str, params: Sequence[Any]) -> Any:
    """Run one statement and return its first row (``None`` if it returned none).

    On psycopg 3 the statement binds its parameters server-side, through a plain
    ``psycopg.Cursor`` wrapped in Django's ``CursorWrapper`` (query log, execute wrappers,
    error translation kept): Django's default ``ClientCursor`` quotes every value into the
    SQL text in Python, which costs far more for a wide row. The psycopg cursor is kept on
    the connection and reused (a client-side cursor holds nothing on the server between
    statements, and a Django connection belongs to one thread), because making and closing
    one per statement cost more than running the statement through it. Prepared statements
    stay as the project configured them (``prepare_threshold``, off by default, so PgBouncer
    in transaction mode still works). Anything else uses Django's ordinary cursor.
    """
    kept = _kept_cursor(connection)
    if kept is None:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    kept.execute(sql, params)
    return kept.fetchone()


def fetch_all(connection: Any, sql: str, params: Sequence[Any]) -> list[Any]:
    """Run one statement and return all its rows (the cursor as ``fetch_one`` chooses)."""
    kept = _kept_cursor(connection)
    if kept is None:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
    kept.execute(sql, params)
    return list(kept.fetchall())


def _kept_cursor(connection: Any) -> Any:
    """Django's wrapper around the connection's kept psycopg cursor, or ``None``."""
    if connection.vendor != "postgresql":
        return None
    try:
        import psycopg
    except ImportError:  # psycopg2: client-side binding is all it has
        return None
    # _prepare_cursor is Django's private step that wraps a raw cursor in its CursorWrapper
    # (debug logging, execute_wrappers, error translation); it has been there since Django
    # 1.x. Should a Django release drop it, fall back to the ordinary cursor: slower, same
    # result.
    prepare = getattr(connection, _PREPARE_HOOK, None)
    if prepare is None:
        return None
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = connection.connection
    with connection.wrap_database_errors:
        cursor = getattr(connection, _KEPT, None)
        # A reconnect gives a new psycopg connection: its old cursor is not reused.
        if cursor is None or cursor.closed or cursor.connection is not raw:
            cursor = psycopg.Cursor(raw)
            setattr(connection, _KEPT, cursor)
        # Wrapped on every call: whether queries are logged can change between statements.
        return prepare(cursor)


@dataclass(frozen=True)
class _Statement:
    """One variant of a plan's ``INSERT``: which fields it sends as parameters."""

    sql: str
    fields: list[Any]
    #: Per field: the value types sent to the database as they are (see ``_PLAIN``).
    plain: list[frozenset[type]]


@dataclass(frozen=True)
class _Plan:
    fields: list[Any]
    #: ``(attname, default)`` of the fields that may be written as a literal (``_constant``).
    constants: tuple[tuple[str, Any], ...]
    head: str
    tail: str
    attnames: list[str]
    converters: list[tuple[int, Any, list[Any]]]
    #: Statements by which of ``constants`` are at their default (built when first needed).
    variants: dict[tuple[bool, ...], _Statement] = field(default_factory=dict)


_plans: dict[tuple[Any, ...], _Plan] = {}


def _plan(
    model: type[models.Model],
    using: str,
    unique: tuple[str, ...],
    increment: str | None,
    returning: tuple[Any, ...],
) -> _Plan:
    """The statement's parts and its field lists, built once per model and shape."""
    key = (model, using, connections[using].vendor, unique, increment, returning)
    plan = _plans.get(key)
    if plan is not None:
        return plan
    meta = model._meta
    connection = connections[using]
    qn = connection.ops.quote_name
    pk = meta.pk
    assert pk is not None
    auto_pk = isinstance(pk, models.AutoField | models.BigAutoField | models.SmallAutoField)
    fields = [f for f in meta.concrete_fields if not (f.primary_key and auto_pk)]
    wanted = list(returning) if returning else [pk]

    def column(field: Any) -> str:
        return qn(str(field.column))

    table = qn(meta.db_table)
    target = ", ".join(column(meta.get_field(name)) for name in unique)
    if increment is None:
        action = "DO NOTHING"
    else:
        count = column(meta.get_field(increment))
        action = f"DO UPDATE SET {count} = {table}.{count} + 1"
    converters = _converters(wanted, meta.db_table, connection)
    constants = []
    for candidate in fields:
        literal = _constant(candidate)
        if literal is not _MISSING:
            constants.append((candidate.attname, literal))
    # Only quoted identifiers from the model's own metadata are interpolated here; values
    # are parameters, or (``_variant``) literals of a field's own constant default.
    plan = _Plan(
        fields=fields,
        constants=tuple(constants),
        head=f"INSERT INTO {table} ({', '.join(column(f) for f in fields)}) VALUES (",  # noqa: S608
        tail=(
            f") ON CONFLICT ({target}) {action} RETURNING {', '.join(column(f) for f in wanted)}"
        ),
        attnames=[f.attname for f in wanted],
        converters=converters,
    )
    _plans[key] = plan
    return plan


# A column whose value is its field's constant default is written into the statement
# instead of being sent as a parameter: a fresh webhook delivery has 11 of its 20 columns at
# their defaults (status flags, counters, empty texts, unset dates), and each parameter
# costs Python (``pre_save``, ``get_db_prep_save``, psycopg's dumper) and PostgreSQL (binding
# a value of unknown type). Only fields whose ``pre_save`` is a plain attribute read and
# whose prepared value is the value itself (or the same SQL literal) qualify, with
# defaults that render as plain SQL literals. There is one statement per combination of
# "at default or not" met, built once.
_LITERAL_FIELDS: frozenset[type[models.Field[Any, Any]]] = frozenset(
    {
        models.CharField,
        models.TextField,
        models.BooleanField,
        models.IntegerField,
        models.PositiveIntegerField,
        models.SmallIntegerField,
        models.PositiveSmallIntegerField,
        models.BigIntegerField,
        models.PositiveBigIntegerField,
        models.DateTimeField,
    }
)
_SAFE_TEXT = re.compile(r"[A-Za-z0-9_.:\- ]*")


def _constant(field: Any) -> Any:
    """The default ``field`` may be written as a literal, or ``_MISSING``."""
    if type(field) not in _LITERAL_FIELDS or field.primary_key:
        return _MISSING
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return _MISSING  # pre_save sets the value
    if field.has_default() and callable(field.default):
        return _MISSING
    default = field.get_default()
    if default is None:
        return None if field.null else _MISSING
    if isinstance(field, models.DateTimeField):
        return _MISSING  # only an unset date is a constant worth writing
    if isinstance(default, bool):
        return default if isinstance(field, models.BooleanField) else _MISSING
    if isinstance(default, int):
        integer = isinstance(field, models.IntegerField)  # every integer field subclasses it
        return default if integer and not isinstance(default, bool) else _MISSING
    if isinstance(default, str) and isinstance(field, models.CharField | models.TextField):
        return default if _SAFE_TEXT.fullmatch(default) else _MISSING
    return _MISSING


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"  # PostgreSQL, and SQLite >= 3.23
    if isinstance(value, int):
        return str(int(value))
    return "'" + str.__str__(value) + "'"  # _SAFE_TEXT: no quote, backslash or percent sign


def _variant(base: _Plan, at_default: tuple[bool, ...], connection: Any) -> _Statement:
    literals = {
        attname: _literal(default)
        for (attname, default), constant in zip(base.constants, at_default, strict=True)
        if constant
    }
    sent = [f for f in base.fields if f.attname not in literals]
    values = ", ".join(literals.get(f.attname, "%s") for f in base.fields)
    statement = _Statement(
        sql=base.head + values + base.tail,
        fields=sent,
        plain=[_PLAIN.get(type(f), _NONE) for f in sent],
    )
    base.variants[at_default] = statement
    return statement


def _converters(
    fields: Sequence[Any], table: str, connection: Any
) -> list[tuple[int, Any, list[Any]]]:
    """Per selected column (by position): the converters the ORM applies to its value."""
    found = []
    for index, selected in enumerate(fields):
        col = selected.get_col(table)
        wanted = connection.ops.get_db_converters(col) + selected.get_db_converters(connection)
        if wanted:
            found.append((index, col, wanted))
    return found


def mark_inserted(instance: models.Model, pk_value: Any, using: str) -> None:
    """Make ``instance`` what ``save()`` leaves after an insert."""
    instance.pk = pk_value
    instance._state.adding = False
    instance._state.db = using


@dataclass(frozen=True)
class Columns:
    """Every concrete column of a model, as a ``SELECT`` or ``RETURNING`` list, and what
    ``load`` needs to turn such a row into an instance."""

    sql: str
    attnames: list[str]
    converters: list[tuple[int, Any, list[Any]]]


_columns: dict[tuple[Any, ...], Columns] = {}


def columns(model: type[models.Model], using: str, names: tuple[str, ...] | None = None) -> Columns:
    """The columns of ``names`` (default: every concrete field), built once per model,
    database and names (per process)."""
    connection = connections[using]
    key = (model, using, connection.vendor, names)
    found = _columns.get(key)
    if found is not None:
        return found
    meta = model._meta
    qn = connection.ops.quote_name
    fields: list[Any] = (
        list(meta.concrete_fields) if names is None else [meta.get_field(n) for n in names]
    )
    converters = _converters(fields, meta.db_table, connection)
    sql = ", ".join(f"{qn(meta.db_table)}.{qn(str(f.column))}" for f in fields)
    found = Columns(sql, [f.attname for f in fields], converters)
    _columns[key] = found
    return found


def _convert(cols: Columns, row: Sequence[Any], connection: Any) -> list[Any]:
    values = list(row)
    for index, col, converters in cols.converters:
        for converter in converters:
            values[index] = converter(values[index], col, connection)
    return values


def load(model: type[_M], using: str, cols: Columns, row: Sequence[Any]) -> _M:
    """The instance a row of ``cols`` is, converted as the ORM converts it (``from_db``)."""
    return model.from_db(using, cols.attnames, _convert(cols, row, connections[using]))


_selects: dict[tuple[Any, ...], str] = {}


def _select(
    model: type[models.Model], using: str, cols: Columns, where: dict[str, Any], lock: bool
) -> tuple[str, list[Any]]:
    """``SELECT <cols> FROM <table> WHERE <where, equality> [FOR UPDATE]`` and its params;
    the statement is built once per model, database, columns and ``where`` names."""
    connection = connections[using]
    meta = model._meta
    key = (model, using, connection.vendor, cols.sql, tuple(where), lock)
    sql = _selects.get(key)
    if sql is None:
        qn = connection.ops.quote_name
        table = qn(meta.db_table)
        fields: list[Any] = [meta.get_field(name) for name in where]
        condition = " AND ".join(f"{table}.{qn(str(f.column))} = %s" for f in fields)
        # Only quoted identifiers from the model's own metadata are interpolated.
        sql = f"SELECT {cols.sql} FROM {table} WHERE {condition}"  # noqa: S608
        if lock and connection.features.has_select_for_update:
            sql += " FOR UPDATE"
        _selects[key] = sql
    params = []
    for name, value in where.items():
        target: Any = meta.get_field(name)
        params.append(target.get_db_prep_value(value, connection))
    return sql, params


def select_one(
    model: type[_M], *, using: str, where: dict[str, Any], lock: bool = False
) -> _M | None:
    """The row whose ``where`` fields (``{name: value}``, equality) match, or ``None``.

    For a look-up that matches at most one row (a primary key): what ``.get()`` returns,
    locked with ``lock=True`` (``SELECT ... FOR UPDATE``, inside a transaction, as
    ``select_for_update()`` requires), without compiling a query each time. Every column is
    loaded.
    """
    connection = connections[using]
    if lock and connection.get_autocommit():
        raise TransactionManagementError(
            "select_for_update cannot be used outside of a transaction."
        )
    cols = columns(model, using)
    sql, params = _select(model, using, cols, where, lock)
    row = fetch_one(connection, sql, params)
    return None if row is None else load(model, using, cols, row)


def select_values(
    model: type[models.Model], *, using: str, names: tuple[str, ...], where: dict[str, Any]
) -> list[list[Any]]:
    """``model.objects.filter(**where).order_by().values_list(*names)`` (equality only),
    converted as the ORM converts them, without compiling a query each time."""
    connection = connections[using]
    cols = columns(model, using, names)
    sql, params = _select(model, using, cols, where, lock=False)
    rows = fetch_all(connection, sql, params)
    return [_convert(cols, row, connection) for row in rows]
