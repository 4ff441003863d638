"""A live play server on a thread and headless Chromium (Debian's chromium + chromium-driver) for it."""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from tests.play.helpers import wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# The machine's network is closed: without these flags Chromium stalls on its background services.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def missing_browser() -> str | None:
    """Why the browser cannot run here, or None."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        return f"{' and '.join(missing)} not found (Debian: apt-get install chromium chromium-driver)"
    return None


@contextlib.contextmanager
def live_server(engine, **limits) -> Iterator[str]:
    """Serve `create_app(engine)` with uvicorn on a free loopback port in a thread; yields its URL."""
    import uvicorn

    from egoworld.play.server import bind_socket, create_app, url_of

    sock = bind_socket("127.0.0.1", 0)
    config = uvicorn.Config(create_app(engine, **limits), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 60, "the server to start")
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@contextlib.contextmanager
def chromium(downloads: Path, width: int = 1280, height: int = 860) -> Iterator:
    """A headless Chromium WebDriver with a fresh profile that saves downloads into `downloads`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="egoworld-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={width},{height}")
        options.add_experimental_option(
            "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
        )
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        try:
            driver.set_page_load_timeout(60)
            driver.execute_cdp_cmd(
                "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
            )
            yield driver
        finally:
            driver.quit()


def text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def attribute(driver, element_id: str, name: str) -> str | None:
    return driver.find_element("id", element_id).get_attribute(name)
