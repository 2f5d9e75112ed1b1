"""The page at ``/`` driven in headless Chromium (Debian's ``chromium``, through Playwright for
Python pointed at that executable): upload an image, type a text, draw; the class the page shows
must be the server's answer. Screenshots are saved (``BIGMODEL_SCREENSHOTS=DIR`` keeps copies)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="bigmodel serve needs the extra 'serve' (fastapi missing)")
httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (extra 'serve')")
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="the browser test needs the Python package 'playwright'")
CHROMIUM = os.environ.get("BIGMODEL_CHROMIUM") or shutil.which("chromium") or shutil.which(
    "chromium-browser")
if CHROMIUM is None:
    pytest.skip("the browser test needs Chromium: apt-get install chromium (Debian package "
                "'chromium'), or set BIGMODEL_CHROMIUM", allow_module_level=True)

from bigmodel.serve import BackgroundServer  # noqa: E402
from test_serve import _images, _png, image_run, text_run  # noqa: E402,F401 - fixtures


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


def _shot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("BIGMODEL_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def test_page_classifies_an_upload_a_text_and_a_drawing(browser, image_run, text_run,  # noqa: F811
                                                        tmp_path):
    picture = tmp_path / "item.png"
    picture.write_bytes(_png(_images(1, seed=11)[0]))
    text = "launch the booster into orbit"
    with BackgroundServer([image_run, text_run]) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(600):
            if client.get("/v2/health/ready").status_code == 200:
                break
        expected_image = client.post("/v2/models/fashion/classify", files={
            "file": ("item.png", picture.read_bytes())}).json()["predictions"][0][0]["class"]
        expected_text = client.post("/v2/models/topics/classify",
                                    json={"text": text}).json()["predictions"][0][0]["class"]
        page = browser.new_page(viewport={"width": 900, "height": 900})
        page.set_default_timeout(30_000)
        page.goto(server.url + "/")
        page.wait_for_selector("#model option[value=topics]", state="attached")

        page.select_option("#model", "fashion")
        page.set_input_files("#image-file", str(picture))
        page.click("#image-submit")
        page.wait_for_selector("#top-class")
        assert page.inner_text("#top-class") == expected_image
        assert page.locator("tr.prediction").count() == 5
        page.wait_for_selector("#overlay", state="visible")  # the explanation overlay
        _shot(page, tmp_path, "serve-page-image")

        page.select_option("#model", "topics")
        page.fill("#text", text)
        page.click("#text-submit")
        page.wait_for_function(
            "(expected) => document.getElementById('top-class')?.textContent === expected",
            arg=expected_text)
        assert page.locator("#explanation").is_hidden()
        # the text's explanation: its tokens colored by the server's attributions for that class
        page.wait_for_selector("#text-explanation", state="visible")
        assert page.inner_text("#explanation-class") == expected_text
        explained = client.post("/v2/models/topics/explain", json={"text": text}).json()
        assert explained["target_class"] == expected_text
        spans = page.locator("#tokens .token")
        assert spans.all_inner_texts() == explained["tokens"]
        assert len(explained["tokens"]) == len(text.split())  # one word, one token ('<unk>' too)
        titles = [float(spans.nth(i).get_attribute("title")) for i in range(spans.count())]
        assert titles == pytest.approx(explained["attributions"], rel=1e-2, abs=1e-6)
        peak = max(range(len(titles)), key=lambda i: abs(titles[i]))
        color = spans.nth(peak).evaluate("e => getComputedStyle(e).backgroundColor")
        # the strongest token fully colored: red for the class, blue against it
        assert color == ("rgb(220, 40, 40)" if titles[peak] >= 0 else "rgb(40, 90, 220)")
        _shot(page, tmp_path, "serve-page-text")

        page.fill("#text", "   ")  # an empty text: the server's error is shown
        page.click("#text-submit")
        page.wait_for_selector("#status.error")
        assert "empty" in page.inner_text("#status")

        page.select_option("#model", "fashion")  # draw a stroke, classify the drawing
        page.set_input_files("#image-file", [])
        box = page.locator("#canvas").bounding_box()
        page.mouse.move(box["x"] + 60, box["y"] + 40)
        page.mouse.down()
        page.mouse.move(box["x"] + 160, box["y"] + 190, steps=12)
        page.mouse.up()
        page.click("#image-submit")
        page.wait_for_selector("#top-class")
        names = client.get("/v2/models/fashion").json()["parameters"]["class_names"]
        assert page.inner_text("#top-class") in names
        _shot(page, tmp_path, "serve-page-drawing")
        page.close()
