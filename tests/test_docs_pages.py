"""/docs, /redoc and / in a real headless Chromium against a real server, with nothing but the
server to load from: the API documentation works on a laptop with no network."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from live import chromium, console_errors, live_server, wait_for

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def _requested(browser) -> list[str]:
    """Every URL the page loaded (scripts, styles, fonts, images, fetches), in order."""
    return browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")


def _assert_local(urls: list[str], base: str) -> None:
    outside = [u for u in urls if not (u.startswith(base + "/") or u.startswith(("data:", "blob:")))]
    assert outside == [], f"the page asked the network for {outside}"


@pytest.mark.browser
def test_api_docs_render_from_vendored_files_only(tmp_path: Path) -> None:
    with live_server(tmp_path / "data") as server:
        spec = httpx.get(server.url + "/openapi.json").json()
        operations = sum(1 for item in spec["paths"].values() for m in item if m in HTTP_METHODS)
        summaries = [op["summary"] for item in spec["paths"].values() for m, op in item.items() if m in HTTP_METHODS]
        for page in ("/docs", "/redoc"):
            html = httpx.get(server.url + page).text
            # every script, stylesheet and icon is the server's own
            assert re.findall(r'(?:src|href)="(https?:)?//', html) == [], html
        with chromium() as browser:
            browser.get(server.url + "/docs")
            wait_for(browser, lambda d: len(d.find_elements("css selector", ".opblock")) >= operations)
            shown = [e.text for e in browser.find_elements("css selector", ".opblock-summary-description")]
            assert set(summaries) <= set(shown)
            assert "/v1/identify" in [e.text.replace("\u200b", "")
                                      for e in browser.find_elements("css selector", ".opblock-summary-path")]
            _assert_local(_requested(browser), server.url)
            assert any(u.endswith("/openapi.json") for u in _requested(browser))
            assert console_errors(browser) == []

            browser.get(server.url + "/redoc")
            wait_for(browser,
                lambda d: "Identify the leopard in one photo" in d.find_element("tag name", "body").text)
            body = browser.find_element("tag name", "body").text
            assert all(s in body for s in summaries)
            _assert_local(_requested(browser), server.url)


@pytest.mark.browser
def test_home_page_says_what_this_is_and_links_the_docs(tmp_path: Path) -> None:
    with live_server(tmp_path / "data") as server, chromium() as browser:
        browser.get(server.url + "/")
        text = browser.find_element("tag name", "main").text
        assert "rosettes" in text and "match" in text and "both sides" in text
        assert "The catalogue holds 0 individuals and 0 photos." in text  # laptop mode: the owner sees counts
        links = {a.get_attribute("href").removeprefix(server.url) for a in browser.find_elements("css selector", "main a")}
        assert {"/docs", "/redoc", "/healthz"} <= links
        browser.find_element("link text", "API documentation").click()
        wait_for(browser, lambda d: d.find_elements("css selector", ".opblock"))
        _assert_local(_requested(browser), server.url)
    with live_server(tmp_path / "data2", env={"REID_API_TOKEN": "secret"}) as server:
        page = httpx.get(server.url + "/")
        assert page.status_code == 200 and "The catalogue holds" not in page.text  # anonymous: no counts
