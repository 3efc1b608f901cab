"""The dashboard's API keys page: list, create (the key shown once), revoke."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from paydesk.api.keys import create_api_key, parse_api_key, secrets_match
from paydesk.models import APIKey, AuditLog

pytestmark = pytest.mark.django_db

LIST = reverse("paydesk_dashboard:api-keys")
CREATE = reverse("paydesk_dashboard:api-key-create")
XSS = '<script>alert("x")</script>'


def _revoke_url(key: APIKey) -> str:
    return reverse("paydesk_dashboard:api-key-revoke", args=[key.pk])


def _perm(codename: str) -> Permission:
    return Permission.objects.get(content_type__app_label="paydesk", codename=codename)


@pytest.fixture
def staff(django_user_model: Any) -> User:
    user: User = django_user_model.objects.create_user(
        username="viewer", password="pw", is_staff=True
    )
    return user


@pytest.fixture
def keymaster(django_user_model: Any) -> User:
    user: User = django_user_model.objects.create_user(
        username="keymaster", password="pw", is_staff=True
    )
    user.user_permissions.add(_perm("add_apikey"), _perm("change_apikey"))
    return user


@pytest.fixture
def km_client(client: Client, keymaster: User) -> Client:
    client.force_login(keymaster)
    return client


def _create(client: Client, **data: Any) -> Any:
    data.setdefault("name", "shop backend")
    data.setdefault("scopes", ["read", "refund"])
    return client.post(CREATE, data)


# -- access -----------------------------------------------------------------------------


def test_anonymous_is_sent_to_log_in(client: Client) -> None:
    for response in (client.get(LIST), client.post(CREATE, {"name": "x", "scopes": ["read"]})):
        assert response.status_code == 302
        assert "login" in response["Location"]
    assert not APIKey.objects.exists()


def test_non_staff_is_refused(client: Client, user: User) -> None:
    client.force_login(user)
    assert client.get(LIST).status_code == 403
    assert client.post(CREATE, {"name": "x", "scopes": ["read"], "owner": user.pk}).status_code == (
        403
    )
    assert not APIKey.objects.exists()


def test_staff_without_permissions_can_look_but_not_act(client: Client, staff: User) -> None:
    key, _ = create_api_key(owner=staff, name="existing", scopes=["read"])
    client.force_login(staff)
    body = client.get(LIST).content.decode()
    assert "existing" in body
    assert 'data-form="create-api-key"' not in body
    assert 'data-action="revoke"' not in body
    assert _create(client, owner=staff.pk).status_code == 403
    assert client.post(_revoke_url(key)).status_code == 403
    assert APIKey.objects.count() == 1
    key.refresh_from_db()
    assert key.revoked_at is None
    assert not AuditLog.objects.exists()


def test_get_on_actions_is_405(km_client: Client, keymaster: User) -> None:
    key, _ = create_api_key(owner=keymaster, name="k", scopes=["read"])
    assert km_client.get(CREATE).status_code == 405
    assert km_client.get(_revoke_url(key)).status_code == 405


def test_create_without_csrf_token_is_403(keymaster: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(keymaster)
    response = client.post(CREATE, {"name": "x", "scopes": ["read"], "owner": keymaster.pk})
    assert response.status_code == 403
    assert not APIKey.objects.exists()


# -- create -----------------------------------------------------------------------------


def test_create_shows_the_full_key_once(km_client: Client, keymaster: User) -> None:
    response = _create(km_client, owner=keymaster.pk)
    assert response.status_code == 200
    full_key = response.context["full_key"]
    body = response.content.decode()
    assert f'<code class="secret" data-secret>{full_key}</code>' in body
    assert "only time it is shown" in body
    assert response["Cache-Control"].startswith("max-age=0")
    assert "no-store" in response["Cache-Control"]

    key = APIKey.objects.get()
    assert key.owner == keymaster
    assert key.scopes == ["read", "refund"]
    parsed = parse_api_key(full_key)
    assert parsed is not None
    assert parsed[0] == key.prefix
    assert secrets_match(key.hashed_key, parsed[1])

    # Not in the messages, the session, or the audit log; not on the next page.
    assert list(get_messages(response.wsgi_request)) == []
    session = km_client.session
    assert full_key not in str(dict(session.items()))
    assert full_key not in str(list(AuditLog.objects.values()))
    later = km_client.get(LIST).content.decode()
    assert full_key not in later
    assert parsed[1] not in later
    assert f"pdk_{key.prefix}_…" in later

    entry = AuditLog.objects.get(action="api_key.created")
    assert entry.actor == keymaster
    assert entry.object_id == str(key.pk)
    assert entry.details["scopes"] == ["read", "refund"]


def test_create_for_another_staff_user(km_client: Client, staff: User) -> None:
    _create(km_client, owner=staff.pk, scopes=["write"])
    assert APIKey.objects.get().owner == staff


def test_owner_must_be_active_staff(km_client: Client, user: User) -> None:
    response = _create(km_client, owner=user.pk)
    assert response.status_code == 400
    assert "full_key" not in response.context
    assert not APIKey.objects.exists()


@pytest.mark.parametrize(
    "data",
    [
        {"name": ""},
        {"name": "x" * 101},
        {"scopes": []},
        {"scopes": ["admin"]},
        {"owner": "not-a-number"},
        {"owner": "999999"},
    ],
)
def test_invalid_create_shows_errors(km_client: Client, keymaster: User, data: dict) -> None:
    data.setdefault("owner", keymaster.pk)
    response = _create(km_client, **data)
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()
    assert not APIKey.objects.exists()


def test_name_is_escaped(km_client: Client, keymaster: User) -> None:
    response = _create(km_client, owner=keymaster.pk, name=XSS)
    assert XSS not in response.content.decode()
    assert XSS not in km_client.get(LIST).content.decode()
    assert "&lt;script&gt;" in km_client.get(LIST).content.decode()


# -- revoke -----------------------------------------------------------------------------


def test_revoke(km_client: Client, keymaster: User) -> None:
    key, _ = create_api_key(owner=keymaster, name="old", scopes=["read"])
    response = km_client.post(_revoke_url(key))
    assert response.status_code == 302
    assert response["Location"] == LIST
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert not key.is_active
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert "Revoked" in message
    assert AuditLog.objects.get(action="api_key.revoked").success is True
    body = km_client.get(LIST).content.decode()
    assert f'data-api-key="{key.prefix}" data-state="revoked"' in body

    again = km_client.post(_revoke_url(key))
    assert "already revoked" in [str(m) for m in get_messages(again.wsgi_request)][-1]


def test_revoke_unknown_key_is_404(km_client: Client) -> None:
    assert km_client.post(
        reverse("paydesk_dashboard:api-key-revoke", args=[99999])
    ).status_code == (404)


def test_list_query_count_does_not_grow(km_client: Client, django_user_model: Any) -> None:
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert km_client.get(LIST).status_code == 200
        return len(queries)

    owner = django_user_model.objects.create_user(username="o", is_staff=True)
    create_api_key(owner=owner, name="k0", scopes=["read"])
    few = count()
    for i in range(10):
        other = django_user_model.objects.create_user(username=f"o{i}", is_staff=True)
        create_api_key(owner=other, name=f"k{i + 1}", scopes=["read", "write"])
    assert count() == few
