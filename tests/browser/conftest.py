"""Browser tests: Playwright for Python driving Debian's Chromium against a live server.

Fixtures (see docs/testing.md, "Browser tests"):

* ``browser`` (session): a headless ``playwright.sync_api.Browser`` on Debian's Chromium
  (``PAYDESK_CHROMIUM``, default ``/usr/bin/chromium``), one per pytest(-xdist) process.
  Playwright never downloads a browser here; a missing binary fails every browser test with
  the install command, it never skips.
* ``page`` (function): a fresh context (own cookies) and page, desktop-sized (1280x800), light
  colour scheme, whose ``base_url`` is pytest-django's ``live_server``: ``page.goto("/demo/")``.
  Requesting it makes the test transactional (``live_server``), so data the test creates is
  committed and visible to the server thread, and flushed afterwards.
* ``demo_paydesk`` (function, autouse): paydesk configured like the demo project (the sandbox
  delivers its webhooks through the pipeline in-process); override it in a test module to
  configure paydesk differently.

The pages come from ``tests.urls`` (tests.settings' URLconf), which mounts the demo's shop
at ``/demo/``, its bookings at ``/demo/bookings/``, paydesk (webhooks, return view, the
sandbox's hosted pages) at ``/paydesk/`` and the admin: the demo's real templates and views,
so use ``reverse()`` for URLs. Screenshot helpers are in ``tests.browser.helpers``.

Playwright's sync API and Django's async-safety check
-----------------------------------------------------
The sync API runs an asyncio event loop in the calling thread (in a greenlet) and leaves the
loop marked as *running* in that thread between calls (``wait_for_future`` in playwright's
``_impl/_greenlets.py``). Django then sees "a running event loop" and refuses ORM calls with
``SynchronousOnlyOperation``; pytest-asyncio could not start its own loops either. So:

* inside a browser test (from the ``page`` fixture's setup to its teardown) the loop is marked
  running, as Playwright needs, and ``DJANGO_ALLOW_ASYNC_UNSAFE`` is set, so the test and its
  fixtures may use the ORM. That is safe here: nothing runs on that loop but Playwright, and
  the ORM calls are plain blocking calls of this thread, as in any sync test;
* the ORM calls made meanwhile use their own connections: while a loop runs in a thread,
  Django keeps that thread's connections in context-local storage, apart from the usual
  thread-local ones. ``BrowserSession.active()`` closes them when the test is over;
* outside (between tests, and for every other test in the same process after the session's
  browser started) the loop is un-marked and the variable removed, so the rest of the suite
  keeps Django's real check and its own event loops. ``test_fixtures.py`` checks this.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from .helpers import DESKTOP

CHROMIUM_DEFAULT = "/usr/bin/chromium"
# --headless: no display here. --no-sandbox: CI runs as root, where Chromium's sandbox refuses
# to start. The rest stop Chromium's own background connections (updates, sync, field trials,
# QUIC probes): this network refuses them, and they only add noise and delays.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Generous for a loaded 2-core CI machine running two xdist workers, short enough that a
# selector that never matches fails the test well before anyone wonders whether it hung.
DEFAULT_TIMEOUT_MS = 15_000

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Every test under tests/browser is a browser test: `-m browser` / `-m "not browser"`.
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.browser)


def chromium_executable() -> str:
    """The Chromium binary to drive: ``PAYDESK_CHROMIUM``, else Debian's ``/usr/bin/chromium``."""
    return os.environ.get("PAYDESK_CHROMIUM") or CHROMIUM_DEFAULT


def require_chromium(path: str) -> None:
    """Fail (never skip: a skipped browser test proves nothing) when ``path`` cannot run."""
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(
            f"Chromium not found at {path}: the browser tests (tests/browser) drive Debian's "
            "Chromium, and Playwright cannot download a browser of its own here. Install it "
            "with `apt-get install chromium` (.ci/run does this), or set PAYDESK_CHROMIUM to "
            "a Chromium binary.",
            pytrace=False,
        )


class BrowserSession:
    """The process's Playwright driver and Chromium, and the event loop they run on."""

    def __init__(self, executable: str) -> None:
        require_chromium(executable)
        self._manager = sync_playwright()
        self.playwright: Playwright = self._manager.start()
        # start() leaves Playwright's loop marked running in this thread (see the module
        # docstring); keep it to mark it again whenever Playwright is used.
        self.loop = asyncio.get_running_loop()
        try:
            self.browser: Browser = self.playwright.chromium.launch(
                executable_path=executable, args=CHROMIUM_ARGS, headless=True
            )
        except BaseException:
            self.playwright.stop()
            raise
        finally:
            asyncio._set_running_loop(None)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Let Playwright (and, since its loop is then running, the ORM) be used in here."""
        previous = asyncio._get_running_loop()
        if previous is not None and previous is not self.loop:
            raise RuntimeError(
                "A browser test cannot run inside another event loop (an async test or "
                "fixture): Playwright's sync API runs its own."
            )
        unsafe = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
        asyncio._set_running_loop(self.loop)
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        try:
            yield
        finally:
            if previous is None:
                # While a loop runs, Django keeps this thread's database connections apart
                # from its usual ones (asgiref's Local, thread_critical, switches to
                # context-local storage), where nothing else would ever close them: a
                # leftover would keep PostgreSQL from dropping the test database.
                connections.close_all()
            asyncio._set_running_loop(previous)
            if unsafe is None:
                os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
            else:
                os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = unsafe

    def close(self) -> None:
        with self.active():
            try:
                self.browser.close()
            finally:
                self.playwright.stop()


@pytest.fixture(scope="session")
def browser_session() -> Iterator[BrowserSession]:
    session = BrowserSession(chromium_executable())
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="session")
def browser(browser_session: BrowserSession) -> Browser:
    """Headless Chromium for this process. Use it only through ``page`` or inside
    ``browser_session.active()`` (a new context for a second, independent visitor)."""
    return browser_session.browser


@pytest.fixture
def demo_paydesk(settings: Any) -> None:
    """paydesk as the demo configures it (example/demo/settings.py), for the browser."""
    settings.PAYDESK = {
        **settings.PAYDESK,
        "PROVIDERS": {
            # The demo's default: every sandbox charge change is signed and delivered to
            # paydesk's webhook pipeline in-process after commit (tests.settings turns it off).
            "sandbox": {
                "BACKEND": "paydesk.providers.sandbox.SandboxProvider",
                "OPTIONS": {"WEBHOOK_DELIVERY": "inprocess"},
            },
        },
        "PROCESSING_FEE_RATE": "3",
        "REFUND_POLICY": "bookings.policy.BookingRefundPolicy",
    }


@pytest.fixture(autouse=True)
def _demo_paydesk(request: pytest.FixtureRequest) -> None:
    # Through its name, so a test module can replace `demo_paydesk` with its own fixture.
    request.getfixturevalue("demo_paydesk")


@pytest.fixture(scope="session")
def live_server(django_db_setup: None, live_server: Any) -> Any:
    """pytest-django's ``live_server``, started only once the test database exists.

    Requested by ``page`` on its own, the session-scoped server would start before the
    test database is set up (that is requested later, through ``transactional_db``), so
    it would still be serving when the database is destroyed.
    """
    return live_server


@pytest.fixture
def page(live_server: Any, browser_session: BrowserSession) -> Iterator[Page]:
    """A fresh page on the live server (own cookies), 1280x800, light colour scheme."""
    with browser_session.active():
        context = browser_session.browser.new_context(
            base_url=live_server.url, viewport=DESKTOP, color_scheme="light"
        )
        try:
            context.set_default_timeout(DEFAULT_TIMEOUT_MS)
            yield context.new_page()
        finally:
            context.close()
