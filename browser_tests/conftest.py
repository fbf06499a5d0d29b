"""Browser tests: JupyterLab and the reports in a real Chromium, driven by Selenium.

Run with ``make test-browser`` (``.ci/run`` runs it after the unit tests). Needs Debian's
``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``, ``/usr/bin/chromedriver``;
``.ci/run`` installs them when missing). Screenshots go to ``browser_tests/artifacts/``
(git-ignored), so a failure can be looked at.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from zoolib import paths

CHROMIUM = Path(os.environ.get("ZOO_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("ZOO_CHROMEDRIVER", "/usr/bin/chromedriver"))
ARTIFACTS = Path(__file__).parent / "artifacts"
NOTEBOOKS = ["01_data_prep", "02_train", "03_dropout_posteriors", "04_active_learning"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def project(tmp_path_factory) -> Path:
    """A throwaway project root: the shipped raw data, and the numbered notebooks with the ci
    parameter set injected (papermill, not executed), as a student would open them."""
    import papermill as pm

    from zoolib.reports import runner

    root = tmp_path_factory.mktemp("project")
    (root / "data").mkdir()
    os.symlink(paths.RAW_DIR, root / "data" / "raw")
    (root / "notebooks").mkdir()
    ci = runner.load_params("ci")
    for stem in NOTEBOOKS:
        pm.execute_notebook(
            str(paths.NOTEBOOKS_DIR / f"{stem}.ipynb"),
            str(root / "notebooks" / f"{stem}.ipynb"),
            parameters=ci.get(stem, {}),
            prepare_only=True,
            progress_bar=False,
        )
    return root


@pytest.fixture(scope="session")
def lab(project, tmp_path_factory):
    """JupyterLab from the project's environment on a free loopback port with a random token;
    its kernels write into ``project``. Yields the base URL and the token; stops it after."""
    settings = tmp_path_factory.mktemp("lab-settings")
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))  # every cell in the page
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false"}))  # no news prompt over the page
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "ZOO_PROJECT_ROOT": str(project),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path_factory.mktemp("lab-workspaces")),
    }
    env.pop("ZOO_HEADLESS", None)  # a student's kernel: live widgets
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={project / 'notebooks'}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = open(project / "jupyterlab.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"JupyterLab did not start; see {project / 'jupyterlab.log'}"
                    ) from None
                time.sleep(0.5)
        yield base, token
    finally:
        os.killpg(server.pid, 15)  # the server and every kernel it started
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
        log.close()


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium through Selenium and the system chromedriver."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.fail(
            f"browser tests need {CHROMIUM} and {CHROMEDRIVER}: "
            "apt-get install chromium chromium-driver (.ci/run does)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        "--allow-file-access-from-files",
        # the network blocked, as offline classrooms are: every request goes to a closed port
        # (loopback, where JupyterLab runs, and file:// pages are never proxied)
        "--proxy-server=127.0.0.1:9",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
