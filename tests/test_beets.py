"""The beets plugin against a real beets library: ``beet import -A`` of generated tagged files
with a temp BEETSDIR, each ``beet`` a process of its own in which the model is the fake
embedder (so the ranking is known)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from musicsearch.api import MusicIndex
from musicsearch.config import Settings

pytest.importorskip("beets", reason="the beets plugin needs beets: pip install -e '.[beets]'")

TESTS = Path(__file__).parent
BEET = """\
import sys

sys.path.insert(0, {tests!r})
import musicsearch.api
from fakes import FakeEmbedder

musicsearch.context.ClapEmbedder = lambda *a, **k: FakeEmbedder()

if __name__ == "__main__":  # decode workers import this file too
    from beets.ui import main

    main(sys.argv[1:])
"""


class Beets:
    """A beets set-up in a temp folder: config, library database, and the ``beet`` runner."""

    def __init__(self, tmp_path: Path, embedder_cls: type):
        self.embedder_cls = embedder_cls  # the fake embedder the ``beet`` processes load too
        self.home = tmp_path / "beets"
        self.home.mkdir()
        self.index = tmp_path / "idx"
        self.script = tmp_path / "beet_fake.py"
        self.script.write_text(BEET.format(tests=str(TESTS)))
        self.configure(auto=False)

    def configure(self, auto: bool, write_tags: bool = True) -> None:
        (self.home / "config.yaml").write_text(
            f"directory: {self.home / 'library'}\n"
            f"library: {self.home / 'library.db'}\n"
            "plugins: [musicsearch]\n"
            "threaded: no\n"
            "import:\n  copy: no\n  write: no\n  log: null\n"
            "musicsearch:\n"
            f"  index: {self.index}\n"
            f"  auto: {'yes' if auto else 'no'}\n"
            f"  write_tags: {'yes' if write_tags else 'no'}\n"
            "  max_windows: 2\n"
            "  workers: 1\n"
        )

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ, BEETSDIR=str(self.home), HOME=str(self.home), PYTHONPATH=str(TESTS))
        r = subprocess.run(
            [sys.executable, str(self.script), *args], env=env, capture_output=True, text=True, timeout=120
        )
        if ok:
            assert r.returncode == 0, r.stdout + r.stderr
        return r

    def tracks(self) -> dict[str, int]:
        with MusicIndex(self.index, settings=Settings(), embedder=self.embedder_cls()) as idx:
            return {p: t.id for p, t in idx.tracks_under("/").items()}

    def best(self, path: str) -> dict[str, str]:
        with MusicIndex(self.index, settings=Settings(), embedder=self.embedder_cls()) as idx:
            track = idx.tracks_under(path)[path]
            found = idx.track(track.id)
        assert found is not None
        best: dict[str, tuple[str, float]] = {}
        for vocab, label, score in found[1]:
            if vocab not in best or score > best[vocab][1]:
                best[vocab] = (label, score)
        return {v: lab for v, (lab, _) in best.items()}


@pytest.fixture
def music(tmp_path, write_audio, tagged, tone) -> Path:
    """Two albums of tagged FLAC tones: 'Low Tide' (150/600 Hz) and 'High Noon' (1200/2400 Hz)."""
    root = tmp_path / "music"
    for album, folder, freqs in (("Low Tide", "low", (150, 600)), ("High Noon", "high", (1200, 2400))):
        for n, f in enumerate(freqs, 1):
            for take in (1, 2):
                p = write_audio(root / folder / f"{f}-{take}.flac", tone(f, 3 + take))
                tagged(p, title=f"{f} Hz take {take}", artist="Tone Band", album=album, tracknumber=str(2 * n + take))
    return root


def test_search_index_and_tags(tmp_path, music, fake_embedder_cls):
    beet = Beets(tmp_path, fake_embedder_cls)
    beet("import", "-A", "-q", str(music))
    assert beet("ls", "-f", "$title").stdout.count("\n") == 8
    assert not beet.index.exists()  # auto: no
    r = beet("musicsearch-index")
    assert (
        f"musicsearch: {music / 'high'}: 4 added" in r.stdout and f"musicsearch: {music / 'low'}: 4 added" in r.stdout
    )
    assert len(beet.tracks()) == 8
    # the default format, then -f, then a beets query as the filter
    r = beet("musicsearch", "2400 Hz", "-k", "2")
    assert sorted(r.stdout.splitlines()) == [
        "Tone Band - High Noon - 2400 Hz take 1",
        "Tone Band - High Noon - 2400 Hz take 2",
    ]
    r = beet("musicsearch", "150 Hz", "-k", "3", "-f", "$title|$ms_score")
    lines = r.stdout.splitlines()
    assert sorted(lines[:2]) == ["150 Hz take 1|1.000", "150 Hz take 2|1.000"] and len(lines) == 3
    r = beet("musicsearch", "150 Hz", "-k", "3", "-f", "$title", "album:High Noon")
    assert len(r.stdout.splitlines()) == 3 and all("150" not in line for line in r.stdout.splitlines())
    r = beet("musicsearch", "2400 Hz", "-k", "5", "-f", "$title", "title:take 1")
    assert r.stdout.splitlines()[0] == "2400 Hz take 1" and len(r.stdout.splitlines()) == 4
    # labels as flexible attributes, usable in beets queries
    path = str(music / "low" / "600-2.flac")
    best = beet.best(path)
    assert set(best) == {"genre", "mood", "instrument"}
    r = beet("ls", "-f", "$ms_genre|$ms_mood|$ms_instrument", f"path:{path}")
    assert r.stdout.strip() == f"{best['genre']}|{best['mood']}|{best['instrument']}"
    r = beet("ls", "-f", "$path", f"ms_mood:{best['mood']}")
    assert path in r.stdout.splitlines()
    # tempo and key as flexible attributes, ms_bpm a number in beets queries
    with MusicIndex(beet.index) as idx:
        track = idx.tracks_under(path)[path]
    assert track.bpm is not None and track.key is not None
    r = beet("ls", "-f", "$ms_bpm|$ms_key", f"path:{path}")
    assert r.stdout.strip() == f"{track.bpm:.1f}|{track.key}"
    low, high = round(track.bpm) - 1, round(track.bpm) + 1
    assert path in beet("ls", "-f", "$path", f"ms_bpm:{low}..{high}").stdout.splitlines()
    assert path not in beet("ls", "-f", "$path", f"ms_bpm:{high + 5}..{high + 50}").stdout.splitlines()
    r = beet("musicsearch", ok=False)
    assert r.returncode != 0 and "usage: beet musicsearch" in r.stderr


def test_auto_import_move_remove(tmp_path, music, fake_embedder_cls):
    beet = Beets(tmp_path, fake_embedder_cls)
    beet.configure(auto=True)
    beet("import", "-A", "-q", str(music / "low"))
    tracks = beet.tracks()
    assert sorted(tracks) == sorted(str(p) for p in (music / "low").iterdir())
    assert beet("ls", "-f", "$ms_genre", "album:Low Tide").stdout.strip() != ""  # tagged at import
    # beet move: files go to the library folder; the index follows them without embedding
    r = beet("move", "album:Low Tide")
    moved = {Path(p).name: p for p in beet("ls", "-f", "$path").stdout.splitlines()}
    assert all(p.startswith(str(beet.home / "library")) for p in moved.values()), r.stdout + r.stderr
    after = beet.tracks()
    assert sorted(after) == sorted(moved.values())
    assert sorted(after.values()) == sorted(tracks.values())  # the same tracks: followed, not embedded again
    # beet rm -d: the file and its track go
    gone = moved["150 Hz take 1.flac"] if "150 Hz take 1.flac" in moved else sorted(moved.values())[0]
    beet("rm", "-d", "-f", f"path:{gone}")
    assert not os.path.exists(gone)
    assert gone not in beet.tracks() and len(beet.tracks()) == 3
    # importing the other album adds its tracks
    beet("import", "-A", "-q", str(music / "high"))
    assert len(beet.tracks()) == 7


def test_offline_without_the_model_beets_names_its_model_key(tmp_path, music, fake_embedder_cls, monkeypatch):
    """The real model, offline and not cached: beets has no --model option, so its one line
    names the fetch command and the ``model:`` key of beets' config."""
    beet = Beets(tmp_path, fake_embedder_cls)
    beet.script.write_text(
        'if __name__ == "__main__":\n    import sys\n\n    from beets.ui import main\n\n    main(sys.argv[1:])\n'
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    beet("import", "-A", "-q", str(music))
    r = beet("musicsearch-index", ok=False)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == (
        "error: musicsearch: could not load model 'laion/larger_clap_general': it is not cached and the Hub "
        "cannot be reached (offline?); on a machine with a network run 'musicsearch model fetch "
        "laion/larger_clap_general --to ~/clap', copy that folder to ~/clap here and set 'model: ~/clap' under "
        "'musicsearch:' in beets' config"
    )
