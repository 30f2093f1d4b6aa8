"""Every notebook in a real browser: JupyterLab on 127.0.0.1, driven through Debian's
chromium and chromedriver (Selenium). Each notebook runs all its cells; a slider moves (or,
where a notebook has none, a button is pressed) and the output changes; no cell ends in an
error and no widget fails to display; nothing is fetched from anywhere but the local
server. Every figure the page shows is screenshot on its own and must not be blank; every
explorer shows its figure as an ``<img>`` (no ``Output`` area) that changes, and is never
blank, while its controls change several times in a row. Screenshots go to
``build/browser/`` (``NN-notebook-K.png``: figure K of a notebook, in page order;
``NN-notebook-explorer-K-C.png``: explorer K after change C) so a person can look.

Marked ``browser``: on a laptop without chromium it skips with the reason, in CI it fails.
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

from tests.processes import stop_group

pytestmark = [pytest.mark.browser, pytest.mark.notebook]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SHOTS = ROOT / "build" / "browser"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
RUN_TIMEOUT_S = 600
EXPLORERS = {"01-cpu": 1, "02-memory": 2, "03-storage": 2, "06-experiments": 1}
"""The explorers (figures drawn by widgets) each notebook shows, at least."""

# What JupyterLab is asked, in the page, through the app it exposes
# (--LabApp.expose_app_in_browser).
NOTEBOOK_STATE = """
const app = window.jupyterapp;
const panel = app && app.shell.currentWidget;
if (!panel || !panel.content || !panel.sessionContext) return null;
const session = panel.sessionContext.session;
const cells = panel.content.widgets.filter(c => c.model.type === 'code');
return {
  path: panel.context.path,
  kernel: session && session.kernel ? session.kernel.status : 'none',
  pending: cells.filter(c => c.model.executionCount === null && c.model.sharedModel
                                 .getSource().trim() !== '').length,
  running: cells.filter(c => c.promptNode && c.promptNode.textContent.includes('*')).length,
  errors: cells.flatMap(c => c.model.outputs.toJSON()
                          .filter(o => o.output_type === 'error')
                          .map(o => o.ename + ': ' + o.evalue)),
};
"""
FOREIGN_REQUESTS = """
return performance.getEntriesByType('resource').map(e => e.name)
  .filter(u => !u.startsWith(arguments[0]) && !u.startsWith('data:')
               && !u.startsWith('blob:'));
"""


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} is missing: install Debian's chromium and chromium-driver " \
                   "(make test does)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[dev]' (make test does)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving notebooks/ on 127.0.0.1, with every cell kept in the page."""
    if reason := _missing():
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("lab")
    settings = home / "settings" / "@jupyterlab"
    for extension, name, values in [
            # all cells stay in the page (no windowing), so sliders and outputs can be found
            ("notebook-extension", "tracker", {"windowingMode": "none"}),
            # a classroom may be offline: JupyterLab does not ask to fetch its news
            ("apputils-extension", "notification", {"fetchNews": "false"})]:
        (settings / extension).mkdir(parents=True)
        (settings / extension / f"{name}.jupyterlab-settings").write_text(json.dumps(values))
    served = home / "notebooks"            # a copy: the browser's runs never touch the repo
    served.mkdir()
    for path in NOTEBOOKS:
        shutil.copy(path, served / path.name)
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    for name in ("KVMLAB_URI", "MPLBACKEND"):       # the test driver; inline plots
        env.pop(name, None)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", f"--ServerApp.token={token}", f"--ServerApp.root_dir={served}",
           "--LabApp.expose_app_in_browser=True",
           f"--LabApp.user_settings_dir={home / 'settings'}",
           f"--LabApp.workspaces_dir={home / 'workspaces'}", "--allow-root"]
    log = open(home / "lab.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n"
                                + (home / "lab.log").read_text()[-2000:])
                time.sleep(0.5)
        yield base, token
    finally:
        stop_group(server, timeout_s=20)
        log.close()


@pytest.fixture(scope="module")
def browser(lab):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")       # never fetch a driver or a browser
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--no-first-run", "--disable-extensions",
                # nothing but the local server can even be resolved
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}; last state "
                         f"{driver.execute_script(NOTEBOOK_STATE)}")


def _open_and_run(driver, base: str, token: str, name: str) -> dict:
    driver.get(f"{base}/lab/tree/{name}?reset&token={token}")
    _wait(driver, lambda: (s := driver.execute_script(NOTEBOOK_STATE)) and s["path"] == name
          and s["kernel"] == "idle", 120, f"{name} to open with an idle kernel")
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    time.sleep(2)
    return _wait(driver, lambda: (s := driver.execute_script(NOTEBOOK_STATE))
                 and s["kernel"] == "idle" and s["pending"] == 0 and s["running"] == 0 and s,
                 RUN_TIMEOUT_S, f"every cell of {name} to run")


FIGURES = """
return Array.from(document.querySelectorAll('.jp-Cell .jp-OutputArea-output img'))
  .filter(img => img.getBoundingClientRect().width > 0);
"""
LOADED = "return arguments[0].complete && arguments[0].naturalWidth > 0;"
EXPLORER_BOX = """
let box = arguments[0].parentElement;
while (box && !box.classList.contains('jp-OutputArea-output')) {
  if (box.classList.contains('widget-box') && box.querySelector(
        '.widget-slider, .widget-dropdown, button.jupyter-button')) return box;
  box = box.parentElement;
}
return null;
"""
"""The smallest box of widgets around an image that holds its controls."""
INK_FRACTION = 0.005
"""A figure inks (differs from its background in) at least this fraction of its pixels."""


def ink(png: bytes) -> float:
    """The fraction of a screenshot's pixels that differ from its top-left pixel."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return float((np.abs(pixels - pixels[0, 0]).sum(axis=-1) > 24).mean())


def _shot(driver, element, path: Path) -> float:
    """Screenshot ``element`` alone into ``path``; how much of it is inked."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    _wait(driver, lambda: driver.execute_script(LOADED, element), 30, f"{path.name} to load")
    png = element.screenshot_as_png
    path.write_bytes(png)
    return ink(png)


def _figures(driver, name: str) -> int:
    """Screenshot every figure of the page; each must show something. How many there are."""
    stem = Path(name).stem
    for old in SHOTS.glob(f"{stem}-*.png"):
        old.unlink()
    figures = driver.execute_script(FIGURES)
    for k, figure in enumerate(figures, 1):
        path = SHOTS / f"{stem}-{k}.png"
        assert _shot(driver, figure, path) >= INK_FRACTION, f"{path.name} is blank"
    return len(figures)


def _source(driver, img) -> str:
    return driver.execute_script("return arguments[0].src;", img)


def _at_the_top(driver, control) -> bool:
    """Whether ``control`` is a slider's handle at its largest value."""
    now, top = driver.execute_script("return [arguments[0].getAttribute('aria-valuenow'), "
                                     "arguments[0].getAttribute('aria-valuemax')];", control)
    return now is not None and top is not None and float(now) >= float(top)


def _change(driver, control, left: bool) -> None:
    """Move a slider one step right (``left``: left), pick a menu's next option, or press
    a button."""
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    if control.tag_name == "button":
        control.click()
    elif control.tag_name == "select":
        menu = Select(control)
        now = [o.get_attribute("value") for o in menu.options].index(
            menu.first_selected_option.get_attribute("value"))
        menu.select_by_index((now + 1) % len(menu.options))
    else:
        driver.execute_script("arguments[0].focus()", control)
        control.send_keys(Keys.ARROW_LEFT if left else Keys.ARROW_RIGHT)


def _explorers(driver, name: str, changes: int = 4) -> int:
    """For every explorer (a figure drawn by a widget): change its controls at least
    ``changes`` times in a row (its sliders and menus in turn, at most five changes, then
    its first button), without waiting for the kernel; the figure must never be blank,
    and once the kernel has answered it must be another picture. How many there are."""
    from selenium.webdriver.common.by import By

    stem = Path(name).stem
    images = driver.find_elements(By.CSS_SELECTOR, ".jp-Cell .jp-OutputArea-output "
                                                   "img.widget-image")
    for k, img in enumerate(images, 1):
        box = driver.execute_script(EXPLORER_BOX, img)
        assert box is not None, f"explorer {k} of {name} has no controls around it"
        assert not box.find_elements(By.CSS_SELECTOR, ".widget-output"), (
            f"explorer {k} of {name} shows an Output area")
        moving = (box.find_elements(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
                  + box.find_elements(By.CSS_SELECTOR, ".widget-dropdown select"))
        buttons = box.find_elements(By.CSS_SELECTOR, "button.jupyter-button")[:1]
        assert moving or buttons, f"explorer {k} of {name} has no slider, menu or button"
        row = [moving[c % len(moving)] for c in range(min(max(len(moving), changes), 5))
               ] if moving else []
        row += buttons * max(1, changes - len(row)) if buttons else []
        first = _source(driver, img)
        before = SHOTS / f"{stem}-explorer-{k}-0.png"
        assert _shot(driver, img, before) >= INK_FRACTION, f"{before.name} is blank"
        left = {c.id: _at_the_top(driver, c) for c in moving}      # away from the start
        for c, control in enumerate(row):
            _change(driver, control, left.get(control.id, False))
            time.sleep(0.2)
            path = SHOTS / f"{stem}-explorer-{k}-{c + 1}.png"
            assert _shot(driver, img, path) >= INK_FRACTION, f"{path.name} is blank"
        _wait(driver, lambda img=img, first=first: _source(driver, img) != first
              and driver.execute_script(NOTEBOOK_STATE)["kernel"] == "idle", 120,
              f"explorer {k} of {name} to draw its changes")
        time.sleep(0.5)
        path = SHOTS / f"{stem}-explorer-{k}-done.png"
        assert _shot(driver, img, path) >= INK_FRACTION, f"{path.name} is blank"
        assert path.read_bytes() != before.read_bytes(), (
            f"explorer {k} of {name} shows the same picture after its changes")
    return len(images)


def _output_of(driver, element) -> str:
    return driver.execute_script(
        "const cell = arguments[0].closest('.jp-Cell');"
        "return cell.querySelector('.jp-Cell-outputArea').innerHTML;", element)


def _interact(driver, name: str) -> str | None:
    """Move the first slider (or press the first widget button); return what changed."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    handles = driver.find_elements(By.CSS_SELECTOR, ".jp-Cell .widget-slider .noUi-handle")
    buttons = driver.find_elements(By.CSS_SELECTOR, ".jp-Cell button.jupyter-button")
    if not handles and not buttons:
        return None
    target = handles[0] if handles else buttons[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", target)
    time.sleep(1)
    before = _output_of(driver, target)
    driver.save_screenshot(str(SHOTS / f"{Path(name).stem}-before.png"))
    if handles:
        target.click()
        for _ in range(3):
            target.send_keys(Keys.ARROW_RIGHT)
            time.sleep(0.3)
        what = "slider"
    else:
        target.click()
        what = f"button {target.text!r}"
    _wait(driver, lambda: _output_of(driver, target) != before
          and driver.execute_script(NOTEBOOK_STATE)["kernel"] == "idle", 120,
          f"the output under the {what} of {name} to change")
    time.sleep(1)
    driver.save_screenshot(str(SHOTS / f"{Path(name).stem}-after.png"))
    return what


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_and_responds_in_a_real_browser(path, lab, browser):
    base, token = lab
    state = _open_and_run(browser, base, token, path.name)
    browser.save_screenshot(str(SHOTS / f"{path.stem}-top.png"))
    assert state["errors"] == [], f"{path.name}: cells ended in errors: {state['errors']}"
    page = browser.execute_script("return document.body.innerText")
    assert "Error displaying widget" not in page
    assert "Model not found" not in page
    interacted = _interact(browser, path.name)
    if path.stem not in ("00-start-here",):
        assert interacted, f"{path.name} has no slider or button to try"
        assert "Error displaying widget" not in browser.execute_script(
            "return document.body.innerText")
    figures = _figures(browser, path.name)
    explorers = _explorers(browser, path.name)
    if path.stem in EXPLORERS:
        assert explorers >= EXPLORERS[path.stem], f"{path.name} shows {explorers} explorers"
    if path.stem not in ("00-start-here",):
        assert figures > explorers, f"{path.name} shows only {figures} figures"
    foreign = browser.execute_script(FOREIGN_REQUESTS, base)
    assert foreign == [], f"{path.name} fetched from elsewhere: {foreign[:5]}"
    assert browser.execute_script(NOTEBOOK_STATE)["errors"] == []
    browser.execute_script(
        "return window.jupyterapp.commands.execute('kernelmenu:shutdown')")


def test_screenshots_are_pictures():
    if reason := _missing():
        pytest.skip(reason)
    shots = sorted(SHOTS.glob("*.png"))
    if not shots:
        pytest.skip("run with the browser tests above to make screenshots")
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in shots)
    pages = [p for p in shots if p.stem.endswith(("-top", "-before", "-after"))]
    assert all(p.stat().st_size > 10_000 for p in pages)           # a whole page
    figures = [p for p in shots if p not in pages]
    assert all(ink(p.read_bytes()) >= INK_FRACTION for p in figures), [
        p.name for p in figures if ink(p.read_bytes()) < INK_FRACTION]
