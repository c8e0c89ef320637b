"""search3 runs the query as `musicsearch query` does."""


def titles(body):
    return [s["title"] for s in body["searchResult3"]["song"]]


def test_a_description_finds_the_songs_that_sound_like_it(ok, music):
    body = ok("search3", query="a 600 Hz tone", songCount="2")
    assert sorted(titles(body)) == ["Night Walk", "Rain Song"]
    expected = [str(h.track.id) for h in music.idx.search("a 600 Hz tone", k=5)]
    assert [s["id"] for s in ok("search3", query="a 600 Hz tone", songCount="5")["searchResult3"]["song"]] == expected
    page = ok("search3", query="a 600 Hz tone", songCount="2", songOffset="2")["searchResult3"]["song"]
    assert [s["id"] for s in page] == [str(h.track.id) for h in music.idx.search("a 600 Hz tone", k=4)][2:]


def test_names_find_artists_albums_and_their_songs(ok, music):
    body = ok("search3", query="bob")["searchResult3"]
    assert [a["name"] for a in body["artist"]] == ["Bob"] and [a["name"] for a in body["album"]] == ["Red"]
    assert {s["artist"] for s in body["song"][:2]} == {"Bob"}  # a whole artist name ranks its tracks first
    assert ok("search3", query="blue ann")["searchResult3"]["album"][0]["name"] == "Blue"


def test_an_empty_query_lists_the_library(ok):
    for query in ("", '""'):
        body = ok("search3", query=query, songCount="500", albumCount="500", artistCount="500")["searchResult3"]
        assert len(body["song"]) == 5 and len(body["album"]) == 3 and len(body["artist"]) == 3
    assert len(ok("search3", query="", songCount="2", songOffset="4")["searchResult3"]["song"]) == 1
    assert ok("search3", query="a 600 Hz tone", songCount="0")["searchResult3"]["song"] == []


def test_bad_searches(failed):
    failed("search3", 0, query="x" * 501)
    failed("search3", 0, query="rain", songCount="999999")
    failed("search3", 0, query="rain", songOffset="-1")
    failed("search3", 0, query="warm::x")  # the parser's own refusal
