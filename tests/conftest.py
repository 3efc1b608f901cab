"""Shared fixtures: users, a clean provider registry, and on-commit signal capture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from paydesk.providers.registry import providers
from paydesk.testing import MockPaymentProvider, SignalRecorder, mock_provider

_STARTED = pytest.StashKey[float]()


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    # Rate-limit counters live in the cache; one test's webhooks must not throttle another's.
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _fresh_providers() -> Iterator[None]:
    # Provider instances are cached per alias; tests must not see each other's state.
    providers.reset()
    yield
    providers.reset()


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(
        username="alice", email="alice@example.com", password="pw"
    )


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user(
        username="bob", email="bob@example.com", password="pw"
    )


@pytest.fixture
def mock() -> Iterator[MockPaymentProvider]:
    with mock_provider("mock") as instance:
        yield instance


@pytest.fixture
def recorder() -> Iterator[SignalRecorder]:
    with SignalRecorder() as rec:
        yield rec


def pytest_runtest_setup(item: pytest.Item) -> None:
    # A PostgreSQL-only test must never pass silently on another database: fail loudly.
    # `make test` deselects them on SQLite with -m "not postgres".
    if item.get_closest_marker("postgres"):
        from django.db import connection

        if connection.vendor != "postgresql":
            pytest.fail(
                f"{item.nodeid} needs PostgreSQL (DATABASE_URL=postgres://...); "
                f"this run uses {connection.vendor}. Deselect with -m 'not postgres'.",
                pytrace=False,
            )


def pytest_sessionstart(session: pytest.Session) -> None:
    import time

    session.config.stash[_STARTED] = time.time()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # Where this run's browser screenshots are (tests/browser/helpers.py); also after a failure.
    from tests.browser.helpers import artifacts_dir

    folder = artifacts_dir() / "screenshots"
    started = terminalreporter.config.stash.get(_STARTED, None)
    if started is None or not folder.is_dir():
        return
    taken = [p for p in folder.glob("*.png") if p.stat().st_mtime >= started]
    if taken:
        terminalreporter.write_sep("-", f"{len(taken)} browser screenshots in {folder}")
