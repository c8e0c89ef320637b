"""Browsing by tags through the app: folders, artists, albums, songs, lists, genres."""

from xml.etree import ElementTree as ET

from musicsearch.subsonic.catalog import name_id


def test_folders_license_and_ping(ok):
    assert ok("getMusicFolders")["musicFolders"]["musicFolder"] == [{"id": 1, "name": "Music"}]
    assert ok("getLicense")["license"]["valid"] is True
    assert ok("ping.view")["status"] == "ok"


def test_artists_albums_and_songs(ok, music):
    index = ok("getArtists")["artists"]["index"]
    names = {a["name"]: a for group in index for a in group["artist"]}
    assert set(names) == {"Ann", "Bob", "[Unknown Artist]"} and [g["name"] for g in index] == ["#", "A", "B"]
    ann = ok("getArtist", id=names["Ann"]["id"])["artist"]
    assert ann["name"] == "Ann" and [a["name"] for a in ann["album"]] == ["Blue"]
    album = ok("getAlbum", id=ann["album"][0]["id"])["album"]
    assert album["id"] == name_id("al", "Ann", "Blue") and album["year"] == 2001 and album["genre"] == "Jazz"
    assert [s["title"] for s in album["song"]] == ["Rain Song", "Night Walk"]
    song = ok("getSong", id=album["song"][0]["id"])["song"]
    assert song["id"] == str(music.ids["Rain Song"]) and song["albumId"] == album["id"]
    assert song["path"] == "Ann/Blue/01.flac" and song["contentType"] == "audio/flac"
    assert song["size"] == (music.lib / "Ann/Blue/01.flac").stat().st_size
    assert str(music.lib) not in str(song)  # the server's own paths stay on the server


def test_album_lists(ok):
    def names(**params):
        return [a["name"] for a in ok("getAlbumList2", **params)["albumList2"]["album"]]

    assert names(type="alphabeticalByName") == ["[Unknown Album]", "Blue", "Red"]
    assert names(type="alphabeticalByArtist") == ["[Unknown Album]", "Blue", "Red"]
    assert names(type="byYear", fromYear="1990", toYear="2000") == ["Red"]
    assert names(type="byGenre", genre="jazz") == ["Blue"]
    assert sorted(names(type="random", size="500")) == sorted(names(type="newest", size="500"))
    assert names(type="starred") == []
    assert names(type="alphabeticalByName", size="1", offset="1") == ["Blue"]


def test_random_songs_and_genres(ok):
    assert len(ok("getRandomSongs", size="3")["randomSongs"]["song"]) == 3
    rock = ok("getRandomSongs", size="10", genre="Rock")["randomSongs"]["song"]
    assert sorted(s["title"] for s in rock) == ["Moon", "Sun"]
    assert ok("getRandomSongs", fromYear="2000", toYear="2002")["randomSongs"]["song"][0]["artist"] == "Ann"
    genres = ok("getGenres")["genres"]["genre"]
    assert genres == [
        {"songCount": 2, "albumCount": 1, "value": "Jazz"},
        {"songCount": 2, "albumCount": 1, "value": "Rock"},
    ]
    assert len(ok("getSongsByGenre", genre="Rock")["songsByGenre"]["song"]) == 2


def test_xml_album(rest, music):
    r = rest("getAlbum", f="xml", id=name_id("al", "Bob", "Red"))
    assert r.headers["content-type"].startswith("text/xml")
    ns = "{http://subsonic.org/restapi}"
    album = ET.fromstring(r.content).find(ns + "album")
    assert album.get("name") == "Red" and len(album.findall(ns + "song")) == 2


def test_unknown_ids_and_bad_lists(failed):
    for method in ("getArtist", "getAlbum", "getSong"):
        failed(method, 70, id="nope")
        failed(method, 10)
    failed("getSong", 70, id="99999999999999999999999")
    failed("getAlbumList2", 10)
    failed("getAlbumList2", 0, type="best")
    failed("getAlbumList2", 10, type="byGenre")
    failed("getAlbumList2", 0, type="newest", size="100000000")
    failed("getRandomSongs", 0, size="-1")
