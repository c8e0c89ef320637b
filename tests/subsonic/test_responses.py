"""The envelope in JSON and XML, and errors in-band."""

from xml.etree import ElementTree as ET

from musicsearch.subsonic.responses import SubsonicError, envelope, error_body, render

NS = "{http://subsonic.org/restapi}"


def test_json_envelope_carries_the_opensubsonic_fields():
    import json

    body = json.loads(render(envelope({"x": 1}), "json").body)["subsonic-response"]
    assert body == {
        "status": "ok",
        "version": "1.16.1",
        "type": "musicsearch",
        "serverVersion": "0.1.0",
        "openSubsonic": True,
        "x": 1,
    }


def test_xml_maps_scalars_to_attributes_and_lists_to_repeated_elements():
    payload = {"album": {"id": "al-1", "song": [{"id": "1", "isDir": False}, {"id": "2"}]}, "genre": None}
    root = ET.fromstring(render(envelope(payload), "xml").body)
    assert root.tag == NS + "subsonic-response" and root.get("status") == "ok" and root.get("openSubsonic") == "true"
    album = root.find(NS + "album")
    assert album.get("id") == "al-1"
    assert [s.get("id") for s in album.findall(NS + "song")] == ["1", "2"]
    assert album.find(NS + "song").get("isDir") == "false"
    genres = ET.fromstring(render(envelope({"genres": {"genre": [{"songCount": 2, "value": "Jazz"}]}}), "xml").body)
    genre = genres.find(f"{NS}genres/{NS}genre")
    assert genre.text == "Jazz" and genre.get("songCount") == "2"


def test_errors_are_in_band():
    body = error_body(SubsonicError(70, "song not found: 9"))
    assert body["status"] == "failed" and body["error"] == {"code": 70, "message": "song not found: 9"}
    root = ET.fromstring(render(body, "xml").body)
    assert root.find(NS + "error").get("code") == "70"
