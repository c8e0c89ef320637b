"""Playlists: a user's own, read back and changed; saved searches as read-only playlists."""

from musicsearch.saved import SavedSearch, SavedSearches


def test_create_read_update_delete(ok, failed, rest, music):
    a, b, c = (str(music.ids[t]) for t in ("Sun", "Moon", "Rain Song"))
    made = ok("createPlaylist", name="Road trip", songId=[a, b])["playlist"]
    assert made["name"] == "Road trip" and made["owner"] == "alice" and [s["id"] for s in made["entry"]] == [a, b]
    pid = made["id"]
    assert pid in [p["id"] for p in ok("getPlaylists")["playlists"]["playlist"]]
    ok("updatePlaylist", playlistId=pid, name="Trip", songIdToAdd=c, songIndexToRemove="0", public="true")
    read = ok("getPlaylist", id=pid)["playlist"]
    assert read["name"] == "Trip" and [s["id"] for s in read["entry"]] == [b, c] and read["public"] is True
    ok("createPlaylist", playlistId=pid, songId=[c])  # replaces the songs
    assert [s["id"] for s in ok("getPlaylist", id=pid)["playlist"]["entry"]] == [c]
    # bob sees the public playlist but may not change it
    assert (
        rest("getPlaylist", user="bob", password="bobs password", id=pid).json()["subsonic-response"]["status"] == "ok"
    )
    refused = rest("deletePlaylist", user="bob", password="bobs password", id=pid).json()["subsonic-response"]
    assert refused["error"]["code"] == 50
    ok("deletePlaylist", id=pid)
    failed("getPlaylist", 70, id=pid)


def test_refusals(failed, music):
    failed("createPlaylist", 10)
    failed("createPlaylist", 70, name="x", songId="999999")
    failed("createPlaylist", 0, name="x" * 201)
    failed("updatePlaylist", 10)
    failed("updatePlaylist", 70, playlistId="pl-404")
    failed("deletePlaylist", 70, id="../../playlists.json")
    failed("getPlaylist", 10)


def test_saved_searches_are_playlists_that_follow_the_index(ok, failed, music, tmp_path):
    SavedSearches(music.idx.path).save(SavedSearch("Six hundred", ("a 600 Hz tone",), str(tmp_path / "x.m3u8"), k=2))
    listed = {p["name"]: p for p in ok("getPlaylists")["playlists"]["playlist"]}
    pid = listed["Six hundred"]["id"]
    assert listed["Six hundred"]["songCount"] == 2
    songs = ok("getPlaylist", id=pid)["playlist"]["entry"]
    assert sorted(s["title"] for s in songs) == ["Night Walk", "Rain Song"]
    assert "musicsearch playlist" in failed("deletePlaylist", 50, id=pid)
    failed("updatePlaylist", 50, playlistId=pid, name="mine now")
    SavedSearches(music.idx.path).remove("Six hundred")
    failed("getPlaylist", 70, id=pid)
