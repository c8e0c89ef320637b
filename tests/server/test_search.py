"""The search routes (musicsearch/server/search.py): search, similar, path."""

import json

import pytest

from musicsearch.server import MAX_QUERY_CHARS


def test_search_matches_query_json(client, built):
    idx, _lib, _ = built
    hits = client.get("/api/search", params={"q": "slow sad piano", "k": 3}).json()
    assert len(hits) == 3 and [h["rank"] for h in hits] == [1, 2, 3]
    assert {
        "rank",
        "score",
        "track_id",
        "path",
        "title",
        "artist",
        "album",
        "genre",
        "year",
        "duration",
        "segment_start",
        "segment_end",
    } <= set(hits[0])
    direct = [h.to_dict() for h in idx.search("slow sad piano", k=3)]
    assert hits == json.loads(json.dumps(direct))


def test_search_filters(client):
    hits = client.get("/api/search", params={"q": "x", "k": 10, "path": "*/b/*", "min_duration": "0:09"}).json()
    assert [h["title"] for h in hits] == ["mid"]
    assert client.get("/api/search", params={"q": "x", "by": "window", "k": 2}).status_code == 200


def test_search_errors_are_4xx_json(client, error_of):
    assert "empty query" in error_of(client.get("/api/search", params={"q": "   "}), 400)
    error_of(client.get("/api/search", params={"q": "a" * (MAX_QUERY_CHARS + 1)}), 422)
    error_of(client.get("/api/search"), 422)
    for k in (0, 10_000, "many"):
        error_of(client.get("/api/search", params={"q": "x", "k": k}), 422)
    assert "bad year" in error_of(client.get("/api/search", params={"q": "x", "year": "soon"}), 400)
    error_of(client.get("/api/search", params={"q": "x", "by": "album"}), 422)


def test_similar_by_track_and_by_upload(client, built, tmp_path, write_audio, tone, error_of):
    hits = client.get("/api/search", params={"q": "x", "k": 3}).json()
    seed = hits[0]["track_id"]
    similar = client.post("/api/similar", json={"track_id": seed, "k": 5}).json()
    assert len(similar) == 2 and seed not in [h["track_id"] for h in similar]
    clip = write_audio(tmp_path / "clip.wav", tone(600, 3))
    with open(clip, "rb") as f:
        up = client.post("/api/similar", files={"audio": ("clip.wav", f, "audio/wav")}, data={"k": "2"})
    assert up.status_code == 200 and len(up.json()) == 2
    assert "no track" in error_of(client.post("/api/similar", json={"track_id": 424242}), 404)
    error_of(client.post("/api/similar", json={"track_id": seed, "k": 0}), 422)
    error_of(client.post("/api/similar", content=b"nonsense", headers={"content-type": "application/json"}), 422)


def test_search_variety_params(fake_client):
    client, _, _ = fake_client
    plain = client.get("/api/search", params={"q": "600 Hz", "k": 3}).json()
    assert [h["artist"] for h in plain].count("Ann") == 2
    one_each = client.get("/api/search", params={"q": "600 Hz", "k": 3, "max_per_artist": 1}).json()
    artists = [h["artist"] for h in one_each]
    assert len(one_each) == 3 and len(set(artists)) == 3  # Ann, Bob and the untagged mix
    deduped = client.get("/api/search", params={"q": "600 Hz", "k": 5, "dedupe": True}).json()
    titles = [h["title"] for h in deduped]  # songs 0-2 are one sound (identical vectors): one of them stays
    assert len(titles) == 3 and sum(titles.count(f"Song {i}") for i in range(3)) == 1
    no_ann = client.get("/api/search", params=[("q", "600 Hz"), ("k", 5), ("exclude_artist", "ann")]).json()
    assert "Ann" not in [h["artist"] for h in no_ann] and len(no_ann) == 3
    no_jazz = client.get("/api/search", params={"q": "600 Hz", "k": 5, "exclude_genre": "jazz"}).json()
    assert [h["title"] for h in no_jazz] == ["mix"]
    no_flac = client.get("/api/search", params={"q": "600 Hz", "k": 5, "exclude_path": "*.flac"}).json()
    assert [h["title"] for h in no_flac] == ["mix"]
    a = client.get("/api/search", params={"q": "600 Hz", "k": 4, "variation": 1, "seed": 7}).json()
    b = client.get("/api/search", params={"q": "600 Hz", "k": 4, "variation": 1, "seed": 7}).json()
    assert a == b and len(a) == 4
    five = client.get("/api/search", params={"q": "600 Hz", "k": 5}).json()
    smooth = client.get("/api/search", params={"q": "600 Hz", "k": 5, "order": "smooth"}).json()
    assert sorted(h["track_id"] for h in smooth) == sorted(h["track_id"] for h in five)


def test_search_names_and_lexical_switch(fake_client):
    client, _, _ = fake_client
    by_bob = client.get("/api/search", params={"q": "600 Hz by Bob", "k": 5}).json()
    assert {h["artist"] for h in by_bob} == {"Bob"} and by_bob[0]["title"] == "Song 2"
    assert "artist" in by_bob[0]["matched"]
    titled = client.get("/api/search", params={"q": "Song 3", "k": 2}).json()
    assert titled[0]["title"] == "Song 3" and titled[0]["matched"] == "title"
    pure = client.get("/api/search", params={"q": "Song 3", "k": 2, "lexical": False}).json()
    assert all(h["matched"] == "sound" for h in pure)


@pytest.mark.parametrize(
    "params",
    [
        {"max_per_artist": 0},
        {"max_per_artist": "two"},
        {"variation": 1.5},
        {"variation": -0.1},
        {"variation": "nan"},
        {"seed": -1},
        {"seed": 2**40},
        {"order": "random"},
        {"lexical": "perhaps"},
        {"dedupe": "maybe"},
        {"exclude_artist": "x" * 501},
        {"exclude_path": ["*"] * 17},
    ],
)
def test_search_bad_variety_params_are_4xx_json(fake_client, params, error_of):
    client, _, _ = fake_client
    error_of(client.get("/api/search", params={"q": "600 Hz", **params}), 422)


def test_similar_with_variety_and_order(fake_client, error_of):
    client, _, _ = fake_client
    seed = client.get("/api/search", params={"q": "Song 0", "k": 1}).json()[0]
    plain = client.post("/api/similar", json={"track_id": seed["track_id"], "k": 2}).json()
    assert {h["title"] for h in plain} == {"Song 1", "Song 2"}  # the same sound (ties)
    hits = client.post("/api/similar", json={"track_id": seed["track_id"], "k": 3, "exclude_artist": ["Ann"]}).json()
    assert "Ann" not in [h["artist"] for h in hits] and len(hits) == 3
    one = client.post("/api/similar", json={"track_id": seed["track_id"], "k": 3, "max_per_artist": 1}).json()
    assert len({h["artist"] for h in one}) == 3
    smooth = client.post("/api/similar", json={"track_id": seed["track_id"], "k": 3, "order": "smooth"})
    assert smooth.status_code == 200 and len(smooth.json()) == 3
    for bad in ({"variation": 2}, {"order": "up"}, {"max_per_artist": 0}, {"exclude_genre": ["x"] * 17}):
        error_of(client.post("/api/similar", json={"track_id": seed["track_id"], **bad}), 422)


def test_similar_upload_takes_variety_fields(fake_client, tmp_path, write_audio, tone, error_of):
    client, _, _ = fake_client
    clip = write_audio(tmp_path / "clip.wav", tone(600, 3))
    with clip.open("rb") as f:
        r = client.post(
            "/api/similar",
            files={"audio": ("clip.wav", f, "audio/wav")},
            data={"k": "3", "max_per_artist": "1"},
        )
    assert r.status_code == 200, r.text
    assert len({h["artist"] for h in r.json()}) == 3
    with clip.open("rb") as f:
        bad = client.post("/api/similar", files={"audio": ("clip.wav", f, "audio/wav")}, data={"variation": "9"})
    assert "variation" in error_of(bad, 422)


def test_path_between_two_tracks(fake_client, error_of):
    client, _, _ = fake_client
    ids = {p["title"]: p["track_id"] for p in client.get("/api/map").json()}
    hits = client.get("/api/path", params={"start": ids["Song 0"], "end": ids["Song 3"], "n": 4}).json()
    titles = [h["title"] for h in hits]
    assert titles[0] == "Song 0" and titles[-1] == "Song 3" and len(titles) == len(set(titles)) == 4
    error_of(client.get("/api/path", params={"start": ids["Song 0"], "end": 999999}), 404)
    error_of(client.get("/api/path", params={"start": ids["Song 0"], "end": ids["Song 3"], "n": 1}), 422)
