"""Clients nobody here wrote, through their own code paths, against a real ``musicsearch serve``
process (the CLI with the fake embedder standing in for CLAP, as tests/test_watch.py runs it):
knuckles (PyPI) and subsonic-api (npm, run by Node; skipped, saying why, where Node or the
package is missing: .ci/run installs it into .ci/node/)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from musicsearch import MusicIndex, Settings
from musicsearch.subsonic import UserStore

REPO = Path(__file__).resolve().parents[2]
NODE_PACKAGE = REPO / ".ci" / "node" / "node_modules" / "subsonic-api" / "lib" / "index.js"
CLI = """\
import sys

sys.path.insert(0, {tests!r})
import musicsearch.api
from fakes import FakeEmbedder

musicsearch.context.ClapEmbedder = lambda *a, **k: FakeEmbedder()

if __name__ == "__main__":
    from musicsearch.cli import main

    sys.argv = ["musicsearch", *sys.argv[1:]]
    main()
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, library_builder, write_audio, tone, tagged, fake_embedder_cls, password):
    """A ``musicsearch serve`` process on a free loopback port over the shared test library,
    with the user alice in its own config folder; (base URL, library folder, ids by title)."""
    tmp = tmp_path_factory.mktemp("clients")
    library_builder(tmp / "lib", write_audio, tone, tagged)
    with MusicIndex(tmp / "idx", settings=Settings(workers=1), embedder=fake_embedder_cls()) as idx:
        idx.index(tmp / "lib")
        ids = {t.title: t.id for t in idx.tracks_under(tmp / "lib").values()}
    UserStore(tmp / "config" / "musicsearch" / "users.json").add("alice", password)
    script = tmp / "ms.py"
    script.write_text(CLI.format(tests=str(REPO / "tests")))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**__import__("os").environ, "XDG_CONFIG_HOME": str(tmp / "config")}
    args = [sys.executable, str(script), "serve", "--index", str(tmp / "idx"), "--port", str(port)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/rest/getOpenSubsonicExtensions", timeout=2)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"serve did not start: {proc.stderr.read() if proc.stderr else ''}") from None
                time.sleep(0.2)
        yield url, tmp / "lib", ids
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_knuckles(server, password, tmp_path):
    import knuckles
    import requests

    url, lib, ids = server
    api = knuckles.Subsonic(url, "alice", password, "tests", use_https=False)
    assert api.system.ping().status == "ok"
    artists = {a.name: a for a in api.browsing.get_artists()}
    assert set(artists) == {"Ann", "Bob", "[Unknown Artist]"}
    blue = api.browsing.get_artist(artists["Ann"].id).albums[0]
    album = api.browsing.get_album(blue.id)
    assert [s.title for s in album.songs] == ["Rain Song", "Night Walk"]
    found = api.searching.search("a 600 Hz tone", song_count=2)
    assert sorted(s.title for s in found.songs) == ["Night Walk", "Rain Song"]
    sun = api.browsing.get_song(str(ids["Sun"]))
    data = (lib / "Bob/Red/01.flac").read_bytes()
    stream_url = api.media_retrieval.stream(sun.id)
    assert requests.get(stream_url, timeout=10).content == data
    assert requests.get(stream_url, headers={"Range": "bytes=10-19"}, timeout=10).content == data[10:20]
    cover = api.media_retrieval.get_cover_art(album.id, tmp_path)
    assert cover.read_bytes().startswith(b"\x89PNG")
    assert [s.title for s in api.browsing.get_similar_songs(str(ids["Rain Song"]), 1)] == ["Night Walk"]
    sonic = api.api.json_request("getSonicSimilarTracks", {"id": str(ids["Rain Song"]), "count": 1})
    assert sonic["sonicMatch"][0]["entry"]["title"] == "Night Walk"
    path = api.api.json_request(
        "findSonicPath", {"startSongId": ids["Rain Song"], "endSongId": ids["Moon"], "count": 3}
    )
    assert [m["entry"]["title"] for m in (path["sonicMatch"][0], path["sonicMatch"][-1])] == ["Rain Song", "Moon"]
    made = api.playlists.create_playlist("Knuckles", song_ids=[str(ids["Moon"]), str(ids["Sun"])])
    assert [s.title for s in api.playlists.get_playlist(made.id).songs] == ["Moon", "Sun"]
    with pytest.raises(knuckles.exceptions.ErrorCode40):
        knuckles.Subsonic(url, "alice", "wrong", "tests", use_https=False).system.ping()


NODE_SCRIPT = """
import {{ SubsonicAPI }} from {package!r};
const [url, password, rain, sun, moon] = process.argv.slice(2);
const api = new SubsonicAPI({{ url, auth: {{ username: "alice", password }} }});
const out = {{}};
out.ping = (await api.ping()).status;
const ar = await api.getArtists();
if (!ar.artists) {{ console.error(JSON.stringify(ar)); }}
out.artists = ar.artists.index.flatMap((i) => i.artist.map((a) => a.name));
const albums = (await api.getAlbumList2({{ type: "alphabeticalByName" }})).albumList2.album;
const blue = albums.find((a) => a.name === "Blue");
out.album = (await api.getAlbum({{ id: blue.id }})).album.song.map((s) => s.title);
out.search = (await api.search3({{ query: "a 600 Hz tone", songCount: 2 }})).searchResult3.song.map((s) => s.title);
const stream = await api.stream({{ id: sun }});
out.stream = Buffer.from(await stream.arrayBuffer()).toString("base64");
const cover = await api.getCoverArt({{ id: blue.id }});
out.cover = cover.headers.get("content-type");
out.similar = (await api.getSimilarSongs2({{ id: rain, count: 1 }})).similarSongs2.song.map((s) => s.title);
out.sonic = (await api.customJSON("getSonicSimilarTracks", {{ id: rain, count: 1 }})).sonicMatch.map((m) => m.entry.title);
out.path = (await api.customJSON("findSonicPath", {{ startSongId: rain, endSongId: moon, count: 3 }})).sonicMatch.map((m) => m.entry.id);
const made = (await api.createPlaylist({{ name: "Node", songId: [moon, sun] }})).playlist;
out.playlist = (await api.getPlaylist({{ id: made.id }})).playlist.entry.map((s) => s.title);
const wrong = new SubsonicAPI({{ url, auth: {{ username: "alice", password: "wrong" }} }});
out.wrong = (await wrong.ping()).error.code;
const post = new SubsonicAPI({{ url, auth: {{ username: "alice", password }}, post: true }});
out.post = (await post.ping()).status;
console.log(JSON.stringify(out));
"""


def test_subsonic_api_from_npm(server, password, tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (the npm client subsonic-api needs it)")
    if not NODE_PACKAGE.is_file():
        pytest.skip("subsonic-api is not installed: npm install --prefix .ci/node subsonic-api (.ci/run does)")
    url, lib, ids = server
    script = tmp_path / "client.mjs"
    script.write_text(NODE_SCRIPT.format(package=NODE_PACKAGE.as_uri()))
    args = [node, str(script), url, password, *(str(ids[t]) for t in ("Rain Song", "Sun", "Moon"))]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["ping"] == "ok" and out["post"] == "ok" and out["wrong"] == 40
    assert sorted(out["artists"]) == ["Ann", "Bob", "[Unknown Artist]"]
    assert out["album"] == ["Rain Song", "Night Walk"] and sorted(out["search"]) == ["Night Walk", "Rain Song"]
    import base64

    assert base64.b64decode(out["stream"]) == (lib / "Bob/Red/01.flac").read_bytes()
    assert out["cover"] == "image/png" and out["similar"] == ["Night Walk"] and out["sonic"] == ["Night Walk"]
    assert out["path"][0] == str(ids["Rain Song"]) and out["path"][-1] == str(ids["Moon"])
    assert out["playlist"] == ["Moon", "Sun"]
