"""The review page and the report in a real headless Chromium (Debian's chromium + chromium-driver, via selenium).

`bash scripts/test.sh` installs both when missing (scripts/setup-browser.sh). Screenshots go to the test's
tmp directory (pytest prints its base with -v; e.g. /tmp/pytest-of-USER/pytest-current/).
"""

import shutil
import tempfile
import time
from pathlib import Path

import pytest
from review_helpers import EXAMPLES, Serving, copy_run, example_run, hostile_run

from kgalign.data.decisions import read_decisions

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="chromium and chromedriver are not installed (bash scripts/setup-browser.sh)"
)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="kgalign-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1280,1400",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)  # never a downloaded driver
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(predicate, timeout=10.0):
    from selenium.common.exceptions import WebDriverException

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if predicate():
                return True
        except WebDriverException:  # the page is being replaced (stale or not yet present elements): look again
            pass
        time.sleep(0.05)
    raise AssertionError("condition not met within the timeout")


def _progress(driver, text):
    """Wait for the page that shows ``text`` as progress to have loaded completely (its key handler included)."""
    _wait(lambda: _text(driver, "#progress") == text and driver.execute_script("return document.readyState") == "complete")


def _text(driver, css):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css).text


def _press(driver, key):
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(key).perform()


def test_review_example_run_by_click_and_key(browser, tmp_path_factory, tmp_path):
    from selenium.webdriver.common.by import By

    run = copy_run(example_run(tmp_path_factory), tmp_path / "run")
    decisions = run / "decisions.tsv"
    with Serving(run, image_dirs=(EXAMPLES / "images",)) as s:
        queue = s.state.data.queue
        total = len(queue)
        assert total >= 4
        browser.get(s.url)
        assert _text(browser, "#progress") == f"0 of {total} decided"
        first_label = _text(browser, "#kg1 .label")
        # thumbnails of the example's local KG1 images are served (and decoded by the browser)
        imgs = browser.find_elements(By.CSS_SELECTOR, "#kg1 .thumbs img")
        if s.state.data.image_sources(queue[0].id1):
            assert imgs and browser.execute_script("return arguments[0].naturalWidth", imgs[0]) > 0
        browser.save_screenshot(str(tmp_path / "review_page.png"))

        browser.find_element(By.ID, "accept").click()  # by click
        _progress(browser, f"1 of {total} decided")
        assert _text(browser, "#kg1 .label") != first_label
        _press(browser, "r")  # by key
        _progress(browser, f"2 of {total} decided")
        browser.find_element(By.ID, "skip").click()
        _progress(browser, f"3 of {total} decided")
        _press(browser, "u")  # undo the skip
        _progress(browser, f"2 of {total} decided")
        assert _text(browser, "#kg1 .label") == s.state.data.label(queue[2].id1)

        got = read_decisions(decisions)
        assert [(d.kg1, d.kg2, d.decision) for d in got] == [
            (queue[0].kg1, queue[0].kg2, "accepted"),
            (queue[1].kg1, queue[1].kg2, "rejected"),
        ]
        browser.refresh()
        assert _text(browser, "#progress") == f"2 of {total} decided"
    # a new server on the same run (the process was restarted): the decisions are still there
    with Serving(run, image_dirs=(EXAMPLES / "images",)) as s:
        browser.get(s.url)
        assert _text(browser, "#progress") == f"2 of {total} decided"
        assert _text(browser, "#kg1 .label") == s.state.data.label(queue[2].id1)
        browser.get(s.url + "&i=0")
        assert _text(browser, "#current") == "accepted"
        browser.save_screenshot(str(tmp_path / "review_page_resumed.png"))
    assert (tmp_path / "review_page.png").stat().st_size > 10_000


def test_hostile_labels_run_no_script(browser, tmp_path):
    from selenium.webdriver.common.by import By

    run = hostile_run(tmp_path)
    with Serving(run) as s:
        browser.get(s.url)
        _wait(lambda: browser.execute_script("return document.readyState") == "complete")
        time.sleep(0.3)  # give any injected onerror handler the chance to fire
        assert browser.execute_script("return typeof window.__pwned") == "undefined"
        assert "<script>window.__pwned = 1</script>" in _text(browser, "#kg1 .label")  # shown as text
        assert browser.find_elements(By.CSS_SELECTOR, "#kg1 .label img") == []
        assert len(browser.find_elements(By.TAG_NAME, "script")) == 1
        browser.save_screenshot(str(tmp_path / "hostile.png"))
        _press(browser, "a")
        _progress(browser, "1 of 3 decided")
        assert browser.execute_script("return typeof window.__pwned") == "undefined"
    assert [d.decision for d in read_decisions(run / "decisions.tsv")] == ["accepted"]


def test_report_renders(browser, tmp_path_factory, tmp_path):
    from selenium.webdriver.common.by import By

    from kgalign.review.report import FIGURES, build_report

    run = copy_run(example_run(tmp_path_factory), tmp_path / "run")
    out = Path(build_report(run, tmp_path / "report")["output"])
    browser.get(out.as_uri())
    imgs = browser.find_elements(By.TAG_NAME, "img")
    assert len(imgs) == len(FIGURES)
    assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i) for i in imgs)
    browser.save_screenshot(str(tmp_path / "report.png"))
    # the whole page, for a look at every figure
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1280, min(height + 100, 8000))
    browser.save_screenshot(str(tmp_path / "report_full.png"))
