"""The webhook endpoint's rate limit on Django's Redis cache backend, against real Redis.

The locmem variant is in test_webhooks_pipeline.py; this one proves the same answers when
the counters live in Redis, as they must when several processes or machines serve webhooks.
"""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import caches
from django.test import override_settings

from paydesk.models import WebhookEvent
from paydesk.providers.sandbox.webhooks import build_event, signed_delivery

from .test_security_ratelimit import redis_url  # noqa: F401 - module-scoped fixture
from .test_webhooks_pipeline import LIMITED, frozen_rate_clock, post, sandbox  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_cache(redis_url):  # noqa: F811
    with override_settings(
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_url,
                "KEY_PREFIX": f"wh-{uuid.uuid4().hex}",
            }
        }
    ):
        yield caches["default"]


@override_settings(PAYDESK=LIMITED)
@pytest.mark.usefixtures("frozen_rate_clock")
def test_rate_limit_is_429_with_retry_after_on_redis(client, redis_cache):
    deliveries = [
        signed_delivery(sandbox(), build_event("customer.updated", {"n": n, "currency": "USD"}))
        for n in range(3)
    ]
    answers = [post(client, body, headers) for body, headers in deliveries]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["code"] == "rate_limited"
    assert int(answers[2]["Retry-After"]) >= 1
    assert WebhookEvent.objects.count() == 2
    # The counters really are in Redis, not in this process.
    assert any(b"paydesk" in key for key in redis_cache._cache.get_client().keys("*"))
