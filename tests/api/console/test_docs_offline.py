"""/docs and /redoc on a closed network: the pages name no outside URL, their assets come from
the hub, and Swagger UI draws the hub's operations in Chromium with every other host blocked."""

import re

import pytest
from playwright.sync_api import Browser, BrowserContext, Route, expect

from tests.api.console.conftest import ServedHub

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ASSET = re.compile(r"""(?:src|href|url)\s*[=:(]\s*['"]([^'"]+)['"]""")


@pytest.mark.parametrize("page_path", ["/docs", "/redoc"])
def test_docs_pages_reference_only_the_hubs_own_files(
    served: ServedHub, browser: Browser, contexts: list[BrowserContext], page_path: str
) -> None:
    context = browser.new_context()
    contexts.append(context)
    response = context.request.get(f"{served.url}{page_path}")
    assert response.status == 200
    html = response.text()
    assert "http://" not in html
    assert "https://" not in html
    assets = [a for a in ASSET.findall(html) if not a.startswith("#")]
    assert assets, "the page loads its scripts from somewhere"
    for asset in assets:
        assert asset.startswith("/"), asset
        loaded = context.request.get(f"{served.url}{asset}")
        assert loaded.status == 200, asset
        assert len(loaded.body()) > 1000 or asset.endswith(".json"), asset
    policy = response.headers["content-security-policy"]
    assert "http" not in policy


def test_swagger_ui_draws_the_api_with_the_outside_blocked(
    served: ServedHub, browser: Browser, contexts: list[BrowserContext]
) -> None:
    context = browser.new_context()
    contexts.append(context)
    outside: list[str] = []

    def only_the_hub(route: Route) -> None:
        if route.request.url.startswith(served.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_hub)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{served.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("City telemetry hub")
    expect(page.locator(".opblock-summary-path", has_text="/parking/guidance")).to_have_count(1)
    assert outside == []
