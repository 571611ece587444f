"""Headless Chromium (the OS package) driven by selenium, for the
report tests and bench. `chromium()` is None (with the reason) where
the browser, its driver or selenium is missing."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Any, Iterator

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,2400",
]


def missing() -> str | None:
    """Why the browser cannot run here, or None."""
    for path in (CHROMIUM, DRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} not installed (scripts/os-deps/chromium.sh installs it)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed (the dev extra)"
    return None


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium with a fresh profile, closed after."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="gage-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(DRIVER))
    try:
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(60)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: Any) -> list[str]:
    """Console messages of level SEVERE (errors) since the last call."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def drawn_charts(driver: Any) -> list[dict[str, Any]]:
    """Every plotly chart of the page: its id, and how much it drew (SVG
    paths with data, canvas elements)."""
    return driver.execute_script(
        """
        return Array.from(document.querySelectorAll('.js-plotly-plot')).map(
          function (el) {
            var paths = Array.from(el.querySelectorAll('path')).filter(
              function (p) { var d = p.getAttribute('d') || '';
                             return d.length > 10; }).length;
            var canvases = el.querySelectorAll('canvas').length;
            return {id: el.id, paths: paths, canvases: canvases,
                    lines: el.querySelectorAll('.scatterlayer .trace').length,
                    parcoords: el.querySelectorAll('.parcoords').length};
          });
        """
    )
