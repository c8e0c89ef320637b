"""The feed (musicsearch/indexing/feed.py): each file's header read once; a small run decodes
in threads and a large one in worker processes; in worker processes the same windows and
vectors as one worker, failures and hard crashes of a worker recorded per file, Ctrl-C
leaves whole tracks and no live worker, memory bounded by a queue; the log-mel computed
where decoding runs; truncated files indexed with a warning. The embedders here are
module-level classes, so the workers can import them (tests/ is on sys.path, which the
workers inherit)."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeEmbedder  # a base for module-level classes, which the workers unpickle

from musicsearch import MusicIndex, Settings
from musicsearch.events import quiet
from musicsearch.library import AudioFile

MARK = 0.77  # amplitude of the tone that makes a worker die


class Crashes(FakeEmbedder):
    """Dies hard in the worker on a window of the marked file: os._exit, or a segfault."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    def prepare(self, waves):
        if abs(float(np.abs(waves).max()) - MARK) < 1e-3:
            if self.how == "exit":
                os._exit(3)
            os.kill(os.getpid(), signal.SIGSEGV)
        return super().prepare(waves)


class Dies(FakeEmbedder):
    """Ctrl-C during the fourth model call (after three committed batches)."""

    def embed(self, waves):
        if self.calls == 3:
            raise KeyboardInterrupt
        return super().embed(waves)


class Counts(FakeEmbedder):
    """Logs each window prepared (in the workers) and each batch embedded (here) to one file,
    with O_APPEND writes, so the order of events across processes can be replayed."""

    def __init__(self, log_path: Path) -> None:
        super().__init__()
        self.log_path = str(log_path)

    def _log(self, line: str) -> None:
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def prepare(self, waves):
        self._log(f"p {os.getpid()}")
        return super().prepare(waves)

    def embed(self, waves):
        self._log(f"e {len(waves)}")
        import time

        time.sleep(0.02)  # a slow model: the workers would run far ahead without a bound
        return super().embed(waves)


class Unloadable(FakeEmbedder):
    """Cannot be unpickled in another process (as a class defined in a `-c` script)."""

    def __init__(self) -> None:
        super().__init__()
        self.owner = os.getpid()

    def __setstate__(self, state):
        if state["owner"] != os.getpid():
            raise ImportError("cannot import this embedder here")
        self.__dict__.update(state)


class CountsHeaders(FakeEmbedder):
    """Logs each mutagen read (``mutagen.File``) to one file with the reading process's id,
    wherever it runs: here, or in a worker that unpickled this embedder."""

    def __init__(self, log_path: Path) -> None:
        super().__init__()
        self.log_path = str(log_path)
        self._count_reads()

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._count_reads()

    def _count_reads(self) -> None:
        import mutagen

        real = getattr(mutagen.File, "__wrapped__", mutagen.File)
        log_path = self.log_path

        def counted(path, *args, **kwargs):
            with open(log_path, "a") as f:
                f.write(f"{os.getpid()}\t{path}\n")
            return real(path, *args, **kwargs)

        counted.__wrapped__ = real
        mutagen.File = counted


def _descendants() -> set[int]:
    """Live descendant processes of this one (from /proc), less multiprocessing's helpers
    that live as long as this process (the fork server, the resource tracker)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents[int(entry)] = int(fields[1])
    found, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    from multiprocessing import forkserver, resource_tracker

    helpers = {getattr(forkserver._forkserver, "_forkserver_pid", None), resource_tracker._resource_tracker._pid}
    return found - helpers


def contents(idx: MusicIndex) -> dict[str, tuple[list[tuple[float, float]], np.ndarray]]:
    store = idx.context.store()
    ids, _ = store.track_vectors()
    out = {}
    for tid, track in store.tracks(int(i) for i in ids).items():
        starts, ends, vectors = store.window_vectors([tid])[tid]
        out[Path(track.path).name] = (list(zip(starts, ends)), vectors)
    return out


def disk(path: Path, data: bytes) -> AudioFile:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    st = path.stat()
    return AudioFile(path, st.st_size, st.st_mtime_ns)


def test_windows_and_vectors_equal_with_one_and_two_workers(tmp_path, library, fake, caplog, fake_embedder_cls):
    caplog.set_level(logging.WARNING, "musicsearch")
    one = MusicIndex(tmp_path / "one", settings=Settings(workers=1, batch_size=3), embedder=fake_embedder_cls())
    two = MusicIndex(tmp_path / "two", settings=Settings(workers=2, batch_size=3), embedder=fake_embedder_cls())
    assert one.index(library).windows == two.index(library).windows == 8
    assert not caplog.records  # both decoded in worker processes (no fallback to threads)
    a, b = contents(one), contents(two)
    assert sorted(a) == sorted(b) == ["t1200.ogg", "t150.wav", "t2400.wav", "t600.flac"]
    for name in a:
        assert a[name][0] == b[name][0]
        np.testing.assert_array_equal(a[name][1], b[name][1])
    assert a["t150.wav"][0] == [(0.0, 10.0), (10.0, 20.0), (15.0, 25.0)]


def test_tiny_model_mel_in_workers_equals_in_process(tmp_path, library, tiny_model, caplog):
    from musicsearch.audio import iter_windows
    from musicsearch.clap import ClapEmbedder

    caplog.set_level(logging.WARNING, "musicsearch")
    runs = {}
    for n in (1, 2):
        settings = Settings(
            model=str(tiny_model), device="cpu", model_check=False, fast_queries=False, full=True, workers=n
        )
        idx = MusicIndex(tmp_path / f"idx{n}", settings=settings)
        assert not idx.index(library).failed
        runs[n] = contents(idx)
    assert not caplog.records
    reference = ClapEmbedder(str(tiny_model), device="cpu")
    for name, (spans, vectors) in runs[1].items():
        assert spans == runs[2][name][0]
        np.testing.assert_allclose(vectors, runs[2][name][1], atol=1e-6)
        path = next(library.rglob(name))
        expected = reference.embed(reference.prepare(np.stack([w.samples for w in iter_windows(path)])))
        assert (np.sum(vectors * expected, axis=1) >= 0.9999).all()


@pytest.mark.parametrize("onnx_audio", [False, True])
def test_cpu_index_computes_mel_in_decode_threads_with_equal_vectors(tmp_path, library, tiny_model, onnx_audio):
    from musicsearch.audio import iter_windows
    from musicsearch.clap import ClapEmbedder

    embedder = ClapEmbedder(str(tiny_model), device="cpu")
    assert embedder.prepare(np.zeros((1, 480_000), np.float32)).shape == (1, 1, 1001, 64)  # the mel, in the workers
    idx = MusicIndex(
        tmp_path / "idx",
        settings=Settings(
            model=str(tiny_model),
            device="cpu",
            model_check=False,
            fast_queries=False,
            onnx_audio=onnx_audio,
            full=True,
            batch_size=3,
        ),
    )
    report = idx.index(library)
    assert not report.failed
    store = idx.context.store()
    reference = ClapEmbedder(str(tiny_model), device="cpu")
    ids, _ = store.track_vectors()
    tracks = store.tracks(int(i) for i in ids)
    assert sorted(t.path for t in tracks.values()) == sorted(report.added)
    for tid, track in tracks.items():
        path = track.path
        _, _, stored = store.window_vectors([tid])[tid]
        expected = reference.embed_windows(np.stack([w.samples for w in iter_windows(path)]))
        assert stored.shape == expected.shape
        assert (np.sum(stored * expected, axis=1) >= 0.9999).all()


def test_unpicklable_embedder_decodes_in_threads(tmp_path, library, caplog, fake_embedder_cls):
    class Local(fake_embedder_cls):  # a local class cannot be pickled
        pass

    idx = MusicIndex(tmp_path / "idx", settings=Settings(workers=2), embedder=Local())
    with caplog.at_level(logging.WARNING, "musicsearch"):
        assert len(idx.index(library).added) == 4
    assert any("decoding in threads" in r.getMessage() for r in caplog.records)


def test_embedder_that_workers_cannot_load_decodes_in_threads(tmp_path, library, caplog):
    idx = MusicIndex(tmp_path / "idx", settings=Settings(workers=2), embedder=Unloadable())
    with caplog.at_level(logging.WARNING, "musicsearch"):
        assert len(idx.index(library).added) == 4
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "could not start (ImportError: cannot import this embedder here)" in warning
    assert "decoding in threads" in warning


@pytest.mark.parametrize(
    "how,reason",
    [
        ("exit", "decoder crashed (worker process exit code 3)"),
        ("segv", "decoder crashed (worker process killed by signal SIGSEGV)"),
    ],
)
def test_a_worker_that_dies_fails_its_file_and_the_run_goes_on(tmp_path, library, how, reason, write_audio, tone):
    write_audio(library / "crash" / "boom.wav", np.concatenate([tone(300, 12), tone(300, 12, amp=MARK)]))
    (library / "junk.mp3").write_bytes(b"not audio " * 100)
    idx = MusicIndex(tmp_path / "idx", settings=Settings(workers=2, batch_size=2), embedder=Crashes(how))
    report = idx.index(library)
    assert sorted(Path(p).name for p in report.added) == ["t1200.ogg", "t150.wav", "t2400.wav", "t600.flac"]
    failed = {Path(p).name: why for p, why in report.failed}
    assert failed["boom.wav"] == reason
    assert sorted(failed) == ["boom.wav", "junk.mp3"]
    assert (idx.info().tracks, idx.info().windows, idx.info().failures) == (4, 8, 2)
    assert not _descendants()


def test_ctrl_c_leaves_whole_tracks_no_live_workers_and_resumes(tmp_path, fake, write_audio, tone):
    root = tmp_path / "lib"
    freqs = [150, 300, 600, 1200, 2400, 4000]
    for f in freqs:  # one window each: a worker sends a file's end before its next window
        write_audio(root / f"t{f}.wav", tone(f, 5))
    write_audio(root / "z-long.wav", tone(800, 30))  # 3 windows
    idx = MusicIndex(tmp_path / "idx", settings=Settings(workers=2, batch_size=2), embedder=Dies())
    with pytest.raises(KeyboardInterrupt):
        idx.index(root)
    assert not _descendants()  # every worker stopped and reaped
    partial = idx.info()
    # what the three committed batches (6 windows) completed: the long file (3 windows) is
    # decoded first, so at least 3 of the windows are one-window files, 2 of them whole
    assert 1 <= partial.tracks <= 6
    rows = (
        idx.context.store()
        .db.execute("select n_windows, (select count(*) from windows w where w.track_id = t.id) from tracks t")
        .fetchall()
    )
    assert all(n == m > 0 for n, m in rows)  # only whole tracks
    again = MusicIndex(tmp_path / "idx", settings=Settings(workers=2, batch_size=2), embedder=fake)
    report = again.index(root)
    assert report.unchanged == partial.tracks and len(report.added) == 7 - partial.tracks
    assert (again.info().tracks, again.info().windows) == (7, 9)
    assert again.search("4000 hz", k=1)[0].track.title == "t4000"


def test_a_long_file_streams_through_a_bounded_queue(tmp_path, write_audio, noise, tone):
    root = tmp_path / "lib"
    write_audio(root / "long.flac", noise(600, amp=0.1))  # 60 windows
    write_audio(root / "short.wav", tone(440, 30))  # 3 windows
    log_path = tmp_path / "events.log"
    batch, workers = 2, 2
    idx = MusicIndex(
        tmp_path / "idx", settings=Settings(workers=workers, batch_size=batch, full=True), embedder=Counts(log_path)
    )
    assert idx.index(root).windows == 63
    lines = log_path.read_text().split()
    produced = consumed = ahead = 0
    pids = set()
    for kind, value in zip(lines[::2], lines[1::2]):
        if kind == "p":
            produced += 1
            pids.add(value)
        else:
            consumed += int(value)
        ahead = max(ahead, produced - consumed)
    assert (produced, consumed) == (63, 63)
    assert os.getpid() not in {int(p) for p in pids} and len(pids) >= 1  # prepared in worker processes
    # queue (2 batches + 1 per worker) + the batch being built + one window held per worker
    # and one by the reader; without the bound the workers would run ~60 windows ahead
    assert ahead <= 3 * batch + 2 * workers + 1


def test_a_truncated_file_is_indexed_with_a_warning(tmp_path, fake, write_audio, noise):
    root = tmp_path / "lib"
    whole = write_audio(root / "whole.ogg", noise(60, seed=1))
    cut = root / "cut.ogg"
    cut.write_bytes(whole.read_bytes()[:20_000])  # a download that stopped early
    idx = MusicIndex(tmp_path / "idx", settings=Settings(), embedder=fake)
    report = idx.index(root)
    assert sorted(Path(p).name for p in report.added) == ["cut.ogg", "whole.ogg"]
    assert [(Path(p).name, "truncated?" in w) for p, w in report.warnings] == [("cut.ogg", True)]
    assert idx.warnings() == report.warnings and idx.failures() == []


def test_a_small_run_decodes_in_threads_and_a_large_one_in_processes(tmp_path, monkeypatch, fake_embedder_cls):
    import musicsearch.indexing.feed as feed

    monkeypatch.setattr(feed, "SMALL_RUN_WINDOWS", 64)  # the real policy

    files = [disk(tmp_path / f"f{i}.wav", b"x") for i in range(40)]
    small = feed.open_feed(fake_embedder_cls(), files[:5], {}, 1, 2, 8)
    large = feed.open_feed(fake_embedder_cls(), files, {}, 6, 2, 8)
    try:
        assert isinstance(small, feed.ThreadFeed) and isinstance(large, feed.ProcessFeed)
    finally:
        small.close()
        large.close()


def test_small_run_counts_windows_from_headers_not_files(tmp_path, monkeypatch):
    """One 11-minute file is 66 windows when whole tracks are embedded: not small, although it
    is one file (it used to count as 18 windows and decode in a thread)."""
    import soundfile as sf

    import musicsearch.indexing.feed as feed

    monkeypatch.setattr(feed, "SMALL_RUN_WINDOWS", 64)  # the real policy
    long = tmp_path / "long.wav"
    sf.write(long, np.zeros(660 * 8000, dtype=np.int16), 8000)  # silence, 11 min at 8 kHz
    st = long.stat()
    f = AudioFile(long, st.st_size, st.st_mtime_ns)
    assert feed.estimate_windows([f], 10.0, None) == 66
    assert not feed.small_run([f], 10.0, None)
    assert feed.small_run([f], 10.0, 18)  # the CPU window budget caps it
    unreadable = [disk(tmp_path / f"u{i}.wav", b"x") for i in range(4)]
    assert feed.small_run(unreadable[:3], 10.0, None)  # 3 x 18 = 54 windows assumed
    assert not feed.small_run(unreadable, 10.0, None)  # 4 x 18 = 72


@pytest.mark.parametrize("decode", ["threads", "processes"])
@pytest.mark.parametrize("listening", [False, True])
def test_each_header_is_read_once(tmp_path, library, monkeypatch, decode, listening):
    """Tags, the length for the estimates and the length for the truncation check come from
    one read of each header: here when the run estimates (a listener, or the small-run
    policy), the header then travelling with the file, else in the worker that decodes it."""
    import mutagen

    import musicsearch.indexing.feed as feed

    monkeypatch.setattr(mutagen, "File", mutagen.File)  # restored after the test
    if decode == "threads":
        monkeypatch.setattr(feed, "SMALL_RUN_WINDOWS", 64)  # the real policy: 8 windows decode in threads
    log_path = tmp_path / "reads.log"
    idx = MusicIndex(tmp_path / "idx", settings=Settings(workers=2), embedder=CountsHeaders(log_path))
    report = idx.index(library, on_event=(lambda e: None) if listening else quiet)
    assert len(report.added) == 4
    reads = [line.split("\t") for line in log_path.read_text().splitlines()]
    assert sorted(path for _, path in reads) == sorted(report.added)  # each file once
    here = {int(pid) == os.getpid() for pid, _ in reads}
    assert here == ({True} if listening or decode == "threads" else {False})
    assert idx.search("150 hz", k=1)[0].track.title == "t150"  # the tags came with the header


SCRIPT_HEAD = """\
import sys

import musicsearch.indexing.runner as runner
from fakes import FakeEmbedder
from musicsearch import MusicIndex

used = []
real_open_feed = runner.open_feed


def open_feed(*args, **kwargs):
    feed = real_open_feed(*args, **kwargs)
    used.append(type(feed).__name__)
    return feed


runner.open_feed = open_feed
"""
SCRIPT_BODY = """\
idx = MusicIndex(sys.argv[1], embedder=FakeEmbedder())
report = idx.index(sys.argv[2])
print(len(report.added), used, idx.search("a 600 Hz tone", k=1)[0].track.title)
"""


@pytest.mark.parametrize(
    "how, feed_class",
    [
        ("plain script", "ThreadFeed"),
        ("guarded script", "ProcessFeed"),
        pytest.param("-c", "ProcessFeed", marks=pytest.mark.slow),  # processes, as for the guarded script
        ("stdin", "ThreadFeed"),
    ],
)
def test_a_script_without_a_main_guard_decodes_in_threads_quietly(tmp_path, write_audio, tone, how, feed_class):
    """README's Python snippet run as a plain script (no ``if __name__ == "__main__":``): each
    worker process would run the script again (multiprocessing's forkserver and spawn run the
    main script in every process they start), so the run decodes in threads and nothing but
    its own output is printed (it used to print the worker's traceback and "a decode worker
    could not start"). Under the guard, or with no script (a REPL, a notebook, ``-c``),
    the same run decodes in worker processes. A script read from stdin has a ``__file__`` of
    ``<stdin>`` that workers would fail to run: threads."""
    import subprocess
    import sys

    for freq in (150, 600, 1200, 2400):  # 4 x 18 windows: too many for a small run
        write_audio(tmp_path / "lib" / f"t{freq}.wav", tone(freq, 180, 8000), 8000)
    if how == "plain script":
        source = SCRIPT_HEAD + SCRIPT_BODY
    else:
        body = "".join(f"    {line}\n" for line in SCRIPT_BODY.splitlines())
        source = SCRIPT_HEAD + '\n\nif __name__ == "__main__":\n' + body
    script = tmp_path / "search.py"
    script.write_text(source)
    tests = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    args = [str(tmp_path / "idx"), str(tmp_path / "lib")]
    if how == "stdin":
        cmd, stdin = [sys.executable, "-", *args], SCRIPT_HEAD + SCRIPT_BODY
    elif how == "-c":
        cmd, stdin = [sys.executable, "-c", SCRIPT_HEAD + SCRIPT_BODY, *args], ""
    else:
        cmd, stdin = [sys.executable, str(script), *args], ""
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout == f"4 ['{feed_class}'] t600\n"
