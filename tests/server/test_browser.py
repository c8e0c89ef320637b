"""A real browser against a live server: Debian's Chromium (headless) driven by Playwright.
Skips, saying why, where either is missing (`.ci/run` installs both)."""

import contextlib
import os
import shutil
import socket
import threading
import time

import pytest

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
def server(tmp_path_factory, tiny_model, write_audio, tone):
    tmp = tmp_path_factory.mktemp("browser")
    lib = tmp / "lib"
    write_audio(lib / "low.wav", tone(150, 25))
    write_audio(lib / "mid.flac", tone(600, 12))
    idx = MusicIndex(tmp / "idx", settings=Settings(model=str(tiny_model), model_check=False))
    idx.index(lib)
    idx.warm()
    with running(idx) as url:
        yield url, tmp


@contextlib.contextmanager
def running(idx):
    import uvicorn

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
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def fake_server(tmp_path_factory, write_audio, tagged, fake_embedder_cls, tone):
    """The fake embedder's known geometry: mix.wav is 10 s at 150 Hz then 10 s at 2400 Hz;
    three tagged 5-s songs (two genres)."""
    import numpy as np

    tmp = tmp_path_factory.mktemp("browser-fake")
    lib = tmp / "lib"
    write_audio(lib / "mix.wav", np.concatenate([tone(150, 10), tone(2400, 10)]))
    for i, (freq, genre) in enumerate([(600, "Jazz"), (1200, "Jazz"), (4800, "Rock")]):
        tagged(write_audio(lib / f"s{i}.flac", tone(freq, 5)), title=f"Song {i}", artist=f"Artist {i}", genre=genre)
    idx = MusicIndex(tmp / "idx", settings=Settings(batch_size=4), embedder=fake_embedder_cls())
    idx.index(lib)
    with running(idx) as url:
        yield url, tmp, lib


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


def test_classify_panel(server, browser, tmp_path, write_audio, tone):
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


def test_window_strip_colours_and_seeks(fake_server, browser):
    url, tmp, _ = fake_server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url + "/")
    page.wait_for_selector("text=4 tracks indexed")
    page.fill("#q", "2400 Hz")
    page.click("button[type=submit]")
    page.wait_for_selector(".hit .strip button.win")
    first = page.locator(".hit").first
    assert "mix" in first.locator("h3").inner_text() and "matched: sound" in first.locator("h3").inner_text()
    wins = first.locator(".strip button.win")
    assert wins.count() == 2  # one per 10-s window
    starts = [float(wins.nth(i).get_attribute("data-start")) for i in range(2)]
    scores = [float(wins.nth(i).get_attribute("data-score")) for i in range(2)]
    assert starts == [0.0, 10.0] and scores[1] > 0.99 > 0.05 > scores[0]
    colours = [wins.nth(i).evaluate("b => getComputedStyle(b).backgroundColor") for i in range(2)]
    assert colours[0] != colours[1]
    assert "best" in (wins.nth(1).get_attribute("class") or "")
    wins.nth(1).click()
    t = page.wait_for_function(
        "() => { const a = document.querySelector('.hit audio'); return a.currentTime >= 9.5 && a.currentTime; }"
    ).json_value()
    assert 9.5 <= t <= 12.0
    page.screenshot(path=str(tmp / "strip-desktop.png"), full_page=True)


def test_library_map_points_colours_and_rectangle_playlist(fake_server, browser):
    url, tmp, lib = fake_server
    for width, height, name in ((1280, 900, "map-desktop.png"), (375, 740, "map-phone.png")):
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(url + "/")
        page.wait_for_selector("#map circle")
        assert page.locator("#map circle").count() == 4  # one per track
        titles = sorted(page.locator("#map circle title").evaluate_all("ts => ts.map(t => t.textContent)"))
        assert titles == ["Artist 0 – Song 0", "Artist 1 – Song 1", "Artist 2 – Song 2", "mix"]
        assert page.locator("#map-colour").input_value() == "genre"
        fills = {
            page.locator("#map circle", has=page.locator("title", has_text=f"Song {i}")).get_attribute("fill")
            for i in range(3)
        }
        assert len(fills) == 2  # Jazz, Rock
        assert page.locator("#map-legend li").count() == 2
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        box = page.locator("#map").bounding_box()
        page.mouse.move(box["x"] + 2, box["y"] + 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
        page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] - 2, steps=5)
        page.mouse.up()
        link = page.locator("#map-playlist")
        assert link.is_visible() and "4 tracks" in link.inner_text()
        assert page.locator("#map circle.selected").count() == 4
        page.screenshot(path=str(tmp / name), full_page=True)
        text = page.evaluate("async (href) => (await fetch(href)).text()", link.get_attribute("href"))
        paths = [line for line in text.splitlines() if not line.startswith("#")]
        assert sorted(paths) == sorted(str(p) for p in lib.iterdir())
        # the points are spread out, not piled in one place
        cx = [float(c) for c in page.locator("#map circle").evaluate_all("cs => cs.map(c => c.getAttribute('cx'))")]
        assert len(set(cx)) > 1
        page.close()


def test_path_between_two_hits(fake_server, browser):
    url, _, _ = fake_server
    page = browser.new_page()
    page.goto(url + "/")
    page.wait_for_selector("text=4 tracks indexed")
    page.fill("#q", "600 Hz")
    page.click("button[type=submit]")
    page.wait_for_selector(".hit")
    start_name = page.locator(".hit h3").first.inner_text()
    page.locator(".hit button.path").first.click()
    page.wait_for_selector("text=/now pick the track to end at/")
    page.locator(".hit button.path").last.click()
    page.wait_for_selector("text=/From .* to .*: \\d+ tracks/")
    assert page.locator(".hit").count() >= 2
    assert (
        page.locator(".hit h3").first.inner_text().split(". ", 1)[1] == start_name.split(". ", 1)[1].split("matched")[0]
    )


def hits_of(page):
    """(title, score) of each hit on the page, once the results of the latest search are in."""
    page.wait_for_selector("#results:not([aria-busy]) .hit")
    titles = page.locator(".hit h3").all_inner_texts()
    metas = page.locator(".hit .meta").all_inner_texts()
    return [(t.split("matched")[0], m.rsplit("score ", 1)[1]) for t, m in zip(titles, metas)]


def search_for(page, query):
    page.fill("#q", query)
    page.click("button[type=submit]")
    page.wait_for_function("q => document.title.startsWith(q)", arg=query)
    try:
        page.wait_for_selector("text=/\\d+ results?/")
    except sync_api.TimeoutError:
        pytest.fail(f"no results for {query!r}: the page says {page.inner_text('#status')!r} at {page.url}")
    return hits_of(page)


def test_a_search_url_reloads_shares_and_goes_back(fake_server, browser):
    url, _, _ = fake_server
    page = browser.new_page()
    page.goto(url + "/")
    page.wait_for_selector("text=4 tracks indexed")
    first = search_for(page, "2400 Hz")
    assert page.url == url + "/?q=2400+Hz" and len(first) == 4
    page.click("summary")
    page.fill("input[name=k]", "2")
    page.fill("input[name=genre]", "jazz")
    second = search_for(page, "600 Hz")
    assert page.url == url + "/?q=600+Hz&genre=jazz&k=2" and len(second) == 2
    assert all("Song" in title for title, _ in second)

    page.reload()  # the same results, the form as it was
    assert hits_of(page) == second
    assert page.input_value("#q") == "600 Hz" and page.input_value("input[name=k]") == "2"
    assert page.input_value("input[name=genre]") == "jazz"

    page.go_back()  # the search before, its results and its form
    page.wait_for_function("() => document.title.startsWith('2400 Hz')")
    assert page.url == url + "/?q=2400+Hz" and hits_of(page) == first
    assert page.input_value("#q") == "2400 Hz" and page.input_value("input[name=k]") == "10"
    assert page.input_value("input[name=genre]") == ""
    page.go_forward()
    page.wait_for_function("() => document.title.startsWith('600 Hz')")
    assert hits_of(page) == second

    page.locator(".hit button", has_text="More like this").first.click()
    page.wait_for_selector("text=/Tracks like .*: 2/")  # k=2 kept
    like_url, like_hits = page.url, hits_of(page)
    assert "/?like=" in like_url and "k=2" in like_url
    page.go_back()
    page.wait_for_function("() => document.title.startsWith('600 Hz')")
    assert hits_of(page) == second

    shared = browser.new_page()  # a shared URL opened afresh runs its search
    shared.goto(like_url)
    shared.wait_for_selector("text=/Tracks like .*: 2/")
    assert hits_of(shared) == like_hits
    shared.goto(url + "/?q=600+Hz&artist=Artist+1&lexical=false")
    assert [t for t, _ in hits_of(shared)] == ["1. Artist 1 – Song 1"]
    assert shared.input_value("input[name=artist]") == "Artist 1"
    assert shared.locator("input[name=lexical]").is_checked() and shared.locator("details").get_attribute("open") == ""
    shared.close()
    page.close()


def test_a_late_answer_to_an_earlier_search_is_dropped(fake_server, browser):
    url, _, _ = fake_server
    page = browser.new_page()
    held = []
    page.route("**/api/search?q=slow*", lambda route: held.append(route))  # the first search's answer waits
    page.goto(url + "/")
    page.wait_for_selector("text=4 tracks indexed")
    page.fill("#q", "slow one")
    page.click("button[type=submit]")
    page.wait_for_function("() => document.title.startsWith('slow one')")
    latest = search_for(page, "2400 Hz")
    with page.expect_response(lambda r: "q=slow" in r.url):
        held[0].continue_()
    page.wait_for_load_state("networkidle")
    page.evaluate("() => new Promise((done) => setTimeout(done, 300))")  # room for a late render
    assert hits_of(page) == latest and page.url.endswith("?q=2400+Hz")
    page.close()


def test_results_of_the_search_before_are_marked_stale_until_the_new_ones_come(fake_server, browser):
    url, _, _ = fake_server
    page = browser.new_page()
    held = []
    page.route("**/api/search?q=slow*", lambda route: held.append(route))
    page.goto(url + "/")
    page.wait_for_selector("text=4 tracks indexed")
    before = search_for(page, "2400 Hz")
    assert page.get_attribute("#results", "aria-busy") is None
    page.fill("#q", "slow one")
    page.click("button[type=submit]")
    page.wait_for_function("() => document.title.startsWith('slow one')")
    assert page.get_attribute("#results", "aria-busy") == "true"  # the old hits, shown dimmed
    assert page.locator(".hit").count() == len(before)
    held[0].continue_()
    page.wait_for_selector("#results:not([aria-busy])")
    assert page.inner_text("#status") != "Searching…"
    page.close()


def test_every_hit_has_a_window_strip_one_can_see(fake_server, server, browser):
    """Search, "More like this" and a path each give every hit its strip, with colours that
    show on the white card even for a track whose windows all score alike (the tiny model's
    tones score below zero everywhere)."""

    def strips(page):
        page.wait_for_function(
            "() => [...document.querySelectorAll('.hit')].every(h => h.querySelector('.strip button.win'))"
        )
        assert page.locator(".hit .strip .error").count() == 0
        colours = page.locator(".hit .strip button.win").evaluate_all(
            "bs => bs.map(b => getComputedStyle(b).backgroundColor.match(/\\d+/g).map(Number))"
        )
        assert all(min(rgb) <= 200 for rgb in colours), colours
        return page.locator(".hit").count()

    for base, query in ((fake_server[0], "600 Hz"), (server[0], "slow sad piano")):
        page = browser.new_page()
        page.goto(f"{base}/?q={query.replace(' ', '+')}")
        assert strips(page) >= 2
        page.locator(".hit button.path").first.click()
        page.locator(".hit button.path").last.click()
        page.wait_for_selector("text=/From .* to .*: \\d+ tracks/")
        assert "from=" in page.url and strips(page) >= 2
        page.locator(".hit button", has_text="More like this").first.click()
        page.wait_for_selector("text=/Tracks like .*: \\d+/")
        assert strips(page) >= 1
        page.close()


@pytest.fixture(scope="module")
def long_names_server(tmp_path_factory, write_audio, tagged, fake_embedder_cls, tone):
    """Fifteen tracks whose names grow by one character each, so that on a phone the end of
    one of them falls wherever a pill after it could break."""
    tmp = tmp_path_factory.mktemp("browser-names")
    lib = tmp / "lib"
    for i in range(15):
        path = write_audio(lib / f"t{i:02d}.flac", tone(300 + 100 * i, 5))
        tagged(path, title=f"Opus {10**i}", artist="The Long Distance Orchestra", genre="Classical")
    idx = MusicIndex(tmp / "idx", settings=Settings(batch_size=4), embedder=fake_embedder_cls())
    idx.index(lib)
    with running(idx) as url:
        yield url


def test_the_matched_pill_stays_on_one_line_on_a_phone(long_names_server, browser):
    page = browser.new_page(viewport={"width": 375, "height": 740})
    page.goto(long_names_server + "/?q=1000+Hz&k=15")
    assert len(hits_of(page)) == 15
    lines = page.locator(".hit .matched").evaluate_all(
        """ps => ps.map(p => { const r = document.createRange(); r.selectNodeContents(p);
                               return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size; })"""
    )
    assert lines == [1] * 15
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.close()


def test_no_page_asks_anything_of_another_machine(fake_server, browser):
    """Every request from the page, /docs and /redoc goes to the server, ReDoc's logo included,
    and nothing the pages need is refused by their Content-Security-Policy."""
    url, _, _ = fake_server
    context = browser.new_context()
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url) else route.abort())
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(url + "/?q=2400+Hz")
    hits_of(page)
    page.locator(".hit button", has_text="More like this").first.click()
    page.wait_for_selector("text=/Tracks like .*: \\d+/")
    page.wait_for_selector("#map circle")
    page.goto(url + "/docs")
    page.wait_for_selector(".opblock")
    page.goto(url + "/redoc")
    page.wait_for_selector("text=API docs by Redocly")
    logo = page.locator("img[alt='redocly logo']")
    assert logo.get_attribute("src") == "/docs-assets/favicon.png"
    page.wait_for_function("() => document.querySelector(\"img[alt='redocly logo']\").naturalWidth > 0")
    assert page.locator("h1", has_text="musicsearch").count() >= 1
    page.wait_for_load_state("networkidle")
    outside = [r for r in requests if not r.startswith(url + "/") and not r.startswith("data:")]
    assert outside == [] and refused == []
    assert any(r.endswith("/redoc") for r in requests) and any("/api/similar" in r for r in requests)
    context.close()
