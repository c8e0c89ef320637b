"""Names and sounds in one query (musicsearch/lexical.py) on the fake embedder: a window maps
to the band of its dominant frequency, a prompt naming "NNN Hz" to that band."""

import json

import pytest
from typer.testing import CliRunner

import musicsearch.api
from musicsearch import MusicIndex, Settings
from musicsearch.cli import app
from musicsearch.search.names import fuse, interpret, tokens, whole_field_matches
from musicsearch.store import Store


@pytest.fixture
def idx(tmp_path, catalog, fake):
    index = MusicIndex(tmp_path / "idx", settings=Settings(batch_size=4), embedder=fake)
    index.index(catalog)
    return index


@pytest.fixture
def twins(tmp_path, fake, tagged, write_audio, tone):
    """The same 440 Hz audio tagged with two artists, and other tones by a third."""
    root = tmp_path / "twins"
    for name, artist, freq in [
        ("a", "Alpha Band", 440),
        ("b", "Beta Band", 440),
        ("c", "Gamma", 440),
        ("d", "Gamma", 1800),
        ("e", "Gamma", 3000),
        ("f", "Beta Band", 3000),
    ]:
        tagged(write_audio(root / f"{name}.flac", tone(freq, 6)), title=f"Tune {name}", artist=artist, album="Mixed")
    index = MusicIndex(tmp_path / "tidx", settings=Settings(batch_size=4), embedder=fake)
    index.index(root)
    return index


def artists(hits):
    return [h.track.artist for h in hits]


def test_tokens_and_fusion_exact():
    assert tokens("Beyoncé - Halo (Live)") == ["beyonce", "halo", "live"]
    assert tokens(None) == []
    # 1/61 + 1/62 for 2 (rank 1 lexical, rank 2 sound) beats 1/61 for 1 (sound only)
    assert fuse([1, 2, 3], [2]) == [2, 1, 3]
    assert fuse([1, 2], [9]) == [9, 1, 2]  # a name ranks above the sound-only tracks
    assert fuse([5, 6, 7], [7, 6]) == [7, 6, 5]  # 1/61 + 1/63 = 0.032266 > 2/62 = 0.032258
    assert fuse([1, 2, 3], []) == [1, 2, 3]


def test_by_artist_filters_to_that_artist_and_ranks_by_sound(twins):
    hits = twins.search("a 440 Hz tone by Beta Band", k=5)
    assert artists(hits) == ["Beta Band", "Beta Band"]  # only that artist, 440 Hz first
    assert [h.track.title for h in hits] == ["Tune b", "Tune f"]
    assert all(h.matched == "artist+sound" for h in hits)
    other = twins.search("a 440 Hz tone by Alpha Band", k=1)
    assert [h.track.title for h in other] == ["Tune a"]
    # no name: the three 440 Hz tracks tie on sound, whatever their artist
    plain = twins.search("a 440 Hz tone", k=3)
    assert {h.track.title for h in plain} == {"Tune a", "Tune b", "Tune c"}
    assert all(h.matched == "sound" for h in plain)


def test_like_an_artist_seeds_from_its_tracks_and_leaves_them_out(twins):
    # Beta Band = one 440 Hz and one 3000 Hz track: their mean is nearest to Gamma's 440 and 3000 Hz tracks
    hits = twins.search("like Beta Band", k=3)
    assert "Beta Band" not in artists(hits)
    assert {h.track.title for h in hits[:3]} == {"Tune a", "Tune c", "Tune e"}
    with_own = twins.search("like Beta Band", k=5, include_named=True)  # five tracks tie on sound
    assert artists(with_own).count("Beta Band") == 2
    # the remaining words steer: "but a 3000 Hz tone" pulls the 3000 Hz track of Gamma first
    steered = twins.search("like Beta Band but a 3000 Hz tone", k=1)
    assert [h.track.title for h in steered] == ["Tune e"]


def test_a_title_typed_exactly_ranks_first(idx):
    plain = idx.search("Song 07", k=5, lexical=False)
    assert plain[0].track.title != "Song 07"
    hits = idx.search("Song 07", k=5)
    assert hits[0].track.title == "Song 07" and hits[0].matched == "title"
    assert [h.matched for h in hits[1:]] == ["sound"] * 4
    assert len(hits) == 5
    # the rest is the sound ranking, in order, without the title's track
    assert [h.track.id for h in hits[1:]] == [h.track.id for h in plain if h.track.title != "Song 07"][:4]


def test_a_whole_artist_name_puts_its_tracks_first(idx):
    hits = idx.search("Ann Arbor", k=10)
    assert artists(hits)[:5] == ["Ann Arbor"] * 5
    assert hits[0].matched == "artist"


def test_no_lexical_is_the_pure_vector_ranking_and_sound_queries_are_not_reordered(idx):
    for prompt in ["a 600 Hz tone", "2400 hz", "jazz", "song", "rock music", "by nobody at all", "like 150 Hz"]:
        with_names = idx.search(prompt, k=20)
        without = idx.search(prompt, k=20, lexical=False)
        assert [h.track.id for h in with_names] == [h.track.id for h in without], prompt
        assert [h.score for h in with_names] == [h.score for h in without]


def test_interpret_finds_names_only_on_whole_fields(idx):
    store = Store(idx.path)
    found = interpret(store, "piano by ann arbor, with strings")
    assert found.sound == "piano with strings" and found.by_field == "artist" and len(found.by_ids) == 10
    assert interpret(store, "piano by ann").by_ids == ()  # a part of a name is not a name
    assert interpret(store, "from Jazz Album").by_field == "album"
    like = interpret(store, "something like Bob Beat but calmer")
    assert like.sound == "calmer" and len(like.like_ids) == 10 and like.name == "Bob Beat"
    assert whole_field_matches(store, tokens("song03"), ("file",))[0][1] == "title"  # the file name


def test_fts_follows_the_tracks_table(idx, catalog, tagged):
    store = Store(idx.path)
    assert store.conn.execute("select count(*) from tracks_fts").fetchone()[0] == 20
    (catalog / "jazz" / "song03.flac").unlink()
    tagged(catalog / "jazz" / "song05.flac", artist="Zed Zulu")
    idx.index(catalog)
    assert store.conn.execute("select count(*) from tracks_fts").fetchone()[0] == 19
    assert whole_field_matches(store, ["song", "03"], ("title",)) == []
    assert len(whole_field_matches(store, ["zed", "zulu"], ("artist",))) == 1
    assert [h.track.artist for h in idx.search("by Zed Zulu", k=5)] == ["Zed Zulu"]


def test_cli_shows_why_each_hit_matched(tmp_path, catalog, monkeypatch, fake_embedder_cls):
    monkeypatch.setattr(musicsearch.context, "ClapEmbedder", lambda *a, **k: fake_embedder_cls())
    runner = CliRunner()
    index_dir = str(tmp_path / "cidx")
    assert runner.invoke(app, ["index", str(catalog), "--index", index_dir, "-q"]).exit_code == 0
    out = runner.invoke(app, ["query", "Song 07", "-k", "3", "--json", "--index", index_dir])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data[0]["title"] == "Song 07" and [d["matched"] for d in data] == ["title", "sound", "sound"]
    out = runner.invoke(app, ["query", "Song 07", "-k", "3", "--json", "--no-lexical", "--index", index_dir])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)[0]["title"] != "Song 07"
    table = runner.invoke(app, ["query", "Song 07", "-k", "2", "--index", index_dir])
    assert "title" in table.output and "why" in table.output
