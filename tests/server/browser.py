"""Headless Chromium for the console's browser tests: Debian's ``chromium`` and ``chromium-driver``
driven by selenium (``.ci/run`` installs them when missing). Nothing is downloaded at run time."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver", "chromium-driver")
# Flags for a root user in a container with no display, and no network chatter of its own.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
    "--force-device-scale-factor=1",
    "--lang=en-US",
)


def _which(names: tuple[str, ...]) -> str | None:
    return next((path for path in map(shutil.which, names) if path), None)


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if _which(CHROMIUM_NAMES) is None or _which(DRIVER_NAMES) is None:
        return (
            "no headless Chromium: install Debian's `chromium` and `chromium-driver` "
            "(`apt-get install -y chromium chromium-driver`; .ci/run does this)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: `pip install -e '.[test]'`"
    return None


def start_chromium():
    """A fresh headless Chromium with its own throwaway profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="serac-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = _which(CHROMIUM_NAMES)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # selenium-manager would try to download a driver; the system one is given explicitly
    driver = webdriver.Chrome(options=options, service=Service(_which(DRIVER_NAMES)))
    driver.set_page_load_timeout(30)
    driver.serac_profile = profile  # removed by stop_chromium
    return driver


def stop_chromium(driver) -> None:
    try:
        driver.quit()
    finally:
        shutil.rmtree(driver.serac_profile, ignore_errors=True)
