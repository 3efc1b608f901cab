"""Schemathesis over the whole REST API: no 5xx, and every response as the schema says.

The OpenAPI document is loaded from the running app (``/paydesk/api/v1/schema/``, and the
host project's own ``/testapp/api/schema/`` with the ``payable_routes`` of
``tests.testapp.Booking``) and every operation is called through the WSGI app with generated
valid and invalid inputs. Checks: ``not_a_server_error`` (never a 5xx),
``status_code_conformance`` (only documented statuses), ``content_type_conformance`` and
``response_schema_conformance`` (bodies match their schema, errors included).

Bounded so ``make test`` stays quick (15 seconds on one core): a fixed seed, the schema's
examples, Schemathesis' deterministic coverage cases (boundary and invalid values of every
parameter), a few random examples per operation, no shrinking, no example database, no
stateful phase. The caller is an API key with every scope, owned by a staff user (who sees
every object); path identifiers are pointed at real objects (and at missing ones) so the
handlers run past their 404.

The schemas are loaded at collection time with ``schema.parametrize()``, one pytest item per
operation. (``schemathesis.pytest.from_fixture`` would load them lazily, but Schemathesis
4.32 renames the running item through ``Node._nodeid``, which pytest 9.2 no longer has.)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from paydesk.services import rates
from tests.test_api_support import (
    authorized_payment,
    completed_payment,
    failed_payment,
    make_key,
    make_user,
    pending_payment,
    pending_refund,
    saved_method,
)
from tests.testapp.models import Booking

pytestmark = pytest.mark.django_db

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

#: Random examples per operation, on top of the schema's examples and the coverage cases.
MAX_EXAMPLES = 8


def _config() -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": 20251125,
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "no-shrink": True,
                "deterministic": True,
                "database": "none",
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
        }
    )


class Fuzzing:
    """The caller and the objects generated requests are pointed at."""

    def __init__(self) -> None:
        staff = make_user("fuzz-staff", is_staff=True)
        customer = make_user("fuzz-customer")
        _, key = make_key(staff, ["read", "write", "refund"])
        self.headers = {"X-Api-Key": key}
        self.ids: dict[str, itertools.cycle] = {
            "payment-methods": itertools.cycle(
                [saved_method(staff, "pm_sandbox_visa").pk, "pm_missing"]
            ),
            "payments": itertools.cycle(
                [
                    completed_payment(customer).pk,
                    pending_payment(staff, payment_method_token="pm_sandbox_visa").pk,
                    authorized_payment(customer).pk,
                    failed_payment(staff).pk,
                    completed_payment(staff, "30.00").pk,
                    "pay_missing",
                ]
            ),
            "refunds": itertools.cycle([pending_refund(customer).pk, "re_missing"]),
        }
        booking = Booking.objects.create(title="Fuzz night", owner=customer, amount=Decimal(12))
        self.ids["bookings"] = itertools.cycle([booking.public_id, "no-such-booking"])
        for quote, rate in (("USD", "1.1512"), ("JPY", "165.76"), ("TRY", "45.3315")):
            rates.record_rate(base="EUR", quote=quote, rate=rate, date=timezone.localdate())

    def point_at_objects(self, case: Any) -> None:
        """Replace a generated path identifier by a real one (or a known-missing one)."""
        for name in list(case.path_parameters):
            resource = next((r for r in self.ids if f"/{r}/" in case.path), None)
            if resource is not None:
                case.path_parameters[name] = next(self.ids[resource])


@pytest.fixture
def fuzzing(db) -> Fuzzing:
    return Fuzzing()


def _load(path: str) -> Any:
    """The schema served at ``path``, fetched through the WSGI app at collection time.

    Serving the schema touches no database.
    """
    return schemathesis.openapi.from_wsgi(path, get_wsgi_application(), config=_config())


@pytest.fixture(autouse=True)
def _keep_the_test_connection() -> Iterator[None]:
    # The test's transaction holds the database connection: the WSGI requests must not close
    # it when they finish. Django's test client disconnects this receiver the same way (and
    # connects it again after each request, so it is done per test, not once).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


paydesk_schema = _load("/paydesk/api/v1/schema/?format=json")
host_schema = _load("/testapp/api/schema/?format=json")


#: The objects are made once per operation and changed by the requests (a refund, a
#: capture), which is the point: later inputs meet the states earlier ones left.
FUZZ_SETTINGS = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)


@paydesk_schema.parametrize()
@FUZZ_SETTINGS
def test_paydesk_api(case, fuzzing):
    fuzzing.point_at_objects(case)
    case.call_and_validate(headers=fuzzing.headers, checks=CHECKS)


@host_schema.parametrize()
@FUZZ_SETTINGS
def test_payable_routes(case, fuzzing):
    fuzzing.point_at_objects(case)
    case.call_and_validate(headers=fuzzing.headers, checks=CHECKS)
