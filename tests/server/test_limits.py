"""Every parameter validated (musicsearch/server/limits.py): track ids, prompts, filters."""

import pytest

from musicsearch.server import MAX_PROMPTS, MAX_QUERY_CHARS


@pytest.mark.parametrize("bad_id", ["99999999999999999999999", str(2**63), "0", "-1", "1e3"])
def test_track_ids_outside_sqlite_range_are_4xx(client, bad_id, no_error_logged, error_of):
    assert "track_id" in error_of(client.get(f"/api/tracks/{bad_id}"), 422)
    error_of(client.get(f"/api/tracks/{bad_id}/audio"), 422)


def test_largest_sqlite_id_is_a_valid_unknown_track(client, no_error_logged, error_of):
    assert "no track" in error_of(client.get(f"/api/tracks/{2**63 - 1}"), 404)
    error_of(client.get(f"/api/tracks/{2**63 - 1}/audio"), 404)
    assert "no track" in error_of(client.post("/api/similar", json={"track_id": 2**63 - 1}), 404)


@pytest.mark.parametrize("bad_id", [99999999999999999999999, 2**63, 0, -1])
def test_similar_and_classify_refuse_ids_outside_sqlite_range(client, bad_id, no_error_logged, error_of):
    assert "track_id" in error_of(client.post("/api/similar", json={"track_id": bad_id, "k": 2}), 422)
    assert "track_id" in error_of(client.post("/api/classify", data={"labels": "a, b", "track_id": str(bad_id)}), 422)


def test_each_prompt_is_bounded_and_so_is_their_number(client, no_error_logged, error_of):
    ok = "a" * MAX_QUERY_CHARS
    longest = {"q": ok, "not": ["b" * MAX_QUERY_CHARS, "c" * MAX_QUERY_CHARS], "k": 1}
    assert client.get("/api/search", params=longest).status_code == 200
    assert "500 characters" in error_of(client.get("/api/search", params={"q": "x", "not": ["b", ok + "a"]}), 422)
    error_of(client.get("/api/search", params={"q": "x", "not": "n" * 10_000}), 422)
    many = ["n"] * MAX_PROMPTS
    assert client.get("/api/search", params={"q": "x", "not": many, "k": 1}).status_code == 200
    error_of(client.get("/api/search", params={"q": "x", "not": [*many, "n"]}), 422)
    error_of(client.get("/api/search", params={"q": "x", "tag": ["t"] * (MAX_PROMPTS + 1)}), 422)
    error_of(client.get("/api/search", params={"q": "x", "artist": "a" * 10_000}), 422)
    error_of(client.get("/api/search", params={"q": "x", "year": "1" * 1000}), 422)
    error_of(client.get("/api/search", params={"q": "x", "min_score": "nan"}), 422)


def test_filters_that_do_not_parse_are_400(client, no_error_logged, error_of):
    for params in ({"min_duration": "-5"}, {"max_duration": "1:99:99"}, {"year": "1999-1990"}):
        assert "bad " in error_of(client.get("/api/search", params={"q": "x", **params}), 400)
    assert client.get("/api/search", params={"q": "x", "year": "", "min_duration": ""}).status_code == 200
