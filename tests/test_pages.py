"""The web pages in a real headless Chromium against a real server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from live import chromium, console_errors, live_server


@pytest.mark.browser
def test_home_page_renders_offline_with_its_stylesheet(tmp_path: Path) -> None:
    with live_server(tmp_path / "data") as server:
        page = httpx.get(server.url + "/")
        assert page.status_code == 200 and "Leopard re-identification" in page.text
        with chromium() as browser:
            browser.get(server.url + "/")
            assert browser.find_element("css selector", "h1").text == "Leopard re-identification"
            # app.css loaded: the top bar has its dark background, not the browser default
            bar = browser.find_element("css selector", ".topbar")
            assert bar.value_of_css_property("background-color") == "rgba(43, 38, 32, 1)"
            assert console_errors(browser) == []
