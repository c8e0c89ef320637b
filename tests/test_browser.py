"""A real browser against a live server: Debian's Chromium (headless) driven by Playwright.
Skips, saying why, where either is missing (`.ci/run` installs both)."""

import os
import shutil
import socket
import threading
import time

import pytest
from conftest import tone, write_audio

from musicsearch import MusicIndex, Settings
from musicsearch.server import create_app

CHROMIUM = os.environ.get("MUSICSEARCH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if not os.path.exists(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model):
    import uvicorn

    tmp = tmp_path_factory.mktemp("browser")
    lib = tmp / "lib"
    write_audio(lib / "low.wav", tone(150, 25))
    write_audio(lib / "mid.flac", tone(600, 12))
    idx = MusicIndex(tmp / "idx", settings=Settings(model=str(tiny_model), model_check=False))
    idx.index(lib)
    idx.warm()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(idx), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started
    yield f"http://127.0.0.1:{port}", tmp
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def test_search_listen_and_range(server, browser):
    url, tmp = server
    page = browser.new_page()
    page.goto(url + "/")
    page.wait_for_selector("text=2 tracks indexed")
    page.keyboard.type("slow sad piano")  # the search box has the focus
    page.keyboard.press("Enter")
    page.wait_for_selector(".hit")
    assert page.locator(".hit").count() == 2
    src = page.locator(".hit audio").first.get_attribute("src")
    assert src.startswith("/api/tracks/") and "#t=" in src
    status, content_range = page.evaluate(
        """async (src) => { const r = await fetch(src.split('#')[0], {headers: {Range: 'bytes=0-99'}});
                            return [r.status, r.headers.get('content-range')]; }""",
        src,
    )
    assert status == 206 and content_range.startswith("bytes 0-99/")
    page.screenshot(path=str(tmp / "search.png"))
    page.locator(".hit button", has_text="More like this").first.click()
    page.wait_for_selector("text=/Tracks like .*: 1/")
    assert page.locator(".hit").count() == 1


def test_phone_sized_window_and_empty_results(server, browser):
    url, _ = server
    page = browser.new_page(viewport={"width": 375, "height": 740})
    page.goto(url + "/")
    page.wait_for_selector("text=2 tracks indexed")
    page.fill("#q", "anything")
    page.click("summary")
    page.fill("input[name=artist]", "nobody at all")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Nothing matches")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_classify_panel(server, browser, tmp_path):
    url, _ = server
    clip = write_audio(tmp_path / "clip.wav", tone(440, 3))
    page = browser.new_page()
    page.goto(url + "/")
    page.set_input_files("#classify-form input[type=file]", str(clip))
    page.fill("#classify-form input[name=labels]", "rock, jazz, classical")
    page.click("#classify-form button")
    page.wait_for_selector("text=/Top label: /")
    assert page.locator("#scores li").count() == 3
    assert page.locator("#scores .bar").count() == 3


def test_docs_render_with_no_network_beyond_the_server(server, browser):
    """Swagger UI's files come from the package: /docs renders its operations list even with
    every request to anywhere but the server aborted, and it never tries to reach outside."""
    url, tmp = server
    outside: list[str] = []

    def only_the_server(route):
        if route.request.url.startswith(url + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context = browser.new_context()
    context.route("**/*", only_the_server)
    page = context.new_page()
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto(url + "/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    page.wait_for_load_state("networkidle")
    paths = page.locator(".opblock .opblock-summary-path").all_inner_texts()
    assert page.locator(".opblock").count() == len(paths) >= 6
    assert {"/api/search", "/api/tracks/{track_id}", "/api/similar", "/api/classify", "/api/info"} <= {
        p.replace("\u200b", "") for p in paths
    }
    assert page.locator(".swagger-ui .info .title").inner_text().startswith("musicsearch")
    shot = tmp / "docs.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert outside == [] and failed == []
    context.close()
