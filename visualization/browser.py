"""Open a run report in headless Chromium (through Selenium and chromedriver): the report's tests use it, and it
takes the README's screenshot of the report::

    python -m visualization.browser runs/<run-id>/report.html docs/images/report.png --node 1701

Needs Debian's ``chromium`` and ``chromium-driver`` packages (or any Chromium and its matching chromedriver on
the PATH).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gat.errors import GATError

# Headless, no GPU, no sandbox (containers run as root), and nothing that reaches out to the network.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
WINDOW = (1500, 1250)  # pixels: the run's header, the map and the explorer fit in one screenshot
READY_SECONDS = 120  # a 7 MB page with thousands of SVG points takes a few seconds on a busy machine


def missing_browser() -> str | None:
    """Why the report cannot be opened in a browser here, or None when it can."""
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        return f"{' and '.join(missing)} not on the PATH (Debian: apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -r requirements.txt)"
    return None


@contextmanager
def open_report(path: str | os.PathLike, window: tuple[int, int] = WINDOW) -> Iterator:
    """A Selenium driver showing the report at ``path``, once its explorer is drawn; closed on exit.

    The browser's console is kept (``driver.get_log("browser")``) so that callers can look for JavaScript errors.
    """
    reason = missing_browser()
    if reason:
        raise GATError(f"cannot open a browser: {reason}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
        try:
            driver.get(Path(path).resolve().as_uri())
            WebDriverWait(driver, READY_SECONDS).until(
                lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true"
            )
            yield driver
        finally:
            driver.quit()


def select_node(driver, node: int) -> None:
    """Select ``node`` as a click on the map does: through the map's own ``plotly_click`` event."""
    driver.execute_script(
        "const map = document.getElementById('embedding-map');"
        "map.emit('plotly_click', {points: [{customdata: [arguments[0]]}]});",
        node,
    )


def screenshot(report: str | os.PathLike, out: str | os.PathLike, node: int | None = None) -> Path:
    """Save a PNG of the top of ``report`` (header, map, explorer), with ``node`` selected if given."""
    with open_report(report) as driver:
        if node is not None:
            select_node(driver, node)
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m visualization.browser", description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="a report.html")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--node", type=int, default=None, help="select this node first")
    args = parser.parse_args(argv)
    print(screenshot(args.report, args.out, args.node))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
