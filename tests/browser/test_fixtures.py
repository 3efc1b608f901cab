"""The browser fixtures themselves: what they promise the rest of the suite."""

from __future__ import annotations

import asyncio

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Browser

from .conftest import require_chromium


@pytest.mark.django_db
def test_the_session_browser_leaves_other_tests_a_clean_thread(browser: Browser) -> None:
    # The session's Chromium is running in this process, but outside a `page` the thread has
    # no running event loop: Django's async-safety check and asyncio work as in any test.
    assert browser.is_connected()
    assert asyncio._get_running_loop() is None
    get_user_model().objects.count()  # no SynchronousOnlyOperation
    assert asyncio.run(asyncio.sleep(0, result="ran")) == "ran"


def test_a_missing_chromium_fails_with_the_install_command(tmp_path) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install chromium"):
        require_chromium(str(tmp_path / "no-chromium"))
