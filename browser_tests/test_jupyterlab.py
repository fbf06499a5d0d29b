"""The notebooks as a student meets them: JupyterLab in Chromium, Run All, the live widget, and
the HTML reports. Slow by nature (the four notebooks run on the ci parameters, twice: once in
JupyterLab and once by the runner for the reports)."""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest
from conftest import NOTEBOOKS
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

# outputs each notebook must show after Run All (at least this many)
EXPECTED = {
    "01_data_prep": {"images": 4, "tables": 2},
    "02_train": {"images": 1, "tables": 1},
    "03_dropout_posteriors": {"images": 3, "tables": 1},
    "04_active_learning": {"images": 3, "tables": 2},
}
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook on show (others stay in the DOM)
XPANEL = "//div[contains(@class,'jp-NotebookPanel') and not(contains(@class,'lm-mod-hidden'))]"


def kernel_state(base: str, token: str, name: str) -> str | None:
    sessions = json.load(urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=5))
    for s in sessions:
        if s["path"].endswith(name):
            return s["kernel"]["execution_state"]
    return None


def open_notebook(driver, base, token, name):
    driver.get(f"{base}/lab/tree/{name}?reset&token={token}")  # reset: only this notebook
    WebDriverWait(driver, 120).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, f"{PANEL} .jp-CodeCell"))
    )
    WebDriverWait(driver, 120).until(lambda d: kernel_state(base, token, name) == "idle")


def run_all(driver):
    menu = driver.find_element(
        By.XPATH, "//li[contains(@class,'lm-MenuBar-item')][.//div[text()='Run']]"
    )
    menu.click()
    item = WebDriverWait(driver, 20).until(
        ec.element_to_be_clickable(
            (By.XPATH, "//li[contains(@class,'lm-Menu-item')][.//div[text()='Run All Cells']]")
        )
    )
    item.click()


def prompts(driver) -> list[str]:
    return [
        e.text.strip()
        for e in driver.find_elements(By.CSS_SELECTOR, f"{PANEL} .jp-CodeCell .jp-InputArea-prompt")
    ]


def wait_until_done(driver, base, token, name, timeout=900):
    """Seconds until Run All is over: no cell queued or running ("[*]") and the kernel idle,
    twice in a row (whether every cell ran is checked by the caller)."""
    start, settled = time.monotonic(), 0
    time.sleep(2)
    while time.monotonic() - start < timeout:
        busy = any(p == "[*]:" for p in prompts(driver))
        settled = 0 if busy or kernel_state(base, token, name) != "idle" else settled + 1
        if settled >= 2:
            return time.monotonic() - start
        time.sleep(2)
    raise AssertionError(f"{name} did not finish in {timeout} s; prompts: {prompts(driver)}")


def errors(driver) -> list[str]:
    texts = [
        e.text
        for e in driver.find_elements(
            By.CSS_SELECTOR,
            f"{PANEL} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
        )
    ]
    return [t for t in texts if "Traceback" in t or re.search(r"^\w*Error\b", t, re.M)]


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_each_notebook_runs_top_to_bottom_in_jupyterlab(stem, lab, browser, artifacts):
    base, token = lab
    name = f"{stem}.ipynb"
    open_notebook(browser, base, token, name)
    run_all(browser)
    seconds = wait_until_done(browser, base, token, name)
    browser.save_screenshot(str(artifacts / f"{stem}.png"))
    found = errors(browser)
    assert not found, f"{name}: a cell failed in JupyterLab:\n{found[0][:2000]}"
    unrun = [p for p in prompts(browser) if not re.fullmatch(r"\[\d+\]:", p)]
    assert not unrun, f"{name}: {len(unrun)} code cells did not run: {prompts(browser)}"
    images = browser.find_elements(By.CSS_SELECTOR, f"{PANEL} .jp-OutputArea-output img")
    tables = browser.find_elements(By.CSS_SELECTOR, f"{PANEL} .jp-OutputArea-output table")
    assert len(images) >= EXPECTED[stem]["images"], f"{name}: {len(images)} figures"
    assert len(tables) >= EXPECTED[stem]["tables"], f"{name}: {len(tables)} tables"
    assert all(browser.execute_script("return arguments[0].naturalWidth", i) > 0 for i in images)
    print(
        f"{name}: ran in {seconds:.0f} s in JupyterLab, {len(images)} figures, {len(tables)} tables"
    )


def _explorer_image(driver):
    imgs = driver.find_elements(
        By.XPATH, XPANEL + "//div[contains(@class,'widget-vbox')][.//label[text()='galaxy #']]//img"
    )
    return imgs[-1].get_attribute("src") if imgs else None


def _press(driver, label: str, key) -> float:
    """Focus the slider labelled ``label``, press ``key``; seconds until the figure changed."""
    before = _explorer_image(driver)
    handle = driver.find_element(
        By.XPATH,
        XPANEL + f"//div[contains(@class,'widget-slider')][.//label[text()='{label}']]"
        "//div[contains(@class,'noUi-handle')]",
    )
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", handle)
    handle.click()
    start = time.monotonic()
    handle.send_keys(key)
    WebDriverWait(driver, 60).until(lambda d: _explorer_image(d) not in (None, before))
    return time.monotonic() - start


def test_the_galaxy_explorer_is_live_and_redraws(lab, browser, artifacts):
    """After notebook 03 ran (test above), its GalaxyExplorer is the live widget (not the
    static fallback), and the galaxy slider and the T slider, moved from the keyboard, redraw."""
    base, token = lab
    open_notebook(browser, base, token, "03_dropout_posteriors.ipynb")
    if not browser.find_elements(By.XPATH, XPANEL + "//label[text()='galaxy #']"):
        run_all(browser)
        wait_until_done(browser, base, token, "03_dropout_posteriors.ipynb")
    sliders = browser.find_elements(
        By.XPATH, XPANEL + "//div[contains(@class,'widget-slider')][.//label[text()='galaxy #']]"
    )
    if not sliders:  # keep what the explorer's cell shows instead, for a look
        cells = browser.find_elements(
            By.XPATH,
            XPANEL + "//div[contains(@class,'jp-CodeCell')][contains(., 'GalaxyExplorer(')]",
        )
        if cells:
            browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", cells[-1])
        (artifacts / "widget_missing.html").write_text(browser.page_source)
        browser.save_screenshot(str(artifacts / "widget_missing.png"))
    assert sliders, (
        "the GalaxyExplorer did not render as a live widget (is jupyterlab_widgets installed?)"
    )
    browser.save_screenshot(str(artifacts / "widget_before.png"))
    galaxy = _press(browser, "galaxy #", Keys.ARROW_RIGHT)
    browser.save_screenshot(str(artifacts / "widget_after_galaxy.png"))
    samples = _press(browser, "T samples", Keys.ARROW_LEFT)
    browser.save_screenshot(str(artifacts / "widget_after_T.png"))
    print(f"widget redraw: galaxy slider {galaxy:.2f} s, T slider {samples:.2f} s")


def test_reports_index_and_pages_load(project, browser, artifacts, monkeypatch):
    """The runner's reports for the ci set: every local link of the index resolves, and every
    page it links shows its images."""
    from pathlib import Path

    from zoolib.reports import runner

    monkeypatch.setenv("ZOO_PROJECT_ROOT", str(project))
    reports = project / "reports"
    runner.run("ci", reports_dir=reports)
    index = reports / "index.html"
    browser.get(index.as_uri())
    browser.save_screenshot(str(artifacts / "reports_index.png"))
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a[href]")]
    local = [h for h in links if h.startswith("file://")]
    assert local, "the index links no report"
    for href in local:
        assert Path(urllib.request.url2pathname(href[len("file://") :].split("#")[0])).is_file(), (
            href
        )
    for image in browser.find_elements(By.CSS_SELECTOR, "img"):
        assert browser.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", image
        )
    for href in sorted(set(h.split("#")[0] for h in local if h.endswith(".html"))):
        browser.get(href)
        images = browser.find_elements(By.CSS_SELECTOR, "img")
        assert images, f"{href} shows no figure"
        broken = [
            i
            for i in images
            if not browser.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0", i
            )
        ]
        assert not broken, f"{href}: {len(broken)} images did not load"
        # equations are MathML the browser draws itself (no MathJax from a CDN): rendered, with
        # a size, and no TeX left in the text
        if Path(href).stem[:2].isdigit():
            maths = browser.find_elements(By.CSS_SELECTOR, "math")
            assert maths, f"{href} shows no equation"
            assert all(m.size["width"] > 0 and m.size["height"] > 0 for m in maths), href
            text = browser.find_element(By.TAG_NAME, "body").text
            assert "$$" not in text and "\\frac" not in text, f"{href}: raw TeX on the page"
        browser.save_screenshot(str(artifacts / f"report_{Path(href).stem}.png"))
