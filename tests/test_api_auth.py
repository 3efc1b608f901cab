"""Authentication for the API: API keys (header forms, refusals, last use, scopes), the
project's own DRF authentication (session, JWT Bearer via simplejwt), the key helper, the
``create_api_key`` command and the admin."""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from paydesk.api.keys import create_api_key, hash_secret, parse_api_key, revoke_api_key
from paydesk.exceptions import PaymentValidationError
from paydesk.models import APIKey
from tests.test_api_support import (
    World,
    build_world,
    error_of,
    make_key,
    make_user,
    url,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db: Any) -> World:
    return build_world()


KEY_SHAPE = re.compile(r"^pdk_[0-9a-f]{8}_[A-Za-z0-9_-]{40,}$")


def _client(**headers: str) -> APIClient:
    client = APIClient()
    client.credentials(**headers)
    return client


def test_create_api_key_stores_only_a_hash(world: World) -> None:
    key, full = create_api_key(owner=world.owner, name="billing", scopes=["write", "read"])
    assert KEY_SHAPE.match(full), full
    prefix, secret = parse_api_key(full)  # type: ignore[misc]
    assert key.prefix == prefix
    assert key.hashed_key == hash_secret(secret)
    assert secret not in str(APIKey.objects.filter(pk=key.pk).values().get())
    assert key.scopes == ["write", "read"]
    assert str(key) == f"billing (pdk_{prefix}_…)"


@pytest.mark.parametrize(("scopes", "expires"), [([], None), (["admin"], None), (["read"], -1)])
def test_create_api_key_validation(world: World, scopes: list[str], expires: int | None) -> None:
    expires_at = timezone.now() + dt.timedelta(days=expires) if expires else None
    with pytest.raises(PaymentValidationError):
        create_api_key(owner=world.owner, name="x", scopes=scopes, expires_at=expires_at)


@pytest.mark.parametrize("header", ["authorization", "x-api-key"])
def test_both_header_forms(world: World, header: str) -> None:
    secret = world.keys["key_read"]
    client = (
        _client(HTTP_AUTHORIZATION=f"Api-Key {secret}")
        if header == "authorization"
        else _client(HTTP_X_API_KEY=secret)
    )
    response = client.get(url("payments/"))
    assert response.status_code == 200
    assert response.json()["count"] == 5  # it sees what its owner sees


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Api-Key", "invalid_api_key"),
        ("Api-Key a b", "invalid_api_key"),
        ("Api-Key sk_live_123", "invalid_api_key"),
        ("Api-Key pdk_00000000_nosuchsecret", "invalid_api_key"),
        ("api-key pdk__x", "invalid_api_key"),
    ],
)
def test_bad_keys_are_401(world: World, header: str, code: str) -> None:
    response = _client(HTTP_AUTHORIZATION=header).get(url("payments/"))
    assert response.status_code == 401
    error = error_of(response)
    assert (error["type"], error["code"]) == ("authentication_error", code)


def test_right_prefix_wrong_secret_is_401(world: World) -> None:
    prefix = world.keys["key_read"].split("_")[1]
    response = _client(HTTP_X_API_KEY=f"pdk_{prefix}_wrongsecret").get(url("payments/"))
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_api_key"


def test_revoked_and_expired_keys_say_so(world: World) -> None:
    revoked = _client(HTTP_X_API_KEY=world.keys["key_revoked"]).get(url("payments/"))
    assert error_of(revoked)["code"] == "api_key_revoked"
    assert "revoked" in error_of(revoked)["message"]
    expired = _client(HTTP_X_API_KEY=world.keys["key_expired"]).get(url("payments/"))
    assert error_of(expired)["code"] == "api_key_expired"


def test_a_key_of_an_inactive_owner_is_refused(world: World) -> None:
    world.owner.is_active = False
    world.owner.save()
    response = _client(HTTP_X_API_KEY=world.keys["key_read"]).get(url("payments/"))
    assert response.status_code == 401
    assert error_of(response)["code"] == "api_key_owner_inactive"


def test_revoke_api_key(world: World) -> None:
    key, secret = make_key(world.owner, ["read"])
    assert revoke_api_key(key) is True
    assert revoke_api_key(key) is False
    assert _client(HTTP_X_API_KEY=secret).get(url("payments/")).status_code == 401


def test_last_used_at_is_written_at_most_once_a_minute(
    world: World, django_assert_num_queries: Any
) -> None:
    key, secret = make_key(world.owner, ["read"])
    client = _client(HTTP_X_API_KEY=secret)
    client.get(url("config/"))
    key.refresh_from_db()
    first = key.last_used_at
    assert first is not None
    # A second call within the minute: the key lookup only, no UPDATE.
    with django_assert_num_queries(1):
        client.get(url("config/"))
    key.refresh_from_db()
    assert key.last_used_at == first
    APIKey.objects.filter(pk=key.pk).update(last_used_at=first - dt.timedelta(minutes=2))
    client.get(url("config/"))
    key.refresh_from_db()
    assert key.last_used_at > first - dt.timedelta(minutes=2)


def test_an_api_key_wins_over_a_session(world: World) -> None:
    client = world.client("staff")
    client.credentials(HTTP_X_API_KEY=world.keys["key_read"])
    # As the owner's read key, not as staff: writes are refused, only the owner's are seen.
    assert client.post(url("payments/"), {"amount": "1.00"}, format="json").status_code == 403


def test_session_authentication(world: World) -> None:
    assert world.client("owner").get(url("payments/")).json()["count"] == 5


def test_jwt_bearer_tokens(world: World, settings) -> None:
    from rest_framework_simplejwt.tokens import AccessToken

    settings.SIMPLE_JWT = {"SIGNING_KEY": "paydesk-tests-jwt-signing-key-of-32-bytes-or-more"}
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "rest_framework_simplejwt.authentication.JWTAuthentication",
        ],
    }
    token = str(AccessToken.for_user(world.owner))
    client = _client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get(url("payments/")).json()["count"] == 5
    created = client.post(url("payments/"), {"amount": "3.00"}, format="json")
    assert created.status_code == 201
    # A JWT user is a plain user: no refunds without staff.
    refund = client.post(url("refunds/"), {"payment": world.objects["completed"].pk}, format="json")
    assert refund.status_code == 403
    bad = _client(HTTP_AUTHORIZATION="Bearer not-a-jwt").get(url("payments/"))
    assert bad.status_code == 401
    assert error_of(bad)["type"] == "authentication_error"
    # Only the project's JWT and paydesk's keys are on now: a session alone is anonymous.
    assert world.client("owner").get(url("payments/")).status_code == 401


def test_drf_token_authentication(world: World, settings) -> None:
    from rest_framework.authtoken.models import Token

    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "rest_framework.authentication.TokenAuthentication",
        ],
    }
    token = Token.objects.create(user=world.owner)
    client = _client(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get(url("payments/")).json()["count"] == 5
    created = client.post(url("payments/"), {"amount": "3.00"}, format="json")
    assert created.status_code == 201
    assert created.json()["amount"] == "3.00"
    # A token user is a plain user: no refunds without staff, no one else's payments.
    refund = client.post(url("refunds/"), {"payment": world.objects["completed"].pk}, format="json")
    assert refund.status_code == 403
    other = _client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=world.other).key}")
    assert other.get(url(f"payments/{world.objects['completed'].pk}/")).status_code == 404
    for header in (f"Token {token.key[:-1]}x", "Token ", f"Token {token.key} extra"):
        bad = _client(HTTP_AUTHORIZATION=header).get(url("payments/"))
        assert bad.status_code == 401, header
        assert error_of(bad)["type"] == "authentication_error"
    # A deactivated user's token stops working at once.
    world.owner.is_active = False
    world.owner.save(update_fields=["is_active"])
    assert client.get(url("payments/")).status_code == 401


def test_jwt_appears_in_the_schema(world: World, settings) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "rest_framework_simplejwt.authentication.JWTAuthentication",
        ],
    }
    schema = APIClient().get(url("schema/"), {"format": "json"}).json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["jwtAuth"]["scheme"] == "bearer"
    assert schemes["ApiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Api-Key",
        "description": schemes["ApiKeyAuth"]["description"],
    }


# -- the management command -----------------------------------------------------------------


def test_command_prints_the_key_once_with_a_warning(world: World) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "create_api_key",
        "owner",
        "--name",
        "server",
        "--scope",
        "read",
        "--scope",
        "write",
        "--expires-in-days",
        "30",
        stdout=out,
        stderr=err,
    )
    full = out.getvalue().strip()
    assert KEY_SHAPE.match(full)
    assert "shown only this once" in err.getvalue()
    key = APIKey.objects.get(prefix=full.split("_")[1])
    assert key.owner == world.owner
    assert key.scopes == ["read", "write"]
    assert key.expires_at is not None
    assert key.expires_at > timezone.now() + dt.timedelta(days=29)
    assert _client(HTTP_X_API_KEY=full).get(url("payments/")).status_code == 200


def test_command_defaults_and_errors(world: World) -> None:
    out = io.StringIO()
    call_command("create_api_key", "other", "--name", "ro", stdout=out, stderr=io.StringIO())
    assert APIKey.objects.get(prefix=out.getvalue().strip().split("_")[1]).scopes == ["read"]
    with pytest.raises(CommandError, match="No user"):
        call_command("create_api_key", "nobody", "--name", "x")
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command("create_api_key", "owner", "--name", "x", "--expires-at", "soon")
    with pytest.raises(CommandError, match="future"):
        call_command("create_api_key", "owner", "--name", "x", "--expires-at", "2001-01-01T00:00")
    with pytest.raises(CommandError):
        call_command("create_api_key", "owner", "--name", "x", "--scope", "admin")


# -- the admin ------------------------------------------------------------------------------


@pytest.fixture
def admin_client_(db: Any) -> Any:
    from django.test import Client

    admin = make_user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    return client


def test_admin_create_shows_the_key_once(world: World, admin_client_: Any) -> None:
    response = admin_client_.post(
        reverse("admin:paydesk_apikey_add"),
        {
            "name": "from admin",
            "owner": world.owner.pk,
            "scopes": ["read", "refund"],
            "expires_at_0": "",
            "expires_at_1": "",
        },
        follow=True,
    )
    assert response.status_code == 200
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    shown = [m for m in messages if re.search(r"pdk_[0-9a-f]{8}_[A-Za-z0-9_-]{40}", m)]
    assert len(shown) == 1
    assert "only this once" in shown[0]
    full = re.search(r"pdk_[0-9a-f]{8}_[A-Za-z0-9_-]+", shown[0]).group(0)  # type: ignore[union-attr]
    key = APIKey.objects.get(name="from admin")
    assert key.scopes == ["read", "refund"]
    assert key.owner == world.owner
    assert key.hashed_key == hash_secret(full.split("_", 2)[2])
    assert _client(HTTP_X_API_KEY=full).get(url("payments/")).status_code == 200
    # The change page never shows it again, nor the hash.
    page = admin_client_.get(reverse("admin:paydesk_apikey_change", args=[key.pk])).content.decode()
    assert full not in page
    assert key.hashed_key not in page
    listing = admin_client_.get(reverse("admin:paydesk_apikey_changelist")).content.decode()
    assert f"pdk_{key.prefix}_" in listing
    assert full not in listing


def test_admin_refuses_a_past_expiry(world: World, admin_client_: Any) -> None:
    response = admin_client_.post(
        reverse("admin:paydesk_apikey_add"),
        {
            "name": "x",
            "owner": world.owner.pk,
            "scopes": ["read"],
            "expires_at_0": "2001-01-01",
            "expires_at_1": "00:00:00",
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert not APIKey.objects.filter(name="x").exists()


def test_admin_revoke_action(world: World, admin_client_: Any) -> None:
    key, secret = make_key(world.owner, ["read"])
    response = admin_client_.post(
        reverse("admin:paydesk_apikey_changelist"),
        {"action": "revoke", "_selected_action": [key.pk]},
        follow=True,
    )
    assert response.status_code == 200
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert (
        error_of(_client(HTTP_X_API_KEY=secret).get(url("payments/")))["code"] == "api_key_revoked"
    )
