"""Who may call /rest/: token + salt, plain and enc: passwords, API keys; every refusal in-band."""

import hashlib


def test_token_salt_plain_and_enc_passwords(music, password):
    PASSWORD = password
    token = hashlib.md5((PASSWORD + "abc123").encode()).hexdigest()
    for auth in ({"t": token, "s": "abc123"}, {"p": PASSWORD}, {"p": "enc:" + PASSWORD.encode().hex()}):
        r = music.client.get("/rest/ping", params={"u": "alice", "f": "json", **auth})
        assert r.json()["subsonic-response"]["status"] == "ok", auth


def test_wrong_credentials_are_40(music, password):
    PASSWORD = password
    token = hashlib.md5(b"wrong" + b"s").hexdigest()
    for user, auth in [
        ("alice", {"p": "wrong"}),
        ("alice", {"t": token, "s": "s"}),
        ("nobody", {"p": PASSWORD}),
        ("alice", {"p": "enc:zz"}),
        ("alice", {"t": "\u00e9" * 32, "s": "s"}),  # not hex, not even ASCII
        ("bob", {"p": PASSWORD}),  # another user's password
    ]:
        r = music.client.get("/rest/ping", params={"u": user, "f": "json", **auth})
        error = r.json()["subsonic-response"]["error"]
        assert r.status_code == 200 and error["code"] == 40, (user, auth, error)


def test_missing_credentials_are_10(music, password):
    PASSWORD = password
    for params in ({}, {"u": "alice"}, {"u": "alice", "t": "abc"}, {"p": PASSWORD}):
        body = music.client.get("/rest/ping", params={"f": "json", **params}).json()["subsonic-response"]
        assert body["status"] == "failed" and body["error"]["code"] == 10, params


def test_api_keys(music):
    key = music.users.new_api_key("bob")
    assert (
        music.client.get("/rest/ping", params={"apiKey": key, "f": "json"}).json()["subsonic-response"]["status"]
        == "ok"
    )
    bad = music.client.get("/rest/ping", params={"apiKey": key + "x", "f": "json"}).json()["subsonic-response"]
    assert bad["error"]["code"] == 44
    both = music.client.get("/rest/ping", params={"apiKey": key, "u": "bob", "f": "json"}).json()["subsonic-response"]
    assert both["error"]["code"] == 43
    assert key not in music.users.path.read_text()  # only its digest is kept


def test_extensions_are_public_and_declare_sonic_similarity(music):
    body = music.client.get("/rest/getOpenSubsonicExtensions.view", params={"f": "json"}).json()["subsonic-response"]
    names = {e["name"] for e in body["openSubsonicExtensions"]}
    assert {"sonicSimilarity", "apiKeyAuthentication", "formPost"} <= names


def test_a_token_of_the_latin1_bytes_is_accepted(music, password):
    """JavaScript clients hash each UTF-16 unit as a byte: "é" as 0xE9 (npm's subsonic-api does)."""
    token = hashlib.md5(password.encode("latin-1") + b"salt").hexdigest()
    body = music.client.get("/rest/ping", params={"u": "alice", "t": token, "s": "salt", "f": "json"}).json()
    assert body["subsonic-response"]["status"] == "ok"
