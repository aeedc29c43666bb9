"""Headless Chromium (Debian's) driven by Playwright, and a secured hub served by uvicorn."""

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from hub.cli.local_stack import free_port
from tests.api.access.access_fixtures import PASSWORD, SecuredHub, add_users, secured_hub

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per module: Playwright's sync API keeps an event loop running
    in the main thread, which must be gone before other tests run their own loops."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@dataclass
class ServedHub:
    """A secured hub on a real port."""

    hub: SecuredHub
    url: str


@pytest.fixture
def served(database_url: str) -> Iterator[ServedHub]:
    """The assembled, secured app under uvicorn in a thread, with a user per role."""
    with secured_hub(database_url) as hub:
        add_users(hub.access)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                hub.app,
                host="127.0.0.1",
                port=port,
                log_level="warning",
                timeout_graceful_shutdown=1,
            )
        )
        thread = threading.Thread(target=server.run, name="console-test-api", daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        try:
            yield ServedHub(hub, f"http://127.0.0.1:{port}")
        finally:
            server.should_exit = True
            thread.join(timeout=10)


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    """Browser contexts opened by a test (one per user), closed after it."""
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


def log_in(
    browser: Browser, contexts: list[BrowserContext], url: str, user: str, lang: str = "en"
) -> Page:
    """A page of a fresh context, logged in through the console's form."""
    context = browser.new_context(locale="en-GB" if lang == "en" else "zh-CN")
    context.add_init_script(f"localStorage.setItem('hub.lang', '{lang}')")
    contexts.append(context)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{url}/console/")
    page.get_by_test_id("login-username").fill(user)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("who").filter(has_text=user).wait_for()
    return page
