"""The review pages in a real headless Chromium against a real server and catalogue.

Confirm a candidate with the keyboard and check the catalogue changed, create a new
individual, undo; merge two individuals on an individual's page and undo it exactly.
The review page's screenshot in docs/review.png is made here.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from conftest import LeopardSet
from live import ROOT, chromium, console_errors, live_server, wait_for
from review_helpers import copy_catalog
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select

SCREENSHOT = ROOT / "docs" / "review.png"


def identify(client: httpx.Client, path: Path, viewpoint: str, **extra: str) -> dict:
    with open(path, "rb") as fh:
        r = client.post("/v1/identify", files={"image": (path.name, fh, "image/jpeg")},
                        data={"viewpoint": viewpoint, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def counter_is(text: str):
    return EC.text_to_be_present_in_element((By.ID, "counter"), text)


@pytest.fixture
def server(enrolled_dir, pipeline, leopard_images: LeopardSet, tmp_path: Path):
    data = copy_catalog(enrolled_dir, pipeline, tmp_path / "data")
    with live_server(data) as srv:
        yield srv


@pytest.mark.browser
def test_review_page_confirm_by_keyboard_new_individual_and_undo(server, leopard_images: LeopardSet):
    client = httpx.Client(base_url=server.url, timeout=300)
    photos = [(leopard_images.righty_left[0], "ST-1", "2024-05-02T21:14:05"),
              (leopard_images.strangers[0], "ST-2", "2024-05-03T02:40:00"),
              (leopard_images.strangers[1], "ST-2", "2024-05-03T02:40:09")]
    for path, station, when in photos:
        identify(client, path, "left", station=station, timestamp=when)
    queue = client.get("/v1/reviews").json()
    assert queue["total"] == 3
    first = queue["items"][0]
    chosen = first["candidates"][0]
    count_before = client.get(f"/v1/individuals/{chosen['individual_id']}").json()["image_count"]
    with chromium() as browser:
        browser.get(server.url + "/review")
        wait_for(browser, lambda b: b.find_element(By.ID, "review").get_attribute("data-ready") == "true")
        assert browser.find_element(By.ID, "counter").text == "3 left"
        assert len(browser.find_elements(By.CSS_SELECTOR, "#candidates .candidate")) == len(first["candidates"][:5])
        # evidence pictures loaded (natural size known) before the screenshot
        wait_for(browser, lambda b: all(b.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
                                    for img in b.find_elements(By.CSS_SELECTOR, "img.evidence, #query-photo")))
        SCREENSHOT.parent.mkdir(exist_ok=True)
        browser.save_screenshot(str(SCREENSHOT))

        # 1: confirm the first candidate; the photo is in the catalogue now
        browser.find_element(By.TAG_NAME, "body").send_keys("1")
        wait_for(browser, counter_is("2 left"))
        decided = client.get(f"/v1/reviews/{first['id']}").json()
        assert decided["status"] == "decided" and decided["individual_id"] == chosen["individual_id"]
        assert client.get(f"/v1/individuals/{chosen['individual_id']}").json()["image_count"] == count_before + 1

        # arrows move, n names a new individual
        second = browser.find_element(By.ID, "review").get_attribute("data-item")
        browser.find_element(By.TAG_NAME, "body").send_keys("\ue014")  # ArrowRight
        wait_for(browser, lambda b: b.find_element(By.ID, "review").get_attribute("data-item") != second)
        browser.find_element(By.TAG_NAME, "body").send_keys("\ue012")  # ArrowLeft
        wait_for(browser, lambda b: b.find_element(By.ID, "review").get_attribute("data-item") == second)
        browser.find_element(By.TAG_NAME, "body").send_keys("n")
        name_box = wait_for(browser, EC.visibility_of_element_located((By.ID, "new-name")))
        name_box.send_keys("Stranger\n")
        wait_for(browser, counter_is("1 left"))
        stranger = client.get("/v1/individuals", params={"name": "Stranger"})
        assert stranger.status_code == 200 and stranger.json()[0]["image_count"] == 1
        assert client.get(f"/v1/reviews/{second}").json()["action"] == "new"

        # u undoes the last decision: the new individual is gone, the item pending again
        browser.find_element(By.TAG_NAME, "body").send_keys("u")
        wait_for(browser, counter_is("2 left"))
        assert client.get("/v1/individuals", params={"name": "Stranger"}).json() == []
        assert client.get(f"/v1/reviews/{second}").json()["status"] == "pending"
        # x marks the photo shown as not identifiable; s skips
        browser.find_element(By.TAG_NAME, "body").send_keys("x")
        wait_for(browser, counter_is("1 left"))
        assert client.get("/v1/reviews", params={"status": "decided"}).json()["total"] == 2
        assert console_errors(browser) == []


@pytest.mark.browser
def test_individual_pages_merge_and_undo(server, leopard_images: LeopardSet):
    client = httpx.Client(base_url=server.url, timeout=300)
    kyzyl, boran = (client.get(f"/v1/individuals/{client.get('/v1/individuals', params={'name': n}).json()[0]['id']}").json()
                    for n in ("Kyzyl", "Boran"))
    with chromium() as browser:
        browser.get(server.url + "/individuals")
        rows = browser.find_elements(By.CSS_SELECTOR, ".individual-row")
        assert len(rows) == 7 and len(browser.find_elements(By.CSS_SELECTOR, "img.thumb")) == 13  # Righty: 1 flank
        browser.find_element(By.LINK_TEXT, "Kyzyl").click()
        wait_for(browser, lambda b: b.find_element(By.ID, "individual").get_attribute("data-ready") == "true")
        assert browser.find_element(By.ID, "individual-name").text == "Kyzyl"
        assert len(browser.find_elements(By.CSS_SELECTOR, ".photo")) == 4
        Select(browser.find_element(By.ID, "merge-into")).select_by_value(str(boran["id"]))
        browser.find_element(By.ID, "merge").click()
        wait_for(browser, EC.url_to_be(f"{server.url}/individuals/{boran['id']}"))
        assert client.get(f"/v1/individuals/{kyzyl['id']}").status_code == 404
        assert client.get(f"/v1/individuals/{boran['id']}").json()["image_count"] == 8
        wait_for(browser, lambda b: b.find_element(By.ID, "individual").get_attribute("data-ready") == "true")
        assert len(browser.find_elements(By.CSS_SELECTOR, ".photo")) == 8
        browser.find_element(By.CSS_SELECTOR, ".undo-button[data-action='merge']").click()
        wait_for(browser, EC.url_to_be(f"{server.url}/individuals/{kyzyl['id']}"))
        assert client.get(f"/v1/individuals/{kyzyl['id']}").json() == kyzyl
        assert client.get(f"/v1/individuals/{boran['id']}").json() == boran
        # rename from the page
        wait_for(browser, lambda b: b.find_element(By.ID, "individual").get_attribute("data-ready") == "true")
        box = browser.find_element(By.ID, "rename-name")
        box.clear()
        box.send_keys("Kyzyl the elder")
        browser.find_element(By.ID, "rename-save").click()
        wait_for(browser, EC.text_to_be_present_in_element((By.ID, "individual-name"), "Kyzyl the elder"))
        assert client.get(f"/v1/individuals/{kyzyl['id']}").json()["name"] == "Kyzyl the elder"
        assert console_errors(browser) == []


@pytest.mark.browser
def test_a_multi_photo_item_shows_every_photo_and_n_enrolls_them_all(
        enrolled_dir, pipeline, leopard_images: LeopardSet, tmp_path: Path):
    """A season's putative new individual is one item: the page shows all its photos, and one
    `n` names a new individual holding every one of them."""
    from conftest import MODEL

    from reid import review
    from reid.identify import Pipeline
    from reid.settings import Settings

    data = copy_catalog(enrolled_dir, pipeline, tmp_path / "data")
    files = leopard_images.strangers[:2]
    local = Pipeline(Settings.from_env(data_dir=data, model_path=MODEL), checkpoint=pipeline.checkpoint)
    try:
        item = review.record_group(local, [
            review.GroupPhoto(name=f"ST01/CAM-A/{f.name}", path=f, viewpoint=side, station="ST01")
            for f, side in zip(files, ("left", "right"), strict=True)], label="season U001")
    finally:
        local.close()
    assert item is not None
    with live_server(data) as srv, chromium() as browser:
        client = httpx.Client(base_url=srv.url, timeout=300)
        browser.get(srv.url + "/review")
        wait_for(browser, lambda b: b.find_element(By.ID, "review").get_attribute("data-ready") == "true")
        strip = browser.find_element(By.ID, "group-photos")
        assert strip.is_displayed()
        thumbs = strip.find_elements(By.CSS_SELECTOR, "img.group-photo")
        assert len(thumbs) == 2
        wait_for(browser, lambda b: all(b.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", t)
                                    for t in thumbs))
        thumbs[1].click()
        assert browser.find_element(By.ID, "query-photo").get_attribute("src").endswith(f"/v1/reviews/{item.id}/photos/1")
        browser.find_element(By.TAG_NAME, "body").send_keys("n")
        wait_for(browser, EC.visibility_of_element_located((By.ID, "new-name"))).send_keys("Newcomer\n")
        wait_for(browser, counter_is("0 left"))
        (made,) = client.get("/v1/individuals", params={"name": "Newcomer"}).json()
        assert made["image_count"] == 2
        assert console_errors(browser) == []
