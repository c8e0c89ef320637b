"""/api/classify (musicsearch/server/classify.py)."""


def test_classify_upload_and_track(client, tmp_path, write_audio, tone):
    clip = write_audio(tmp_path / "clip.flac", tone(440, 4))
    with open(clip, "rb") as f:
        r = client.post(
            "/api/classify", files={"audio": ("clip.flac", f, "audio/flac")}, data={"labels": "rock, jazz, classical"}
        )
    body = r.json()
    assert r.status_code == 200 and set(body) == {"labels", "top_label", "confidence"}
    assert next(x["label"] for x in body["labels"]) == body["top_label"]
    assert sorted(x["label"] for x in body["labels"]) == ["classical", "jazz", "rock"]
    assert abs(sum(x["score"] for x in body["labels"]) - 1) < 1e-5
    track_id = client.get("/api/search", params={"q": "x", "k": 1}).json()[0]["track_id"]
    r = client.post("/api/classify", data={"labels": "a, b", "track_id": str(track_id)})
    assert r.status_code == 200 and r.json()["top_label"] in {"a", "b"}


def test_classify_and_upload_errors(client, tmp_path, error_of):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"not audio" * 100)
    with open(junk, "rb") as f:
        msg = error_of(client.post("/api/classify", files={"audio": ("junk.mp3", f)}, data={"labels": "a, b"}), 422)
    assert "could not be decoded" in msg and str(tmp_path) not in msg
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (3 * 1024 * 1024))
    with open(big, "rb") as f:
        assert "larger than" in error_of(
            client.post("/api/classify", files={"audio": ("big.wav", f)}, data={"labels": "a, b"}), 413
        )
    error_of(client.post("/api/classify", data={"labels": "a, b"}), 422)
    assert "at least two labels" in error_of(
        client.post("/api/classify", data={"labels": "solo", "track_id": "1"}), 400
    )
    error_of(client.post("/api/classify", files={"audio": ("e.wav", b"")}, data={"labels": "a, b"}), 400)
