"""A real `reid serve`-like server in a subprocess and a real headless Chromium, for end-to-end tests.

    with live_server(data_dir, env={"REID_API_TOKEN": "t"}) as server:
        httpx.get(server.url + "/healthz")
        with chromium() as browser:          # selenium WebDriver on Debian's chromium
            browser.get(server.url + "/")

Browser tests are marked `browser` (they run in CI: .ci/run installs chromium and chromium-driver).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "imagenet-lite0.pt"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    log_path: Path
    data_dir: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def live_server(data_dir: Path, env: dict[str, str] | None = None, model: Path | None = MODEL,
                startup_timeout: float = 180) -> Iterator[LiveServer]:
    """uvicorn on a free loopback port over `data_dir`; polled on /healthz until it answers."""
    data_dir = Path(data_dir)
    # beside the data dir (a pytest tmp dir): pytest prunes it, /tmp does not
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path = Path(tempfile.mkstemp(prefix="reid-server-", suffix=".log", dir=data_dir.parent)[1])
    full_env = {**os.environ, "REID_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **(env or {})}
    if model is not None:
        full_env.setdefault("REID_MODEL", str(model))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"],
            cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
        )
    server = LiveServer(url, proc, log_path, data_dir)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{server.log()}")
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not come up:\n{server.log()}")
            time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


@contextmanager
def chromium(width: int = 1400, height: int = 1000):
    """Headless Debian Chromium driven by selenium through the system chromedriver (no downloads)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium_binary(), shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.fail("browser tests need Debian's chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver; .ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    user_dir = tempfile.mkdtemp(prefix="reid-chromium-")
    options.add_argument(f"--user-data-dir={user_dir}")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(user_dir, ignore_errors=True)


def wait_for(driver, condition, timeout: float = 120):
    """WebDriverWait.until that keeps polling while the page re-renders what `condition` reads.

    An element replaced between finding it and reading it is normally a stale-element error,
    which the selenium conditions treat as "not yet"; Chromium sometimes answers a plain
    "Node with given id does not belong to the document" instead (CI saw it once after a rename).
    """
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def tolerant(d):
        try:
            return condition(d)
        except StaleElementReferenceException:
            return False
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return False
            raise

    return WebDriverWait(driver, timeout).until(tolerant)


def console_errors(driver) -> list[str]:
    """Severe messages the page logged to the browser console (failed loads, JS errors)."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
