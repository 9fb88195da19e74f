"""The report page in a real browser: headless Chromium (Debian ``chromium`` and
``chromium-driver``, installed by ``make test``) opens index.html from disk, logs no console
errors, loads every image, runs no injected script, and renders a page that is not blank.

Skipped when the browser or selenium is missing, except under CI (``$CI`` set): there it fails.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from test_report import EVIL, evil_report

pytest.importorskip("matplotlib")


def _missing(what: str):
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI must run the browser test; `make test` installs chromium)")
    pytest.skip(f"{what}; `make test` installs chromium and chromium-driver")


def _driver():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (dev extra)")
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                    if shutil.which(b)), None)
    driver = shutil.which("chromedriver") or next(
        (p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
         if Path(p).is_file()), None)
    if not browser or not driver:
        _missing("headless Chromium or chromedriver not found")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1800", "--allow-file-access-from-files"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.mark.slow
def test_page_opens_from_disk_in_headless_chromium(tmp_path):
    from moescale.reporting import build
    from synthetic_sweep import synthetic_store

    store = tmp_path / "sweep.db"
    synthetic_store(store, n_experts=(1, 4), points=20, failed=1,
                    tags={"note": EVIL})  # a run tag with markup
    inp = build.load_store(store)
    build.load_runs(evil_report(tmp_path), inp=inp)  # a file name with markup
    report = build.build_report(inp, tmp_path / "report", title=EVIL)
    assert len(report.figures) >= 4
    driver = _driver()
    try:
        driver.get(report.page.resolve().as_uri())
        assert driver.execute_script("return document.readyState") == "complete"
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, "
            "i.naturalWidth, i.naturalHeight])")
        assert len(images) == len(report.figures)
        broken = [src for src, done, w, h in images if not (done and w > 0 and h > 0)]
        assert not broken, f"broken images: {broken}"
        # the injected markup stayed text: nothing ran, the title shows it literally
        assert driver.execute_script("return window.__pwned === undefined")
        assert EVIL in driver.title
        assert driver.execute_script("return document.scripts.length") == 0
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert not errors, f"console errors: {errors}"
        png = driver.get_screenshot_as_png()
    finally:
        driver.quit()
    from PIL import Image

    shot = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float)
    assert shot.shape[0] > 500 and shot.shape[1] > 500
    grey = shot.mean(axis=2)
    assert grey.std() > 10, "the screenshot is blank"
    assert (grey < 128).mean() > 0.005  # text and plotted marks
    assert len(np.unique(shot.reshape(-1, 3)[::7], axis=0)) > 50  # figures, not flat colour
