"""The page in a real browser: headless Chromium (Debian's package) driven by Selenium.

Load the page, upload an image, press ArrowLeft three times, see new frames arrive and differ,
download the mp4. Skipped only where /usr/bin/chromium or /usr/bin/chromedriver is missing.
"""

from __future__ import annotations

import pytest

from tests.play.browser import attribute, chromium, live_server, missing_browser, text
from tests.play.helpers import wait_until


@pytest.fixture
def browser(tmp_path):
    reason = missing_browser()
    if reason:
        pytest.skip(reason)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with chromium(downloads) as driver:
        driver.downloads = downloads
        yield driver


def test_walk_through_an_uploaded_picture(browser, engine, picture):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    from egoworld.data.video import VideoReader

    driver = browser
    with live_server(engine) as url:
        driver.get(url)
        wait_until(lambda: text(driver, "conn") == "connected", 60, "the page to connect")
        assert driver.find_element("id", "move-turn_left").is_displayed()
        assert len(driver.find_elements("css selector", "#samples button")) >= 6

        driver.find_element("id", "file").send_keys(str(picture))
        wait_until(lambda: attribute(driver, "current", "data-index") == "0", 60, "the start image")
        assert "painting.png" in text(driver, "message")
        assert not driver.find_element("id", "empty").is_displayed()
        start = attribute(driver, "current", "src")
        assert start.startswith("data:image/png;base64,")

        for _ in range(3):
            ActionChains(driver).send_keys(Keys.ARROW_LEFT).perform()
        wait_until(lambda: text(driver, "stat-length") == "4", 120, "three new frames")
        wait_until(lambda: attribute(driver, "current", "data-index") == "3", 60, "the page to show frame 3")
        strip = driver.find_elements("css selector", "#strip img")
        assert [s.get_attribute("data-index") for s in strip] == ["0", "1", "2", "3"]
        sources = [s.get_attribute("src") for s in strip]
        assert len(set(sources)) == 4  # every new frame differs from the start and from each other
        assert attribute(driver, "current", "src") == sources[-1] != start
        assert text(driver, "stat-fps") != "–" and text(driver, "stat-latency") != "–"
        assert driver.execute_script("return document.getElementById('busy').hidden") is True

        driver.find_element("id", "dl-mp4").click()
        done = wait_until(
            lambda: [p for p in driver.downloads.glob("*.mp4") if not p.name.endswith(".crdownload")],
            60,
            "the mp4 download",
        )
        with VideoReader(done[0]) as reader:
            assert len(reader) == 4
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
