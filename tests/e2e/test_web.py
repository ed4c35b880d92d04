"""The web page in a real browser: Debian's Chromium, headless, driven by Selenium through Debian's
chromedriver, against the real server. Each step writes a screenshot for people to look at, under
$IMGSEARCH_SCREENSHOTS (default tests/e2e/screenshots, git-ignored)."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.conftest import Running, http_base

pytestmark = pytest.mark.slow

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = Path(os.environ.get("IMGSEARCH_SCREENSHOTS") or Path(__file__).parent / "screenshots")

# Images in a selector that the browser has loaded (a broken image has naturalWidth 0).
LOADED = """return [...document.querySelectorAll(arguments[0])]
    .filter(i => i.complete && i.naturalWidth > 0).length"""


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (scripts/system-packages.sh installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # nothing but this machine
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(web_server: Running) -> str:
    return http_base(web_server) + "/"


def wait_for(driver, condition, what: str, timeout: float = 30):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: condition(d))
    except TimeoutException:
        driver.save_screenshot(str(SHOTS / "failed.png"))
        raise AssertionError(f"timed out waiting for {what}; screenshot: {SHOTS / 'failed.png'}") from None


def loaded_images(driver, selector: str) -> int:
    return driver.execute_script(LOADED, selector)


def labels(driver, selector: str) -> list[str]:
    return [
        e.get_attribute("textContent")
        for e in driver.find_elements(By.CSS_SELECTOR, f"{selector} .card .label")
    ]


def test_type_a_query_and_see_result_images_load(browser, page):
    browser.get(page)
    box = wait_for(browser, lambda d: d.find_element(By.ID, "q"), "the search box")
    browser.save_screenshot(str(SHOTS / "01-start.png"))
    box.send_keys("dog", Keys.ENTER)
    wait_for(browser, lambda d: loaded_images(d, "#results .card img") >= 6, "six result images")
    browser.save_screenshot(str(SHOTS / "02-search-dog.png"))
    assert labels(browser, "#results")[0] in ("puppy", "puppies")
    assert "?q=dog" in browser.current_url  # the URL holds the query (back, reload, links)
    assert "for dog" in browser.find_element(By.ID, "status").text


def test_click_a_result_and_see_its_tags_and_similar_images(browser, page):
    browser.get(page + "?q=cat")
    wait_for(browser, lambda d: loaded_images(d, "#results .card img") >= 3, "result images")
    first = browser.find_elements(By.CSS_SELECTOR, "#results .card")[0]
    label = first.find_element(By.CSS_SELECTOR, ".label").get_attribute("textContent")
    first.click()
    wait_for(browser, lambda d: d.find_element(By.ID, "detail").is_displayed(), "the detail view")
    wait_for(browser, lambda d: loaded_images(d, "#similar .card img") >= 3, "similar images")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#detail-tags .chip"), "tags")
    browser.save_screenshot(str(SHOTS / "03-detail-similar.png"))
    assert browser.find_element(By.ID, "detail-title").text == label
    assert loaded_images(browser, "#detail-img") == 1
    tags = [
        c.get_attribute("textContent") for c in browser.find_elements(By.CSS_SELECTOR, "#detail-tags .chip")
    ]
    assert "cat" in tags
    # "more like this" turns the grid into that image's neighbours
    browser.find_element(By.ID, "detail-more").click()
    wait_for(
        browser, lambda d: "similar=" in d.current_url and loaded_images(d, "#results .card img") >= 3, "grid"
    )


def test_upload_a_photo_and_see_results(browser, page, photos):
    browser.get(page)
    wait_for(browser, lambda d: d.find_element(By.ID, "file"), "the upload input")
    browser.find_element(By.ID, "file").send_keys(str(photos["black_cat"]))
    wait_for(browser, lambda d: loaded_images(d, "#results .card img") >= 3, "results for the photo")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#query-tags .chip"), "the photo's tags")
    browser.save_screenshot(str(SHOTS / "04-upload.png"))
    assert labels(browser, "#results")[0] == "black_cat"  # it is in the library: itself, first
    assert browser.find_element(By.ID, "query-image").is_displayed()


def test_more_results_on_scroll(browser, page, photos):
    # a library larger than one page of 50: mirrored copies of the photos, through the JSON ingest
    items = []
    for name in sorted(photos):
        mirrored = io.BytesIO()
        Image.open(photos[name]).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(
            mirrored, "JPEG"
        )
        items.append({"image": base64.b64encode(mirrored.getvalue()).decode(), "label": f"{name}-mirrored"})
    request = urllib.request.Request(
        page + "v1/indexer:ingest", json.dumps(items).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=120) as r:
        assert r.status == 200
    browser.get(page + "?q=animal")
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .card")) >= 50, "a first page")
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .card")) > 50, "a second page")
    ids = [e.get_attribute("data-id") for e in browser.find_elements(By.CSS_SELECTOR, "#results .card")]
    assert len(ids) == len(set(ids))


def test_a_phone_width_has_no_sideways_scrolling(browser, page):
    browser.set_window_size(390, 844)
    try:
        browser.get(page + "?q=coffee")
        wait_for(browser, lambda d: loaded_images(d, "#results .card img") >= 4, "result images")
        browser.save_screenshot(str(SHOTS / "05-phone.png"))
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        browser.set_window_size(1280, 900)


def test_a_server_with_a_token_asks_for_it_once(browser, tmp_path_factory, photos):
    from tests.e2e.conftest import start_server, stop

    running = start_server(tmp_path_factory.mktemp("web-token"), http_port=0, token="let-me-in")
    try:
        items = [
            {"image": base64.b64encode(photos[n].read_bytes()).decode(), "label": n}
            for n in ("puppy", "coffee")
        ]
        request = urllib.request.Request(
            http_base(running) + "/v1/indexer:ingest",
            json.dumps(items).encode(),
            {"Content-Type": "application/json", "Authorization": "Bearer let-me-in"},
        )
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=120) as r:
            assert r.status == 200
        browser.get(http_base(running) + "/?q=dog")
        wait_for(browser, lambda d: d.find_element(By.ID, "token-dialog").is_displayed(), "the token dialog")
        browser.save_screenshot(str(SHOTS / "06-token.png"))
        browser.find_element(By.ID, "token").send_keys("let-me-in", Keys.ENTER)
        wait_for(browser, lambda d: loaded_images(d, "#results .card img") >= 2, "results with thumbnails")
        assert labels(browser, "#results")[0] == "puppy"
    finally:
        browser.delete_all_cookies()
        browser.execute_script("localStorage.clear()")
        stop(running.served, running.parts, 1.0)
