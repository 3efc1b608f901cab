"""One-statement inserts that tolerate a unique-constraint conflict (PostgreSQL, SQLite).

This module owns one decision: how a service stores a row "unless it is already there" in a
single statement, ``INSERT ... ON CONFLICT (...) DO NOTHING | DO UPDATE ... RETURNING ...``,
instead of a savepoint, an ``INSERT`` that fails and a rollback. The statement is atomic on
its own, so it needs no transaction, and concurrent inserts of the same key are settled by
the database (the second waits for the first and then conflicts). Callers check
``supported()`` and keep an ORM fallback for other databases.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections, models

__all__ = ["insert_on_conflict", "mark_inserted", "supported"]


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
    plan = _plan(type(instance), using, tuple(unique), increment, tuple(returning or ()))
    params = []
    for field, plain in zip(plan.fields, plan.plain, strict=True):
        value = field.pre_save(instance, True)
        if value is None or type(value) not in plain:
            # ``None`` too: a field may turn it into something else (a default, SQL NULL).
            value = field.get_db_prep_save(value, connection)
        params.append(value)
    with _cursor(connection) as cursor:
        cursor.execute(plan.sql, params)
        row = cursor.fetchone()
    if row is None:
        return None  # DO NOTHING: the row was there
    values = list(row)
    for index, col, converters in plan.converters:
        for converter in converters:
            values[index] = converter(values[index], col, connection)
    return dict(zip(plan.attnames, values, strict=True))


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


def _cursor(connection: Any) -> Any:
    """A cursor for one statement: server-side binding on psycopg 3.

    Django's PostgreSQL cursors bind parameters client-side by default (quoting every value
    into the SQL text in Python); a wide row's parameters cost far less CPU sent as
    parameters. The cursor is Django's wrapper around it (query logging, execute wrappers,
    error translation); prepared statements stay as the project configured them
    (``prepare_threshold``, off by default, so PgBouncer in transaction mode still works).
    """
    if connection.vendor != "postgresql":
        return connection.cursor()
    try:
        import psycopg
    except ImportError:  # psycopg2: client-side binding is all it has
        return connection.cursor()
    # _prepare_cursor is Django's private step that wraps a raw cursor in its CursorWrapper
    # (debug logging, execute_wrappers, error translation); it has been there since Django
    # 1.x. Should a Django release drop it, fall back to the ordinary cursor: slower, same
    # result.
    prepare = getattr(connection, _PREPARE_HOOK, None)
    if prepare is None:
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return prepare(psycopg.Cursor(connection.connection))


@dataclass(frozen=True)
class _Plan:
    sql: str
    fields: list[Any]
    #: Per field: the value types sent to the database as they are (see ``_PLAIN``).
    plain: list[frozenset[type]]
    attnames: list[str]
    converters: list[tuple[int, Any, list[Any]]]


_plans: dict[tuple[Any, ...], _Plan] = {}


def _plan(
    model: type[models.Model],
    using: str,
    unique: tuple[str, ...],
    increment: str | None,
    returning: tuple[Any, ...],
) -> _Plan:
    """The statement and its field lists, built once per model and shape (per process)."""
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
    # Only quoted identifiers from the model's own metadata are interpolated; values are params.
    sql = (
        f"INSERT INTO {table} ({', '.join(column(f) for f in fields)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({target}) {action} "
        f"RETURNING {', '.join(column(f) for f in wanted)}"
    )
    converters = []
    for index, field in enumerate(wanted):
        col = field.get_col(meta.db_table)
        found = connection.ops.get_db_converters(col) + field.get_db_converters(connection)
        if found:
            converters.append((index, col, found))
    plain = [_PLAIN.get(type(f), _NONE) for f in fields]
    plan = _Plan(sql, fields, plain, [f.attname for f in wanted], converters)
    _plans[key] = plan
    return plan


def mark_inserted(instance: models.Model, pk_value: Any, using: str) -> None:
    """Make ``instance`` what ``save()`` leaves after an insert."""
    instance.pk = pk_value
    instance._state.adding = False
    instance._state.db = using
