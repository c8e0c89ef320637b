"""One route for every call: .view or not, GET or form POST, and no request makes a 5xx."""

import pytest

from musicsearch.subsonic.router import HANDLERS


def test_form_post_and_view_suffix(music, password):
    form = {"u": "alice", "p": password, "f": "json", "query": "a 600 Hz tone", "songCount": "1"}
    body = music.client.post("/rest/search3.view", data=form).json()["subsonic-response"]
    assert body["status"] == "ok" and len(body["searchResult3"]["song"]) == 1


def test_unknown_methods_and_formats(rest):
    assert rest("scrobble").json()["subsonic-response"]["error"]["code"] == 0
    assert rest("ping", f="xml").text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert rest("ping", f="jsonp").headers["content-type"].startswith("text/xml")  # not offered: XML


def test_huge_bodies_and_control_characters_are_4xx(music, password):
    big = "x" * (70 * 1024)
    r = music.client.post(
        "/rest/ping",
        content=f"u=alice&p={password}&q={big}",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413
    assert music.client.get("/rest/ping", params={"u": "alice\x00", "p": password}).status_code == 400


@pytest.mark.parametrize("method", sorted(HANDLERS))
def test_garbage_never_makes_a_5xx(music, password, method, no_error_logged):
    """Every call with missing, empty, huge, negative, traversal and non-numeric values."""
    values = ["", "-1", "0", "99999999999999999999", "../../etc/passwd", "abc", "%00", "\u00e9" * 3, "1e9"]
    names = [
        "id",
        "count",
        "size",
        "offset",
        "type",
        "query",
        "songCount",
        "songId",
        "playlistId",
        "name",
        "startSongId",
        "endSongId",
        "genre",
        "fromYear",
        "songIndexToRemove",
        "public",
        "songIdToAdd",
    ]
    for value in values:
        r = music.client.get(
            f"/rest/{method}", params={"u": "alice", "p": password, "f": "json", **dict.fromkeys(names, value)}
        )
        assert r.status_code < 500, (method, value, r.text[:200])
        if r.headers["content-type"].startswith("application/json"):
            body = r.json()["subsonic-response"]
            assert body["status"] in ("ok", "failed") and "internal error" not in str(body), (method, value, body)
            assert "/etc/passwd" not in str(body.get("song", "")), body
