"""Analytics at scale: paydesk's reports against one hand-written SQL statement, in one run.

Run by ``make bench`` (inside ``scripts/with-postgres``, which exports ``DATABASE_URL``);
not part of the test suite. By hand::

    scripts/with-postgres .venv/bin/python bench/analytics.py [--payments 1000000]

It creates its own database next to ``DATABASE_URL``'s (``<name>_analytics``, dropped at the
end unless ``--keep``), migrates the bench project (``bench/_project``) into it, and
bulk-loads ``--payments`` payments spread over ``--days`` days with PostgreSQL's ``COPY``
(through psycopg): four currencies, three providers, successes, failures with their codes,
pending, authorized and cancelled ones; about one successful payment in ten refunded (in
full or in part, most completed, some failed or pending) with one of six reasons; one in two
hundred disputed. ``VACUUM ANALYZE`` follows, as autovacuum would after a load.

Then, ``--rounds`` times and interleaved, it times:

(a) the summary over the whole range: ``paydesk.services.analytics.summary()`` (five
    aggregate queries and the Python that shapes them) against one hand-written SQL
    statement computing the same figures (the same five scans, as CTEs);
(b) the 90-day daily series: ``analytics.time_series(interval="day")`` against one
    hand-written ``GROUP BY date_trunc('day', ...)``.

Both sides' figures are compared first; the bench exits 1 if they differ. It prints the
medians and the ratios paydesk / SQL (target: at most 1.5); a missed target is reported,
not fatal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench._project.settings")

TARGET = 1.5
CURRENCIES = [("USD", 60, 2), ("EUR", 25, 2), ("GBP", 10, 2), ("JPY", 5, 0)]
PROVIDERS = [("sandbox", 50), ("stripe", 30), ("paypal", 20)]
FAILURES = [("card_declined", 55), ("insufficient_funds", 25), ("expired_card", 12)]
FAILURES += [("processing_error", 8)]
REASONS = ["requested_by_customer", "damaged", "duplicate", "late delivery", "wrong size"]
REASONS += ["fraudulent"]
SUCCESS = ("completed", "partially_refunded", "refunded")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365, help="the payments' spread, to now")
    parser.add_argument("--series-days", type=int, default=90)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args(argv)
    if args.payments < 1000 or args.days < args.series_days or args.rounds < 1:
        parser.error("need --payments >= 1000, --days >= --series-days, --rounds >= 1")
    return args


# -- the database -----------------------------------------------------------------------


def bench_database_url() -> tuple[str, str, str]:
    """(the bench database's URL, the maintenance URL, the bench database's name)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit(
            "bench/analytics.py needs DATABASE_URL=postgres://...; run it with `make bench` "
            "(a throwaway PostgreSQL) or scripts/with-postgres."
        )
    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'paydesk'}_analytics"
    return (
        urlunsplit(parts._replace(path=f"/{name}")),
        urlunsplit(parts._replace(path="/postgres")),
        name,
    )


def recreate_database(maintenance: str, name: str, *, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


# -- the data -----------------------------------------------------------------------------


def _weighted(rng: random.Random, table: list[tuple[Any, ...]]) -> Any:
    return rng.choices([row[0] for row in table], weights=[row[1] for row in table])[0]


def _amount(rng: random.Random, exponent: int) -> Decimal:
    if exponent == 0:
        return Decimal(rng.randint(300, 60_000))
    return Decimal(rng.randint(300, 60_000)).scaleb(-exponent)


def _fee(amount: Decimal, exponent: int) -> Decimal:
    return (amount * Decimal("0.029")).quantize(Decimal(1).scaleb(-exponent), ROUND_HALF_UP)


class Generated:
    """Row generators for COPY; refunds and disputes are collected while payments stream."""

    def __init__(self, count: int, days: int, seed: int, now: dt.datetime) -> None:
        self.count = count
        self.days = days
        self.rng = random.Random(seed)
        self.now = now
        self.refunds: list[tuple[Any, ...]] = []
        self.disputes: list[tuple[Any, ...]] = []

    def payments(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        span = self.days * 86400
        exponents = {code: exponent for code, _, exponent in CURRENCIES}
        for number in range(self.count):
            created = self.now - dt.timedelta(seconds=rng.random() * span)
            currency = _weighted(rng, CURRENCIES)
            exponent = exponents[currency]
            amount = _amount(rng, exponent)
            draw = rng.random()
            row: dict[str, Any] = {
                "id": f"pay_bench_{number:08d}",
                "provider": _weighted(rng, PROVIDERS),
                "amount": amount,
                "currency": currency,
                "created_at": created,
                "updated_at": created,
                "customer_email": f"c{number % 50_000}@example.com",
                "reference": f"order-{number}",
            }
            if draw < 0.75:  # captured
                processed = created + dt.timedelta(seconds=1 + rng.random() * 600)
                row.update(
                    status="completed",
                    authorized_amount=amount,
                    captured_amount=amount,
                    processing_fee=_fee(amount, exponent),
                    processed_at=processed,
                    provider_payment_id=f"pp_{number}",
                )
                if rng.random() < 0.10:
                    self._refund(row, rng, exponent)
                if rng.random() < 0.005:
                    opened = min(created + dt.timedelta(days=rng.randint(5, 60)), self.now)
                    self.disputes.append((row["id"], opened, amount, currency))
            elif draw < 0.90:
                failure = _weighted(rng, FAILURES)
                row.update(status="failed", failure_code=failure, failure_message=failure)
            elif draw < 0.95:
                row.update(status="pending")
            elif draw < 0.98:
                row.update(
                    status="authorized",
                    authorized_amount=amount,
                    processed_at=created + dt.timedelta(seconds=5),
                )
            else:
                row.update(status="cancelled", cancelled_at=created + dt.timedelta(hours=1))
            yield row

    def _refund(self, row: dict[str, Any], rng: random.Random, exponent: int) -> None:
        amount: Decimal = row["amount"]
        full = rng.random() < 0.5
        value = amount if full else (amount / 2).quantize(Decimal(1).scaleb(-exponent))
        requested = min(row["created_at"] + dt.timedelta(days=rng.random() * 20), self.now)
        draw = rng.random()
        status = "completed" if draw < 0.95 else ("failed" if draw < 0.98 else "pending")
        processed = requested + dt.timedelta(seconds=10 + rng.random() * 3600)
        number = len(self.refunds)
        self.refunds.append(
            (
                f"re_bench_{number:08d}",
                row["id"],
                value,
                row["currency"],
                rng.choice(REASONS),
                status,
                requested,
                processed if status == "completed" else None,
            )
        )
        if status == "completed":
            row["refunded_amount"] = value
            row["status"] = "refunded" if full else "partially_refunded"
        elif status == "pending":
            row["refund_reserved_amount"] = value


def _copy_model(
    cursor: Any, model: Any, rows: Iterator[dict[str, Any]], *, serial_pk: bool = False
) -> int:
    """COPY ``rows`` (dicts by column) into ``model``'s table; model defaults fill the rest.

    ``serial_pk``: leave the primary key out, for the database to number the rows.
    """
    from psycopg.types.json import Jsonb

    fields = [f for f in model._meta.concrete_fields if not (serial_pk and f.primary_key)]
    columns = [field.column for field in fields]
    defaults: dict[str, Any] = {}
    for field in fields:
        if field.has_default() and not callable(field.default):
            defaults[field.column] = field.default
        elif field.has_default():
            value = field.get_default()
            defaults[field.column] = value if isinstance(value, dict | list) else None
        elif field.null:
            defaults[field.column] = None
        else:
            defaults[field.column] = ""
    jsonb = {f.column for f in fields if f.get_internal_type() == "JSONField"}
    names = ", ".join(f'"{c}"' for c in columns)
    written = 0
    with cursor.copy(f'COPY "{model._meta.db_table}" ({names}) FROM STDIN') as copy:
        for row in rows:
            values = []
            for column in columns:
                value = row.get(column, defaults[column])
                values.append(Jsonb(value) if column in jsonb and value is not None else value)
            copy.write_row(values)
            written += 1
    return written


def load(args: argparse.Namespace, now: dt.datetime) -> dict[str, float]:
    from django.db import connection

    from paydesk.models import Payment, Refund, TransactionLog

    data = Generated(args.payments, args.days, args.seed, now)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor, for COPY
        timings["payments"] = _copy_model(raw, Payment, data.payments())
        refund_rows = (
            {
                "id": ident,
                "payment_id": payment_id,
                "amount": amount,
                "currency": currency,
                "reason": reason,
                "status": status,
                "created_at": requested,
                "updated_at": processed or requested,
                "processed_at": processed,
            }
            for ident, payment_id, amount, currency, reason, status, requested, processed in (
                data.refunds
            )
        )
        timings["refunds"] = _copy_model(raw, Refund, refund_rows)
        dispute_rows = (
            {
                "payment_id": payment_id,
                "kind": "dispute_opened",
                "amount": amount,
                "currency": currency,
                "attempt": 1,
                "ref": f"dp_{payment_id}",
                "idempotency_key": f"dispute:dp_{payment_id}",
                "created_at": opened,
            }
            for payment_id, opened, amount, currency in data.disputes
        )
        timings["disputes"] = _copy_model(raw, TransactionLog, dispute_rows, serial_pk=True)
    timings["load_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    connection.ensure_connection()
    previous = connection.connection.autocommit
    connection.connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for table in ("paydesk_payment", "paydesk_refund", "paydesk_transactionlog"):
                cursor.execute(f"VACUUM ANALYZE {table}")
    finally:
        connection.connection.autocommit = previous
    timings["vacuum_seconds"] = time.perf_counter() - started
    return timings


# -- the hand-written SQL ---------------------------------------------------------------

SUMMARY_SQL = """
WITH p AS (
    SELECT currency,
           count(*) AS payments,
           count(*) FILTER (WHERE status <> 'pending') AS attempted,
           count(*) FILTER (WHERE status = ANY(%(success)s)) AS successful,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           sum(captured_amount) FILTER (WHERE status = ANY(%(success)s)) AS gross,
           sum(refunded_amount) FILTER (WHERE status = ANY(%(success)s)) AS refunded,
           sum(processing_fee) FILTER (WHERE status = ANY(%(success)s)) AS fees,
           count(*) FILTER (WHERE status = ANY(%(success)s) AND refunded_amount > 0) AS with_refund
    FROM paydesk_payment
    WHERE created_at >= %(start)s AND created_at < %(end)s
    GROUP BY currency
), f AS (
    SELECT currency, jsonb_object_agg(code, n) AS failures
    FROM (SELECT currency, coalesce(nullif(failure_code, ''), 'unknown') AS code, count(*) AS n
          FROM paydesk_payment
          WHERE status = 'failed' AND created_at >= %(start)s AND created_at < %(end)s
          GROUP BY 1, 2) AS x
    GROUP BY currency
), r AS (
    SELECT currency,
           count(*) AS refunds,
           count(*) FILTER (WHERE status = 'completed') AS completed,
           count(*) FILTER (WHERE status IN ('pending', 'processing')) AS pending,
           count(*) FILTER (WHERE status = 'failed') AS refunds_failed,
           sum(amount) FILTER (WHERE status = 'completed') AS refunded_total,
           avg(processed_at - created_at)
               FILTER (WHERE status = 'completed' AND processed_at IS NOT NULL) AS processing
    FROM paydesk_refund
    WHERE created_at >= %(start)s AND created_at < %(end)s
    GROUP BY currency
), rr AS (
    SELECT currency, jsonb_agg(jsonb_build_array(reason, n, total::text) ORDER BY rk) AS reasons
    FROM (SELECT currency, reason, count(*) AS n, sum(amount) AS total,
                 row_number() OVER (PARTITION BY currency ORDER BY count(*) DESC, reason) AS rk
          FROM paydesk_refund
          WHERE created_at >= %(start)s AND created_at < %(end)s
          GROUP BY 1, 2) AS x
    WHERE rk <= %(top)s
    GROUP BY currency
), d AS (
    SELECT currency, count(*) AS disputes
    FROM paydesk_transactionlog
    WHERE kind = 'dispute_opened' AND created_at >= %(start)s AND created_at < %(end)s
    GROUP BY currency
)
SELECT coalesce(p.currency, r.currency, d.currency) AS currency,
       p.payments, p.attempted, p.successful, p.failed, p.gross, p.refunded, p.fees,
       p.with_refund, f.failures, r.refunds, r.completed, r.pending, r.refunds_failed,
       r.refunded_total, r.processing, rr.reasons, d.disputes
FROM p
FULL JOIN r ON r.currency = p.currency
FULL JOIN d ON d.currency = coalesce(p.currency, r.currency)
LEFT JOIN f ON f.currency = coalesce(p.currency, r.currency, d.currency)
LEFT JOIN rr ON rr.currency = coalesce(p.currency, r.currency, d.currency)
ORDER BY 1
"""

SERIES_SQL = """
SELECT currency,
       (date_trunc('day', created_at AT TIME ZONE 'UTC'))::date AS period,
       count(*) AS payments,
       count(*) FILTER (WHERE status <> 'pending') AS attempted,
       count(*) FILTER (WHERE status = ANY(%(success)s)) AS successful,
       sum(captured_amount) FILTER (WHERE status = ANY(%(success)s)) AS gross,
       sum(refunded_amount) FILTER (WHERE status = ANY(%(success)s)) AS refunded,
       sum(processing_fee) FILTER (WHERE status = ANY(%(success)s)) AS fees
FROM paydesk_payment
WHERE created_at >= %(start)s AND created_at < %(end)s
GROUP BY 1, 2
"""


def run_sql(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# -- comparing the figures ----------------------------------------------------------------


def _d(value: Any) -> Decimal:
    return Decimal(value or 0)


def _json(value: Any) -> Any:
    # Django has psycopg hand jsonb over as text (JSONField decodes it itself).
    return json.loads(value) if isinstance(value, str) else value


def summary_matches(report: Any, rows: list[tuple[Any, ...]]) -> list[str]:
    """Differences between paydesk's summary and the hand-written SQL's rows."""
    problems = []
    by_currency = {entry.currency: entry for entry in report.currencies}
    if sorted(by_currency) != [row[0] for row in rows]:
        return [f"currencies differ: {sorted(by_currency)} vs {[row[0] for row in rows]}"]
    for row in rows:
        (code, payments, attempted, successful, failed, gross, refunded, fees, with_refund) = row[
            :9
        ]
        failures, refunds, completed, pending, refunds_failed, total, processing, reasons = row[
            9:17
        ]
        disputes = row[17]
        failures, reasons = _json(failures), _json(reasons)
        entry = by_currency[code]
        expected = {
            "payments": (entry.payments, payments or 0),
            "attempted": (entry.attempted, attempted or 0),
            "successful": (entry.successful, successful or 0),
            "failed": (entry.failed, failed or 0),
            "gross": (entry.gross_volume.amount, _d(gross)),
            "refunded": (entry.refunded.amount, _d(refunded)),
            "fees": (entry.fees.amount, _d(fees)),
            "with_refund": (
                entry.refund_rate,
                (Decimal(with_refund) / Decimal(successful)).quantize(Decimal("0.0001"))
                if successful
                else None,
            ),
            "failures": (entry.failures, failures or {}),
            "refunds": (entry.refunds.count, refunds or 0),
            "refunds completed": (entry.refunds.completed, completed or 0),
            "refunds pending": (entry.refunds.pending, pending or 0),
            "refunds failed": (entry.refunds.failed, refunds_failed or 0),
            "refunded total": (entry.refunds.amount.amount, _d(total)),
            "processing": (entry.refunds.average_processing_time, processing),
            "reasons": (
                [(r.reason, r.count, r.amount.amount) for r in entry.refunds.reasons],
                [(reason, n, _d(t)) for reason, n, t in (reasons or [])],
            ),
            "disputes": (entry.disputes, disputes or 0),
        }
        for name, (ours, theirs) in expected.items():
            if ours != theirs:
                problems.append(f"{code} {name}: paydesk {ours!r} vs SQL {theirs!r}")
    return problems


def series_matches(report: Any, rows: list[tuple[Any, ...]]) -> list[str]:
    problems = []
    points = {
        (code, point.period): point
        for code, series in report.series.items()
        for point in series
        if point.payments
    }
    if len(points) != len(rows):
        problems.append(f"{len(points)} non-empty points vs {len(rows)} SQL rows")
    for code, period, payments, attempted, successful, gross, refunded, fees in rows:
        point = points.get((code, period))
        if point is None:
            problems.append(f"{code} {period}: missing from paydesk's series")
            continue
        ours = (point.payments, point.attempted, point.successful)
        ours += (point.gross_volume.amount, point.refunded.amount, point.fees.amount)
        theirs = (payments, attempted, successful, _d(gross), _d(refunded), _d(fees))
        if ours != theirs:
            problems.append(f"{code} {period}: paydesk {ours} vs SQL {theirs}")
    return problems


# -- timing ------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def measure(
    label: str, ours: Callable[[], Any], theirs: Callable[[], Any], rounds: int
) -> tuple[float, float]:
    ours()  # warm both (plans, caches, Django's first compile)
    theirs()
    mine: list[float] = []
    hand: list[float] = []
    for number in range(rounds):
        # Alternate which goes first, so neither always finds the other's warm cache.
        pair = [(hand, theirs), (mine, ours)]
        for bucket, fn in pair if number % 2 == 0 else reversed(pair):
            bucket.append(timed(fn)[0])
    ours_median, hand_median = statistics.median(mine), statistics.median(hand)
    print(
        f"{label}: paydesk {ours_median * 1e3:8.1f} ms  hand-written SQL "
        f"{hand_median * 1e3:8.1f} ms  ratio {ours_median / hand_median:5.2f}  "
        f"(per round, ms: paydesk {' '.join(f'{t * 1e3:.0f}' for t in mine)}; "
        f"SQL {' '.join(f'{t * 1e3:.0f}' for t in hand)})"
    )
    return ours_median, hand_median


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url, maintenance, name = bench_database_url()
    recreate_database(maintenance, name)
    os.environ["DATABASE_URL"] = url
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, connections

    from paydesk.conf import paydesk_settings
    from paydesk.services import analytics

    exit_code = 0
    try:
        call_command("migrate", interactive=False, verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            pg_version = cursor.fetchone()[0]
        started = dt.datetime.now(dt.UTC)
        print(f"paydesk analytics bench, {started:%Y-%m-%d %H:%M} UTC")
        print(
            f"machine: {os.cpu_count()} CPUs, {platform.platform()}; Python "
            f"{platform.python_version()}, Django {django.get_version()}, PostgreSQL "
            f"{pg_version}; TIME_ZONE {settings.TIME_ZONE}"
        )
        now = started.replace(microsecond=0)
        loaded = load(args, now)
        print(
            f"load: {loaded['payments']:.0f} payments, {loaded['refunds']:.0f} refunds, "
            f"{loaded['disputes']:.0f} disputes over {args.days} days with COPY in "
            f"{loaded['load_seconds']:.1f} s; VACUUM ANALYZE {loaded['vacuum_seconds']:.1f} s"
        )

        start = now - dt.timedelta(days=args.days)
        end = now + dt.timedelta(seconds=1)
        success = list(SUCCESS)
        top = int(paydesk_settings.ANALYTICS["TOP_REASONS"])
        summary_params = {"start": start, "end": end, "success": success, "top": top}
        series_start = now - dt.timedelta(days=args.series_days)
        series_params = {"start": series_start, "end": end, "success": success}

        def paydesk_summary() -> Any:
            return analytics.summary(start=start, end=end)

        def sql_summary() -> Any:
            return run_sql(SUMMARY_SQL, summary_params)

        def paydesk_series() -> Any:
            return analytics.time_series(start=series_start, end=end, interval="day")

        def sql_series() -> Any:
            return run_sql(SERIES_SQL, series_params)

        problems = summary_matches(paydesk_summary(), sql_summary())
        problems += series_matches(paydesk_series(), sql_series())
        if problems:
            exit_code = 1
            print("FIGURES DIFFER:\n  " + "\n  ".join(problems[:20]))
        else:
            print("check: paydesk's figures equal the hand-written SQL's, every one")

        results = {
            "summary (whole range)": measure(
                f"(a) summary, {args.days} days", paydesk_summary, sql_summary, args.rounds
            ),
            f"{args.series_days}-day daily series": measure(
                f"(b) {args.series_days}-day daily series",
                paydesk_series,
                sql_series,
                args.rounds,
            ),
        }
        print(f"\n{'report':<26} {'paydesk ms':>10} {'SQL ms':>8} {'ratio':>6}  target")
        for label, (ours, theirs) in results.items():
            ratio = ours / theirs
            verdict = "met" if ratio <= TARGET else "NOT MET"
            print(
                f"{label:<26} {ours * 1e3:>10.1f} {theirs * 1e3:>8.1f} {ratio:>6.2f}  "
                f"<= {TARGET} {verdict}"
            )
    finally:
        connections.close_all()
        if not args.keep:
            recreate_database(maintenance, name, drop_only=True)
        else:
            print(f"kept the bench database: {url}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
