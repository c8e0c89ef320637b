"""Shared fixtures: a tiny CLAP saved to a temp folder (loaded through the users' code path),
generated audio in several formats and rates, and a deterministic fake embedder."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicsearch.randmodel import build_random_clap
from musicsearch.store import IndexMeta, Store, TrackRecord

SR = 48_000


@pytest.fixture(autouse=True)
def prepared_cache(tmp_path_factory, monkeypatch) -> Path:
    """Each test prepares models (ONNX graphs) in a cache folder of its own, never the user's."""
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("MUSICSEARCH_CACHE", str(folder))
    monkeypatch.setenv("MUSICSEARCH_INDEX", str(folder / "default-index"))  # never the user's own index
    return folder


@pytest.fixture(autouse=True)
def no_small_run_shortcuts(monkeypatch) -> None:
    """Small test runs exercise the decode worker processes too (a user's small run decodes in
    threads: tests/indexing/test_feed.py checks that policy with its real threshold)."""
    import musicsearch.indexing.feed

    monkeypatch.setattr(musicsearch.indexing.feed, "SMALL_RUN_WINDOWS", 0)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_random_clap(tmp_path_factory.mktemp("models") / "tiny-clap", "tiny", seed=0)


def tone(freq: float, seconds: float, sr: int = SR, amp: float = 0.3, channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def noise(seconds: float, sr: int = SR, amp: float = 0.2, seed: int = 0) -> np.ndarray:
    return (amp * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


def write_audio(path: Path, data: np.ndarray, sr: int = SR) -> Path:
    """Write ``data`` (frames[, channels]) to ``path``; the extension picks the format.
    m4a (AAC) goes through PyAV; everything else through soundfile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in {".m4a", ".aac"}:
        import av

        data2 = data if data.ndim == 2 else data[:, None]
        with av.open(str(path), "w", format="mp4" if path.suffix.lower() == ".m4a" else "adts") as out:
            stream = out.add_stream("aac", rate=sr)
            stream.layout = "stereo" if data2.shape[1] == 2 else "mono"
            frame_size = 1024
            planar = np.ascontiguousarray(data2.T.astype(np.float32))
            for i in range(0, planar.shape[1], frame_size):
                chunk = np.ascontiguousarray(planar[:, i : i + frame_size])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=stream.layout.name)
                frame.sample_rate = sr
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    else:  # in blocks: libsndfile's Vorbis encoder crashes on one very large write
        channels = 1 if data.ndim == 1 else data.shape[1]
        with sf.SoundFile(str(path), "w", sr, channels) as f:
            for i in range(0, len(data), 1 << 15):
                f.write(data[i : i + (1 << 15)])
    return path


FAKE_DIM = 24


def band_of(freq: float) -> int:
    """Quarter-octave band above 100 Hz."""
    return int(np.clip(round(np.log2(max(freq, 1.0) / 100.0) * 4), 0, FAKE_DIM - 1))


def one_hot(i: int) -> np.ndarray:
    v = np.full(FAKE_DIM, 0.01, np.float32)
    v[i] = 1.0
    return v / np.linalg.norm(v)


class FakeEmbedder:
    """Deterministic stand-in for CLAP implementing the ``Embedder`` protocol: a window maps
    to the band of its dominant frequency; a prompt naming a frequency ("a 440 Hz tone")
    maps to that band. So "the right track ranks first" has a known answer."""

    model_id = "fake-embedder"
    revision = None
    dim = FAKE_DIM
    window_seconds = 10.0
    logit_scale = 10.0
    device = "fake"

    def __init__(self) -> None:
        self.windows_embedded = 0
        self.calls = 0

    def prepare(self, waves: np.ndarray) -> np.ndarray:
        return np.asarray(waves, np.float32)

    def embed(self, waves: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.windows_embedded += len(waves)
        out = []
        for w in waves:
            spec = np.abs(np.fft.rfft(w))
            freq = float(np.argmax(spec[1:]) + 1) * SR / len(w)
            out.append(one_hot(band_of(freq)))
        return np.stack(out)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        for t in texts:
            m = re.search(r"(\d+(?:\.\d+)?)\s*hz", t.lower())
            if m:
                out.append(one_hot(band_of(float(m.group(1)))))
            else:  # an unrelated prompt: a spread-out vector from its characters
                rng = np.random.default_rng(sum(map(ord, t)))
                v = rng.standard_normal(FAKE_DIM).astype(np.float32)
                out.append(v / np.linalg.norm(v))
        return np.stack(out)


@pytest.fixture
def fake() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def library(tmp_path) -> Path:
    """A small library: tones at distinct frequencies in several formats and rates."""
    root = tmp_path / "lib"
    write_audio(root / "low" / "t150.wav", tone(150, 25, 44_100), 44_100)
    write_audio(root / "mid" / "t600.flac", tone(600, 12, 48_000, channels=2), 48_000)
    write_audio(root / "mid" / "t1200.ogg", tone(1200, 4, 22_050), 22_050)
    write_audio(root / "high" / "t2400.wav", tone(2400, 15, 96_000), 96_000)
    return root


def tagged(path: Path, **tags: str) -> Path:
    import mutagen

    f = mutagen.File(path, easy=True)
    for key, value in tags.items():
        f[key] = value
    f.save()
    return path


@pytest.fixture
def catalog(tmp_path) -> Path:
    """Twenty tagged FLAC tones: ten 'Jazz' (1990s) and ten 'Rock' (2000s), two artists,
    durations 5-24 s, in two folders; frequencies cycle over four bands."""
    root = tmp_path / "catalog"
    freqs = [150, 600, 1200, 2400]
    for i in range(20):
        genre = "Jazz" if i < 10 else "Rock"
        folder = root / genre.lower()
        p = write_audio(folder / f"song{i:02d}.flac", tone(freqs[i % 4], 5 + i))
        tagged(
            p,
            title=f"Song {i:02d}",
            artist="Ann Arbor" if i % 2 else "Bob Beat",
            album=f"{genre} Album",
            genre=genre,
            date=str(1990 + i if i < 10 else 2000 + i),
        )
    return root


def clustered_records(lo: int, hi: int, dim: int = 32, seed: int = 0, gaps: bool = False) -> list[TrackRecord]:
    """Tracks ``lo``..``hi``-1 of 3 windows around 40 shared centres (clusters for an IVF index):
    year 1000 + i % 100, duration 30 s. With ``gaps``: every 50th year and every 97th duration
    unknown, duration 30 + i % 7 s, genre jazz for every third track and rock otherwise."""
    rng = np.random.default_rng(seed + lo)
    centres = np.random.default_rng(99).standard_normal((40, dim))
    out = []
    for i in range(lo, hi):
        v = centres[i % 40] + 0.8 * rng.standard_normal((3, dim))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        tags: dict = {"title": f"t{i}", "year": 1000 + i % 100}
        duration: float | None = 30.0
        if gaps:
            tags.update(year=None if i % 50 == 7 else tags["year"], genre="rock" if i % 3 else "jazz")
            duration = None if i % 97 == 5 else 30.0 + i % 7
        out.append(
            TrackRecord(f"/t{i}.wav", 0, 0, "h", tags, duration, [0, 10, 20], [10, 20, 30], v.astype(np.float32))
        )
    return out


def clustered_store(path: Path, n: int = 2000, dim: int = 32, gaps: bool = False) -> Store:
    """A store of ``clustered_records(0, n)``."""
    s = Store(path, create=True)
    s.record_meta(IndexMeta.new("m", None, dim, 10.0, checked=False))
    with s.write():
        s.add_tracks(clustered_records(0, n, dim, gaps=gaps), "now")
    return s
