"""The page at ``/`` driven in headless Chromium (Debian's ``chromium``, through Playwright for
Python pointed at that executable): upload an image, type a text (and see its explanation), draw,
generate and translate, record audio with Chromium's fake microphone; what the page shows must be
the server's answer. Screenshots are saved (``BIGMODEL_SCREENSHOTS=DIR`` keeps copies)."""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path

import numpy as np
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
from test_serve_generation import chars_run, dates_run  # noqa: E402,F401 - fixtures
from test_serve_speech import speech_run  # noqa: E402,F401 - fixture


@pytest.fixture(scope="module")
def playwright():
    with sync_api.sync_playwright() as running:  # one per thread: the tests share it
        yield running


@pytest.fixture(scope="module")
def browser(playwright):
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


def test_page_generates_and_translates_as_the_api(browser, chars_run, dates_run,  # noqa: F811
                                                  tmp_path):
    options = {"max_tokens": 30, "temperature": 0.8, "top_k": 5, "seed": 7, "num_samples": 2}
    dates = ["5 apr 23", "20230405"]
    with BackgroundServer([chars_run, dates_run]) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        _wait_ready(client)
        expected = client.post("/v2/models/chars/generate",
                               json={"prompt": "The ", **options}).json()["samples"]
        translations = client.post("/v2/models/dates/translate",
                                   json={"texts": dates, "beam": 2}).json()["translations"]
        page = browser.new_page(viewport={"width": 900, "height": 700})
        page.set_default_timeout(30_000)
        page.goto(server.url + "/")
        page.wait_for_selector("#model option[value=dates]", state="attached")
        page.select_option("#model", "chars")
        assert page.is_visible("#generate-form") and page.is_hidden("#text-form")
        page.fill("#prompt", "The ")
        for key, value in options.items():
            page.fill("#" + key.replace("_", "-"), str(value))
        page.click("#generate-submit")
        page.wait_for_selector("#generated .sample")
        assert page.locator("#generated .sample").all_inner_texts() == expected
        _shot(page, tmp_path, "serve-page-generate")

        page.select_option("#model", "dates")
        page.fill("#source", "\n".join(dates))
        page.fill("#beam", "2")
        page.click("#translate-submit")
        page.wait_for_selector("#generated .sample")
        assert page.locator("#generated .sample").all_inner_texts() == translations
        _shot(page, tmp_path, "serve-page-translate")

        page.fill("#source", "5 \u20ac")  # the server's refusal is shown
        page.click("#translate-submit")
        page.wait_for_selector("#status.error")
        assert "not in the source vocabulary" in page.inner_text("#status")
        page.close()


def test_page_records_audio_with_the_microphone(playwright, speech_run, tmp_path):  # noqa: F811
    """Chromium's fake microphone plays a 2400 Hz tone (the speech run's word 'high'); the page
    records the run's clip length, resamples it to 16 kHz and posts it as WAV: the prediction it
    shows is the server's answer for that WAV, whose strongest frequency is still 2400 Hz."""
    from scipy.io import wavfile

    fake = tmp_path / "microphone.wav"
    seconds = np.arange(2 * 48000) / 48000
    wavfile.write(fake, 48000, (0.5 * np.sin(2 * np.pi * 2400.0 * seconds) * 32767).astype(
        np.int16))
    with BackgroundServer([speech_run]) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream",
                  "--use-fake-ui-for-media-stream", f"--use-file-for-fake-audio-capture={fake}"])
        try:
            _wait_ready(client)
            page = chromium.new_page(viewport={"width": 900, "height": 700})
            page.set_default_timeout(30_000)
            page.goto(server.url + "/")
            page.wait_for_selector("#model option[value=words]", state="attached")
            page.click("#record")
            page.wait_for_selector("#recording", state="visible")
            assert "at 16000 Hz" in page.inner_text("#record-note")
            page.click("#audio-submit")
            page.wait_for_selector("#top-class")
            recorded = bytes(page.evaluate(
                "async () => Array.from(new Uint8Array(await recorded.arrayBuffer()))"))
            _shot(page, tmp_path, "serve-page-record")
            shown = [(row.locator("td").nth(0).inner_text(),
                      float(row.locator("td").nth(1).inner_text()))
                     for row in page.locator("tr.prediction").all()]
            # a page without microphone access (plain http on another host) says what to do
            page.evaluate("Object.defineProperty(navigator, 'mediaDevices', {value: undefined})")
            page.click("#record")
            page.wait_for_selector("#status.error")
            assert "upload a WAV file instead" in page.inner_text("#status")
        finally:
            chromium.close()
        rate, samples = wavfile.read(io.BytesIO(recorded))
        assert rate == 16000 and samples.dtype == np.int16 and 0 < len(samples) <= 8000
        spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
        assert np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()] == pytest.approx(
            2400, abs=40)
        answer = client.post("/v2/models/words/classify?top_k=5",
                             files={"file": ("recording.wav", recorded)}).json()
        assert shown == [(p["class"], round(p["probability"], 4))
                         for p in answer["predictions"][0]]


def _wait_ready(client) -> None:
    for _ in range(600):
        if client.get("/v2/health/ready").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(client.get("/v2/models").json())
