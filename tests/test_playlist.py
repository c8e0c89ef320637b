"""Playlists players can open: absolute, relative to the playlist's folder, or with the library
root mapped; saved searches in playlists.json, refreshed on demand and after index runs."""

import json

import pytest
from typer.testing import CliRunner

import musicsearch.api
from musicsearch.cli import app
from musicsearch.errors import MusicSearchError
from musicsearch.hits import Hit, Segment
from musicsearch.playlist import map_path, parse_path_map, write_m3u
from musicsearch.saved import SavedSearch, SavedSearches
from musicsearch.store import Track

runner = CliRunner()


def entries(text: str) -> list[tuple[str, str]]:
    """The (#EXTINF line, path) pairs of an M3U8 text, sorted (tied hits may come in any order)."""
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U" and text.endswith("\n") and len(lines) % 2 == 1
    return sorted(zip(lines[1::2], lines[2::2]))


def hit(rank: int, path: str, title: str, artist: str | None, duration: float) -> Hit:
    track = Track(rank, path, title, artist, None, None, None, None, None, duration, 1)
    return Hit(rank, 0.5, track, Segment(0.0, 10.0, 0.5))


@pytest.fixture
def hits(tmp_path):
    music = tmp_path / "Music"
    return [
        hit(1, str(music / "Jazz" / "a b.flac"), "A  B", "Ann", 61.4),
        hit(2, str(music / "Rock" / "c.ogg"), "C", None, 0),
    ]


def test_absolute_relative_and_mapped(tmp_path, hits):
    music = tmp_path / "Music"
    out = write_m3u(hits, tmp_path / "abs.m3u8")
    assert out.read_text() == (
        f"#EXTM3U\n#EXTINF:61,Ann - A B\n{music}/Jazz/a b.flac\n#EXTINF:-1,C\n{music}/Rock/c.ogg\n"
    )
    (music / "Lists").mkdir(parents=True)
    out = write_m3u(hits, music / "Lists" / "rel.m3u8", relative=True)
    assert out.read_text() == "#EXTM3U\n#EXTINF:61,Ann - A B\n../Jazz/a b.flac\n#EXTINF:-1,C\n../Rock/c.ogg\n"
    out = write_m3u(hits, music / "top.m3u8", relative=True)
    assert out.read_text().splitlines()[2::2] == ["Jazz/a b.flac", "Rock/c.ogg"]
    out = write_m3u(hits, tmp_path / "nav.m3u8", path_map=[f"{music}/=/music/", f"{music}/Rock=/rock"])
    assert out.read_text().splitlines()[2::2] == ["/music/Jazz/a b.flac", "/rock/c.ogg"]  # the longest FROM wins
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_path_map_rules(tmp_path, hits, caplog):
    assert parse_path_map(["/srv/music=/music"]) == [("/srv/music", "/music")]
    assert map_path("/srv/music/x.flac", [("/srv/music", "/music")]) == "/music/x.flac"
    assert map_path("/srv/musical/x.flac", [("/srv/music", "/music")]) is None  # whole components only
    for bad in ("/srv/music", "=/music", "/srv/music="):
        with pytest.raises(MusicSearchError, match="bad --path-map"):
            parse_path_map([bad])
    out = write_m3u(hits, tmp_path / "p.m3u8", path_map=[f"{tmp_path}/Music/Jazz=/jazz"])
    assert out.read_text().splitlines()[2::2] == ["/jazz/a b.flac", f"{tmp_path}/Music/Rock/c.ogg"]
    assert "is under no --path-map folder" in caplog.text
    with pytest.raises(MusicSearchError, match="exclude each other"):
        write_m3u(hits, tmp_path / "p.m3u8", relative=True, path_map=["/a=/b"])
    with pytest.raises(MusicSearchError, match="no folder"):
        write_m3u(hits, tmp_path / "missing" / "p.m3u8")


def test_saved_searches_file(tmp_path):
    store = SavedSearches(tmp_path)
    s = SavedSearch("calm", ("600 Hz", "x::0.5"), str(tmp_path / "c.m3u8"), k=3, filters={"genre": "jazz"})
    store.save(s)
    store.save(SavedSearch("b", ("1 Hz",), str(tmp_path / "b.m3u8"), relative=True))
    assert store.load() == {"calm": s, "b": store.load()["b"]}
    data = json.loads((tmp_path / "playlists.json").read_text())
    assert data["format"] == 1 and [p["name"] for p in data["playlists"]] == ["b", "calm"]
    assert data["playlists"][1]["filters"] == {"genre": "jazz"}
    store.remove("b")
    assert list(store.load()) == ["calm"]
    with pytest.raises(MusicSearchError, match="no saved search named 'b'"):
        store.remove("b")
    with pytest.raises(MusicSearchError, match="bad year"):
        SavedSearch("y", ("a",), "x.m3u8", filters={"year": "soon"})
    (tmp_path / "playlists.json").write_text("{broken")
    with pytest.raises(MusicSearchError, match=r"playlists\.json is damaged"):
        store.load()


@pytest.fixture
def idx(tmp_path, catalog, monkeypatch, fake_embedder_cls):
    monkeypatch.setattr(musicsearch.context, "ClapEmbedder", lambda *a, **k: fake_embedder_cls())
    path = tmp_path / "idx"
    r = runner.invoke(app, ["index", str(catalog), "--index", str(path), "-q"])
    assert r.exit_code == 0, r.output
    return str(path)


def test_cli_m3u_options(idx, catalog, tmp_path):
    m3u = catalog / "high.m3u8"
    args = ["query", "2400 Hz", "--index", idx, "-k", "2", "--genre", "jazz", "--m3u", str(m3u)]
    r = runner.invoke(app, [*args, "--relative"])
    assert r.exit_code == 0, r.output
    assert entries(m3u.read_text()) == [
        ("#EXTINF:12,Ann Arbor - Song 07", "jazz/song07.flac"),
        ("#EXTINF:8,Ann Arbor - Song 03", "jazz/song03.flac"),
    ]
    r = runner.invoke(app, [*args, "--path-map", f"{catalog}=/music"])
    assert r.exit_code == 0, r.output
    assert [p for _, p in entries(m3u.read_text())] == ["/music/jazz/song07.flac", "/music/jazz/song03.flac"]
    r = runner.invoke(
        app, ["similar", "Song 03", "--index", idx, "-k", "1", "--genre", "jazz", "--m3u", str(m3u), "--relative"]
    )
    assert r.exit_code == 0, r.output
    assert m3u.read_text() == "#EXTM3U\n#EXTINF:12,Ann Arbor - Song 07\njazz/song07.flac\n"
    r = runner.invoke(app, [*args, "--path-map", "nothing"])
    assert r.exit_code == 1 and r.stderr.startswith("Error: bad --path-map 'nothing'")


def test_cli_saved_searches(idx, catalog, tmp_path, tagged, write_audio, tone):
    m3u = tmp_path / "lists" / "high.m3u8"
    m3u.parent.mkdir()
    r = runner.invoke(
        app,
        [
            "playlist",
            "save",
            "high",
            "2400 Hz",
            "--index",
            idx,
            "-k",
            "4",
            "--genre",
            "rock",
            "--m3u",
            str(m3u),
            "--path-map",
            f"{catalog}=/music",
        ],
    )
    assert r.exit_code == 0, r.output
    # 4 asked: the three rock songs at 2400 Hz (tied) rank first, then one other rock song
    text = m3u.read_text()
    assert entries("\n".join(text.splitlines()[:7]) + "\n") == [
        ("#EXTINF:16,Ann Arbor - Song 11", "/music/rock/song11.flac"),
        ("#EXTINF:20,Ann Arbor - Song 15", "/music/rock/song15.flac"),
        ("#EXTINF:24,Ann Arbor - Song 19", "/music/rock/song19.flac"),
    ]
    assert text.splitlines()[8].startswith("/music/rock/song") and len(text.splitlines()) == 9
    r = runner.invoke(app, ["playlist", "list", "--index", idx])
    assert r.exit_code == 0 and "high" in r.output and "2400 Hz" in r.output and str(m3u) in r.output
    # a new rock song at 2400 Hz, longer than the others: the next index run refreshes the playlist
    tagged(write_audio(catalog / "rock" / "new.flac", tone(2400, 30)), title="New", artist="Cy", genre="Rock")
    r = runner.invoke(app, ["index", str(catalog), "--index", idx, "-q"])
    assert r.exit_code == 0, r.output
    assert "Refreshed 1 saved search" in r.output
    assert entries(m3u.read_text()) == [
        ("#EXTINF:16,Ann Arbor - Song 11", "/music/rock/song11.flac"),
        ("#EXTINF:20,Ann Arbor - Song 15", "/music/rock/song15.flac"),
        ("#EXTINF:24,Ann Arbor - Song 19", "/music/rock/song19.flac"),
        ("#EXTINF:30,Cy - New", "/music/rock/new.flac"),
    ]
    m3u.unlink()
    r = runner.invoke(app, ["playlist", "refresh", "--index", idx])
    assert r.exit_code == 0 and "high: 4 tracks" in r.output
    assert m3u.read_text().splitlines()[:1] == ["#EXTM3U"]
    r = runner.invoke(app, ["playlist", "refresh", "nope", "--index", idx])
    assert r.exit_code == 1 and "no saved search named 'nope'" in r.stderr
    r = runner.invoke(app, ["playlist", "save", "bad", "x", "--index", idx, "--m3u", str(m3u), "--year", "soon"])
    assert r.exit_code == 1 and r.stderr.startswith("Error: bad year")
    r = runner.invoke(app, ["playlist", "remove", "high", "--index", idx])
    assert r.exit_code == 0
    assert runner.invoke(app, ["playlist", "list", "--index", idx]).output.strip() == "No saved searches."


def test_a_folder_is_no_playlist_file_and_nothing_is_left_behind(tmp_path, hits, monkeypatch):
    folder = tmp_path / "lists"
    folder.mkdir()
    with pytest.raises(MusicSearchError) as err:
        write_m3u(hits, folder)
    assert (
        str(err.value) == f"--m3u: {str(folder)!r} is a folder; give a file name such as {f'{folder}/playlist.m3u8'!r}"
    )

    def refuse(src, dst):
        raise OSError(13, "Permission denied", str(dst))

    monkeypatch.setattr("musicsearch.playlist.os.replace", refuse)
    with pytest.raises(OSError):
        write_m3u(hits, folder / "p.m3u8")
    assert list(tmp_path.rglob("*")) == [folder]  # the temp file went with the failed rename


def test_cli_m3u_at_a_folder_is_one_line_before_the_search(idx, tmp_path, monkeypatch):
    folder = tmp_path / "lists"
    folder.mkdir()
    before = sorted(tmp_path.rglob("*"))
    for args in (
        ["query", "2400 Hz", "--index", idx, "--m3u", str(folder)],
        ["similar", "Song 03", "--index", idx, "--m3u", str(folder)],
        ["path", "Song 01", "Song 03", "--index", idx, "--m3u", str(folder)],
        ["playlist", "save", "high", "2400 Hz", "--index", idx, "--m3u", str(folder)],
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        assert r.stderr.splitlines() == [
            f"Error: --m3u: {str(folder)!r} is a folder; give a file name such as {f'{folder}/playlist.m3u8'!r}"
        ]
        assert r.stdout == ""
    assert sorted(tmp_path.rglob("*")) == before  # no temp file, no saved search
