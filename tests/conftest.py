"""Shared fixtures: a tiny CLAP saved to a temp folder (loaded through the users' code path),
generated audio in several formats and rates, a deterministic fake embedder, and a home,
caches and index of the suite's own, so that no test touches the user's.

Helpers reach tests as fixtures: ``tone``, ``noise``, ``write_audio``, ``tagged``,
``band_of``, ``one_hot``, ``fake_embedder_cls`` (and ``fake``, an instance),
``clustered_records`` and ``clustered_store`` each give the function or class of that name.
Code outside pytest's reach (worker processes, scripts run as processes, classes that workers
unpickle) imports the fake embedder from ``fakes``."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import soundfile as sf
from fakes import SR, FakeEmbedder
from fakes import band_of as fakes_band_of
from fakes import one_hot as fakes_one_hot

if TYPE_CHECKING:
    from musicsearch.store import Store, TrackRecord

# Where the user's files would go: the suite points every one of these at folders of its own.
HOME_DIRS = {
    "HOME": "home",
    "XDG_CACHE_HOME": "home/.cache",
    "XDG_CONFIG_HOME": "home/.config",
    "XDG_DATA_HOME": "home/.local/share",
    "XDG_STATE_HOME": "home/.local/state",
    "HF_HOME": "home/.cache/huggingface",
    "MUSICSEARCH_CACHE": "cache",
    "MUSICSEARCH_INDEX": "default-index",
}
# Read from the user's environment, they would change where files go or what a test sees.
CLEARED = ("HF_HUB_CACHE", "TRANSFORMERS_CACHE", "HF_ASSETS_CACHE", "MUSICSEARCH_NO_MODEL_CHECK")


def _isolate(mp: pytest.MonkeyPatch, root: Path) -> dict[str, Path]:
    """Point ``HOME_DIRS`` under ``root`` and clear ``CLEARED``; returns the folders by name."""
    dirs = {name: root / sub for name, sub in HOME_DIRS.items()}
    for name, folder in dirs.items():
        if name != "MUSICSEARCH_INDEX":  # an index folder that does not exist yet, as a user's
            folder.mkdir(parents=True, exist_ok=True)
        mp.setenv(name, str(folder))
    for name in CLEARED:
        mp.delenv(name, raising=False)
    return dirs


# The whole session is isolated as soon as this file is imported, before any test module or
# package conftest (tests/cli/conftest.py, ...) imports musicsearch: some paths are resolved when
# a module is imported (``musicsearch.config.DEFAULT_INDEX_DIR``, huggingface_hub's cache), and
# pytest imports the conftests of the paths it is given before ``pytest_configure`` runs.
# Module- and session-scoped fixtures, worker processes and the commands tests run as processes
# all see it.
_SESSION_ROOT = Path(tempfile.mkdtemp(prefix="musicsearch-tests-"))
_SESSION_PATCH = pytest.MonkeyPatch()
_isolate(_SESSION_PATCH, _SESSION_ROOT)


def pytest_unconfigure(config: pytest.Config) -> None:
    _SESSION_PATCH.undo()
    shutil.rmtree(_SESSION_ROOT, ignore_errors=True)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Each test gets a home, XDG folders, Hugging Face home, model cache (prepared ONNX
    graphs) and default index of its own, never the user's; returns them by variable name."""
    return _isolate(monkeypatch, tmp_path_factory.mktemp("home"))


@pytest.fixture
def prepared_cache(isolated_home: dict[str, Path]) -> Path:
    """This test's model cache (``MUSICSEARCH_CACHE``)."""
    return isolated_home["MUSICSEARCH_CACHE"]


@pytest.fixture(autouse=True)
def no_small_run_shortcuts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small test runs exercise the decode worker processes too (a user's small run decodes in
    threads: tests/indexing/test_feed.py checks that policy with its real threshold)."""
    import musicsearch.indexing.feed

    monkeypatch.setattr(musicsearch.indexing.feed, "SMALL_RUN_WINDOWS", 0)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from musicsearch.randmodel import build_random_clap

    return build_random_clap(tmp_path_factory.mktemp("models") / "tiny-clap", "tiny", seed=0)


def _tone(freq: float, seconds: float, sr: int = SR, amp: float = 0.3, channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def _noise(seconds: float, sr: int = SR, amp: float = 0.2, seed: int = 0) -> np.ndarray:
    return (amp * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


def _write_audio(path: Path, data: np.ndarray, sr: int = SR) -> Path:
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


def _tagged(path: Path, **tags: str) -> Path:
    import mutagen

    f = mutagen.File(path, easy=True)
    for key, value in tags.items():
        f[key] = value
    f.save()
    return path


def _clustered_records(lo: int, hi: int, dim: int = 32, seed: int = 0, gaps: bool = False) -> list[TrackRecord]:
    """Tracks ``lo``..``hi``-1 of 3 windows around 40 shared centres (clusters for an IVF index):
    year 1000 + i % 100, duration 30 s. With ``gaps``: every 50th year and every 97th duration
    unknown, duration 30 + i % 7 s, genre jazz for every third track and rock otherwise."""
    from musicsearch.store import TrackRecord

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


def _clustered_store(path: Path, n: int = 2000, dim: int = 32, gaps: bool = False) -> Store:
    """A store of ``clustered_records(0, n)``."""
    from musicsearch.store import IndexMeta, Store

    s = Store(path, create=True)
    s.record_meta(IndexMeta.new("m", None, dim, 10.0, checked=False))
    with s.write():
        s.add_tracks(_clustered_records(0, n, dim, gaps=gaps), "now")
    return s


# The helpers as fixtures (session-scoped, so module-scoped fixtures can take them too).


@pytest.fixture(scope="session")
def tone() -> Callable[..., np.ndarray]:
    """``tone(freq, seconds, sr=48000, amp=0.3, channels=1)``: a float32 sine."""
    return _tone


@pytest.fixture(scope="session")
def noise() -> Callable[..., np.ndarray]:
    """``noise(seconds, sr=48000, amp=0.2, seed=0)``: float32 Gaussian noise."""
    return _noise


@pytest.fixture(scope="session")
def write_audio() -> Callable[..., Path]:
    """``write_audio(path, data, sr=48000) -> path``; the extension picks the format."""
    return _write_audio


@pytest.fixture(scope="session")
def tagged() -> Callable[..., Path]:
    """``tagged(path, **tags) -> path``: sets easy mutagen tags (title, artist, genre, date...)."""
    return _tagged


@pytest.fixture(scope="session")
def band_of() -> Callable[[float], int]:
    """The fake embedder's band of a frequency."""
    return fakes_band_of


@pytest.fixture(scope="session")
def one_hot() -> Callable[[int], np.ndarray]:
    """The fake embedder's unit vector of a band."""
    return fakes_one_hot


@pytest.fixture(scope="session")
def fake_embedder_cls() -> type[FakeEmbedder]:
    """The fake embedder's class, to build more of them or subclass it in a test."""
    return FakeEmbedder


@pytest.fixture
def fake() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def clustered_records() -> Callable[..., list[TrackRecord]]:
    """``clustered_records(lo, hi, dim=32, seed=0, gaps=False)``: see ``_clustered_records``."""
    return _clustered_records


@pytest.fixture(scope="session")
def clustered_store() -> Callable[..., Store]:
    """``clustered_store(path, n=2000, dim=32, gaps=False)``: a store of clustered records."""
    return _clustered_store


def _make_library(root: Path) -> Path:
    _write_audio(root / "low" / "t150.wav", _tone(150, 25, 44_100), 44_100)
    _write_audio(root / "mid" / "t600.flac", _tone(600, 12, 48_000, channels=2), 48_000)
    _write_audio(root / "mid" / "t1200.ogg", _tone(1200, 4, 22_050), 22_050)
    _write_audio(root / "high" / "t2400.wav", _tone(2400, 15, 96_000), 96_000)
    return root


def _make_catalog(root: Path) -> Path:
    freqs = [150, 600, 1200, 2400]
    for i in range(20):
        genre = "Jazz" if i < 10 else "Rock"
        folder = root / genre.lower()
        p = _write_audio(folder / f"song{i:02d}.flac", _tone(freqs[i % 4], 5 + i))
        _tagged(
            p,
            title=f"Song {i:02d}",
            artist="Ann Arbor" if i % 2 else "Bob Beat",
            album=f"{genre} Album",
            genre=genre,
            date=str(1990 + i if i < 10 else 2000 + i),
        )
    return root


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The generated folders, made once a session; each test gets a copy of its own."""
    base = tmp_path_factory.mktemp("templates")
    return {"lib": _make_library(base / "lib"), "catalog": _make_catalog(base / "catalog")}


@pytest.fixture
def library(tmp_path: Path, _templates: dict[str, Path]) -> Path:
    """A small library: tones at distinct frequencies in several formats and rates."""
    return Path(shutil.copytree(_templates["lib"], tmp_path / "lib"))


@pytest.fixture
def catalog(tmp_path: Path, _templates: dict[str, Path]) -> Path:
    """Twenty tagged FLAC tones: ten 'Jazz' (1990s) and ten 'Rock' (2000s), two artists,
    durations 5-24 s, in two folders; frequencies cycle over four bands."""
    return Path(shutil.copytree(_templates["catalog"], tmp_path / "catalog"))
