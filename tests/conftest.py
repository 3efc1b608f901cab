"""Shared fixtures: users, a clean provider registry, and on-commit signal capture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from paydesk.providers.registry import providers
from paydesk.testing import MockPaymentProvider, SignalRecorder, mock_provider


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
