"""The web page's rough edges of a new user's first hour (issue 22 items 1-8, issue 20 item 2), in
Debian's headless Chromium against the real server: the token kept in the tab and sent as a header,
"more like this" showing the chosen image, label chips of the current query, back after a chip,
a server still starting, uploads that cannot be read or are already stored, the "weaker results"
divider and the end of the results. Screenshots go where tests/e2e/test_web.py writes them."""

from __future__ import annotations

import base64
import io
import json
import urllib.request

import pytest
from PIL import Image

from tests.e2e import test_web
from tests.e2e.conftest import http_base, start_server, stop
from tests.e2e.test_web import SHOTS, loaded_images, wait_for

pytestmark = pytest.mark.slow

# the browser and page of test_web.py's tests (one Chromium per module)
browser = test_web.browser
page = test_web.page

By = pytest.importorskip("selenium.webdriver.common.by").By
Keys = pytest.importorskip("selenium.webdriver.common.keys").Keys

# A wrapper of the page's fetch, installed before the page's script runs (Chromium DevTools), for
# what this test server cannot be made to do on cue: answer 503 while "starting", or count matches
# before the store lane's `matchCount` is served. It changes answers, never requests.
FETCH_WRAPPER = """
(() => {
  const real = window.fetch.bind(window);
  window.__calls = [];
  window.fetch = async (url, init) => {
    window.__calls.push({url: String(url), headers: (init && init.headers) || {}});
    const rule = window.__rule || %s;
    if (rule.unavailable > 0 && String(url).includes("query:searchText")) {
      rule.unavailable -= 1;
      window.__rule = rule;
      return new Response(JSON.stringify({code: 14, message: "starting; retry shortly"}),
                          {status: 503, headers: {"Content-Type": "application/json"}});
    }
    const response = await real(url, init);
    if (rule.matchCount == null || !String(url).includes("query:searchText")) return response;
    const body = await response.json();
    // results are sorted by score: the matches are on the first page, none on later ones
    const offset = (JSON.parse((init && init.body) || "{}").offset) || 0;
    if (body.matchCount === undefined) body.matchCount = offset === 0 ? rule.matchCount : 0;
    return new Response(JSON.stringify(body), {status: response.status,
                                               headers: {"Content-Type": "application/json"}});
  };
})();
"""


def _with_wrapper(browser, rule: dict):
    return browser.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": FETCH_WRAPPER % json.dumps(rule)}
    )["identifier"]


def _without_wrapper(browser, identifier: str) -> None:
    browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": identifier})


def _post(url: str, body, token: str = "") -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers)
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=120) as r:
        return json.loads(r.read())


def _scrolled_to_end(driver) -> list:
    """Scrolls to the bottom (more pages load) and returns the end marker once it is there."""
    driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    return driver.find_elements(By.ID, "end")


def _cards(driver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#results .card")


def test_the_detail_view_never_blows_the_thumbnail_up(browser, page):
    browser.get(page + "?q=cat")
    wait_for(browser, lambda d: loaded_images(d, "#results .card img") >= 1, "result images")
    _cards(browser)[0].click()
    wait_for(browser, lambda d: loaded_images(d, "#detail-img") == 1, "the detail image")
    natural, shown = browser.execute_script(
        "const i = document.getElementById('detail-img');"
        " return [i.naturalWidth, i.getBoundingClientRect().width]"
    )
    browser.save_screenshot(str(SHOTS / "10-detail-sharp.png"))
    assert 0 < shown <= natural + 0.5, (natural, shown)


def test_more_like_this_clears_the_words_and_shows_the_chosen_image(browser, page):
    browser.get(page + "?q=cat")
    wait_for(browser, lambda d: loaded_images(d, "#results .card img") >= 3, "result images")
    first = _cards(browser)[0]
    chosen = first.get_attribute("data-id")
    first.click()
    wait_for(browser, lambda d: d.find_element(By.ID, "detail").is_displayed(), "the detail view")
    browser.find_element(By.ID, "detail-more").click()
    wait_for(browser, lambda d: loaded_images(d, "#results .card img") >= 3, "its neighbours")
    wait_for(browser, lambda d: loaded_images(d, "#query-preview") == 1, "the chosen image")
    browser.save_screenshot(str(SHOTS / "11-more-like-this.png"))
    assert f"similar={chosen}" in browser.current_url
    assert browser.find_element(By.ID, "q").get_attribute("value") == ""
    assert browser.find_element(By.ID, "query-image").is_displayed()
    assert browser.find_element(By.ID, "query-title").text == "Images like this one"
    assert not browser.find_element(By.ID, "add-upload").is_displayed()


def test_label_chips_count_the_query_and_an_active_filter_always_shows(browser, page, web_server):
    # a label no result of "dog" carries, given in the URL: its chip is there, pressed, to clear
    browser.get(page + "?q=dog&label=no-such-label")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#facets .chip"), "the filter's chip")
    chip = browser.find_element(By.CSS_SELECTOR, "#facets .chip[aria-pressed=true]")
    assert chip.text.startswith("no-such-label")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#results .empty"), "no results")
    chip.click()
    wait_for(browser, lambda d: len(_cards(d)) >= 3, "the unfiltered results")
    assert "label=" not in browser.current_url
    # every photo of this server has its own label: no chip of count 1 (was 12 chips of "1")
    counts = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#facets .chip .n")]
    assert all(int(n) >= 2 for n in counts), counts


def test_back_after_a_label_chip_lands_on_the_unfiltered_results(browser, page, web_server):
    base = http_base(web_server)
    # two of a query's matches labelled alike, beside a third match that is not: a chip shows only
    # when it narrows the matches (a label every match has filters nothing)
    query, answer = next(
        (text, answer)
        for text in ("animal", "dog", "cat", "fish", "coffee")
        if (answer := _post(base + "/v1/query:searchText", {"text": text, "k": 10}))
        and answer.get("matchCount", len(answer["results"])) >= 3
    )
    answer["results"] = answer["results"][:2]
    ids = [h["id"] for h in answer["results"]]
    _post(base + "/v1/indexer:updateImages", {"ids": ids, "label": "doggo"})
    try:
        browser.get(page + f"?q={query}")
        wait_for(
            browser,
            lambda d: [c for c in d.find_elements(By.CSS_SELECTOR, "#facets .chip") if "doggo" in c.text],
            "the doggo chip",
        )
        [c for c in browser.find_elements(By.CSS_SELECTOR, "#facets .chip") if "doggo" in c.text][0].click()
        wait_for(browser, lambda d: "label=doggo" in d.current_url and len(_cards(d)) == 2, "the filter")
        browser.save_screenshot(str(SHOTS / "12-label-chip.png"))
        browser.back()
        wait_for(browser, lambda d: "label=" not in d.current_url and len(_cards(d)) > 2, "back: unfiltered")
        assert browser.current_url.endswith(f"?q={query}")
    finally:
        for image_id, name in zip(ids, [h["label"] for h in answer["results"]], strict=True):
            _post(base + "/v1/indexer:updateImages", {"ids": [image_id], "label": name})


def test_the_page_tries_again_while_the_server_starts(browser, page):
    marker = _with_wrapper(browser, {"unavailable": 2})
    try:
        browser.get(page + "?q=coffee")
        wait_for(browser, lambda d: d.find_element(By.ID, "starting").is_displayed(), "the starting note")
        browser.save_screenshot(str(SHOTS / "13-starting.png"))
        wait_for(browser, lambda d: loaded_images(d, "#results .card img") >= 3, "results after retrying")
        assert not browser.find_element(By.ID, "starting").is_displayed()
    finally:
        _without_wrapper(browser, marker)


def test_the_end_of_the_results_is_marked(browser, page):
    browser.get(page + "?q=coffee")
    wait_for(browser, _scrolled_to_end, "the end marker", timeout=60)
    assert browser.find_element(By.ID, "end").text.lower() == "end of results"
    assert browser.execute_script("return document.querySelector('#results > :last-child').id") == "end"


def test_weaker_results_come_after_a_divider(browser, page):
    """The server's matchCount puts a divider after that many results; a server that sends none
    has every result a match (no divider)."""
    browser.get(page + "?q=coffee")
    wait_for(browser, _scrolled_to_end, "the results", timeout=60)
    answer = json.loads(
        browser.execute_script(
            "const r = await fetch('/v1/query:searchText', {method: 'POST', headers: {'Content-Type':"
            " 'application/json'}, body: JSON.stringify({text: 'coffee', k: 50})}); return await r.text()"
        )
    )
    served = answer.get("matchCount")
    if served is None:
        assert not browser.find_elements(By.ID, "weaker")
        assert "images for coffee" in browser.find_element(By.ID, "status").text
    marker = _with_wrapper(browser, {"matchCount": 3})  # used only when the server sends none
    try:
        browser.get(page + "?q=coffee")
        wait_for(browser, lambda d: d.find_elements(By.ID, "weaker"), "the divider")
        browser.save_screenshot(str(SHOTS / "14-weaker-results.png"))
        good = 3 if served is None else served
        before = browser.execute_script(
            "return [...document.querySelectorAll('#results > *')].findIndex(e => e.id === 'weaker')"
        )
        assert before == good
        assert browser.find_element(By.ID, "weaker").text.lower() == "weaker results"
        assert browser.find_element(By.ID, "status").text.startswith(f"{good} match")
        assert "weaker result" in browser.find_element(By.ID, "status").text
    finally:
        _without_wrapper(browser, marker)


def test_an_unreadable_upload_is_said_in_words_and_not_offered(browser, page, photos, tmp_path):
    cut = tmp_path / "cut.jpg"
    data = photos["coffee"].read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    browser.get(page)
    wait_for(browser, lambda d: d.find_element(By.ID, "file"), "the upload input")
    browser.find_element(By.ID, "file").send_keys(str(cut))
    wait_for(browser, lambda d: "could not read" in d.find_element(By.ID, "status").text, "the message")
    browser.save_screenshot(str(SHOTS / "15-upload-unreadable.png"))
    text = browser.find_element(By.ID, "status").text
    assert "Error" not in text and "OSError" not in text
    assert not browser.find_element(By.ID, "add-upload").is_displayed()


def test_a_stored_photo_is_not_offered_again_and_a_new_one_is(browser, page, photos, tmp_path):
    browser.get(page)
    wait_for(browser, lambda d: d.find_element(By.ID, "file"), "the upload input")
    browser.find_element(By.ID, "file").send_keys(str(photos["black_cat"]))  # stored by the fixture
    wait_for(browser, lambda d: "Already in the library" in d.find_element(By.ID, "add-status").text, "known")
    assert not browser.find_element(By.ID, "add-upload").is_displayed()
    new = tmp_path / "cat-grey.png"
    buffer = io.BytesIO()
    Image.open(photos["black_cat"]).convert("L").save(buffer, "PNG")
    new.write_bytes(buffer.getvalue())
    browser.find_element(By.ID, "file").send_keys(str(new))
    wait_for(browser, lambda d: d.find_element(By.ID, "add-upload").is_displayed(), "the add button")
    browser.save_screenshot(str(SHOTS / "16-upload-new.png"))
    assert browser.find_element(By.ID, "add-status").text == ""


def test_the_token_is_a_header_kept_in_the_tab_and_a_wrong_one_is_said(browser, tmp_path_factory, photos):
    running = start_server(tmp_path_factory.mktemp("web-token-header"), http_port=0, token="let-me-in")
    try:
        base = http_base(running)
        items = [
            {"image": base64.b64encode(photos[n].read_bytes()).decode(), "label": n}
            for n in ("puppy", "coffee")
        ]
        _post(base + "/v1/indexer:ingest", items, token="let-me-in")
        browser.get(base + "/?q=dog")
        wait_for(browser, lambda d: d.find_element(By.ID, "token-dialog").is_displayed(), "the token dialog")
        dialog_text = browser.find_element(By.ID, "token-dialog").text
        assert "Authorization" not in dialog_text and "Bearer" not in dialog_text
        browser.find_element(By.ID, "token").send_keys("wrong", Keys.ENTER)
        wait_for(
            browser, lambda d: d.find_element(By.ID, "token-error").is_displayed(), "the wrong-token note"
        )
        browser.save_screenshot(str(SHOTS / "17-token-wrong.png"))
        assert "not accepted" in browser.find_element(By.ID, "token-error").text
        assert browser.find_element(By.ID, "token-dialog").is_displayed()
        box = browser.find_element(By.ID, "token")
        box.clear()
        box.send_keys("let-me-in", Keys.ENTER)
        wait_for(browser, lambda d: loaded_images(d, "#results .card img") >= 2, "results with thumbnails")
        # thumbnails came as blobs fetched with the header; no cookie carries the token
        srcs = [i.get_attribute("src") for i in browser.find_elements(By.CSS_SELECTOR, "#results .card img")]
        assert all(s.startswith("blob:") for s in srcs), srcs
        assert not [c for c in browser.get_cookies() if "token" in c["name"]]
        assert browser.execute_script("return sessionStorage.getItem('imgsearch_token')") == "let-me-in"
        assert browser.execute_script("return localStorage.getItem('imgsearch_token')") is None
        # a reload in the same tab keeps it: no dialog again
        browser.refresh()
        wait_for(browser, lambda d: loaded_images(d, "#results .card img") >= 2, "results after a reload")
        assert not browser.find_element(By.ID, "token-dialog").is_displayed()
    finally:
        browser.execute_script("sessionStorage.clear()")
        stop(running.served, running.parts, 1.0)
