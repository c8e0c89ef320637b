"""The process-wide tweaks: each changes process state only while an owner has switched them
on (the command, the server, the forked text child), and what each does then."""

import gc
import os
import subprocess
import sys
import threading

import pytest
import soundfile as sf

from musicsearch import process
from musicsearch.audio import iter_windows
from musicsearch.errors import DecodeError


def test_switched_on_nests_and_restores():
    assert not process.is_on()
    with process.switched_on():
        assert process.is_on()
        with process.switched_on():
            assert process.is_on()
        assert process.is_on()
    assert not process.is_on()
    with pytest.raises(RuntimeError), process.switched_on():
        raise RuntimeError
    assert not process.is_on()


def test_the_command_switches_the_tweaks_on_while_it_runs(monkeypatch):
    import musicsearch.cli

    seen = []
    monkeypatch.setattr(musicsearch.cli, "app", lambda: seen.append(process.is_on()))
    gc.unfreeze()
    try:
        musicsearch.cli.main()
        assert seen == [True] and not process.is_on() and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


# collector --------------------------------------------------------------------------------


def test_collection_deferred_changes_nothing_unless_switched_on():
    assert gc.isenabled()
    with process.collection_deferred():
        assert gc.isenabled()
    assert gc.isenabled()


def test_collection_deferred_restores_the_collector_and_nests():
    with process.switched_on():
        assert gc.isenabled()
        with process.collection_deferred():
            assert not gc.isenabled()
            with process.collection_deferred():
                assert not gc.isenabled()
            assert not gc.isenabled()  # the inner window leaves it to the outer one
            assert gc.collect() >= 0  # an explicit collection still runs
        assert gc.isenabled()
        with pytest.raises(RuntimeError), process.collection_deferred():
            raise RuntimeError("export failed")
        assert gc.isenabled()
        gc.disable()
        try:
            with process.collection_deferred():
                pass
            assert not gc.isenabled()  # off before, off after
        finally:
            gc.enable()


# pandas and sqlite-utils ------------------------------------------------------------------


def run(script: str) -> list[str]:
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.splitlines()


def test_sqlite_utils_loads_without_pandas_and_pandas_still_imports_after():
    pytest.importorskip("pandas", reason="pandas is not installed (it comes with the ray extra)")
    script = """
import sys
from musicsearch.process import switched_on
from musicsearch.store.migrations import import_sqlite_utils
with switched_on():
    import_sqlite_utils()
import sqlite_utils.db
print("pandas" in sys.modules, sqlite_utils.db.pd)
import pandas
print(pandas.Timestamp is not None, sys.modules["pandas"] is pandas)
"""
    assert run(script) == ["False None", "True True"]


def test_sqlite_utils_loads_pandas_unless_switched_on():
    pytest.importorskip("pandas", reason="pandas is not installed (it comes with the ray extra)")
    script = """
import sys
from musicsearch.store.migrations import import_sqlite_utils
import_sqlite_utils()
import sqlite_utils.db
print(sqlite_utils.db.pd is sys.modules["pandas"])
"""
    assert run(script) == ["True"]


def test_other_threads_leaves_out_quiet_threads_only():
    stop = threading.Event()
    before = process.other_threads()
    quiet = process.QuietThread(target=stop.wait, daemon=True)
    plain = threading.Thread(target=stop.wait, daemon=True)
    quiet.start()
    assert process.other_threads() == before
    plain.start()
    assert process.other_threads() == before + 1
    stop.set()
    quiet.join()
    plain.join()


def test_sqlite_utils_beside_the_progress_redraws_still_loads_without_pandas():
    pytest.importorskip("pandas", reason="pandas is not installed (it comes with the ray extra)")
    script = """
import sys, threading
from musicsearch.process import QuietThread, switched_on
from musicsearch.store.migrations import import_sqlite_utils
stop = threading.Event()
thread = QuietThread(target=stop.wait)
thread.start()
with switched_on():
    import_sqlite_utils()
stop.set()
thread.join()
import sqlite_utils.db
print(sqlite_utils.db.pd)
"""
    assert run(script) == ["None"]


def test_sqlite_utils_beside_another_thread_loads_with_pandas():
    """Another thread could import pandas while it is hidden: then nothing is hidden."""
    pytest.importorskip("pandas", reason="pandas is not installed (it comes with the ray extra)")
    script = """
import sys, threading
from musicsearch.process import switched_on
from musicsearch.store.migrations import import_sqlite_utils
stop = threading.Event()
thread = threading.Thread(target=stop.wait)
thread.start()
with switched_on():
    import_sqlite_utils()
stop.set()
thread.join()
import sqlite_utils.db
print(sqlite_utils.db.pd is sys.modules["pandas"])
"""
    assert run(script) == ["True"]


def test_sqlite_utils_after_pandas_keeps_pandas():
    pytest.importorskip("pandas", reason="pandas is not installed (it comes with the ray extra)")
    script = """
import pandas
from musicsearch.process import switched_on
from musicsearch.store.migrations import import_sqlite_utils
with switched_on():
    import_sqlite_utils()
import sqlite_utils.db
print(sqlite_utils.db.pd is pandas)
"""
    assert run(script) == ["True"]


# stderr -----------------------------------------------------------------------------------

REASON = (
    "soundfile: not a format libsndfile reads; "
    "PyAV: not audio, or a format FFmpeg cannot read (Invalid data found when processing input)"
)


def test_mp3_decoder_noise_is_kept_off_stderr(tmp_path, capfd):
    junk = tmp_path / "broken.mp3"
    junk.write_bytes(b"this is not audio " * 20)
    with pytest.raises(sf.LibsndfileError):  # power: libsndfile's MP3 decoder does print it
        sf.SoundFile(str(junk))
    assert "Illegal Audio-MPEG-Header" in capfd.readouterr().err

    with process.switched_on(), pytest.raises(DecodeError) as err:
        list(iter_windows(junk, 10.0, 6))
    assert capfd.readouterr().err == ""
    assert err.value.reason == REASON


def test_stderr_is_left_alone_unless_switched_on(tmp_path, capfd):
    junk = tmp_path / "broken.mp3"
    junk.write_bytes(b"this is not audio " * 20)
    with pytest.raises(DecodeError) as err:
        list(iter_windows(junk, 10.0, 6))
    assert "Illegal Audio-MPEG-Header" in capfd.readouterr().err
    assert err.value.reason == REASON


def test_other_stderr_output_survives_the_muffle(capfd):
    with process.switched_on():
        for n in (50, 60):  # twice: the sink is reused
            with process.quiet_stderr(), process.quiet_stderr():  # nested (as concurrent decode threads are)
                os.write(2, f"Note: Illegal Audio-MPEG-Header 0x00000000 at offset 356.\nprogress {n}%\n".encode())
            assert capfd.readouterr().err == f"progress {n}%\n"
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


# processes of musicsearch's own ------------------------------------------------------------


def test_a_child_process_switches_the_tweaks_on_for_itself():
    script = """
from musicsearch import process
before = process.is_on()
process.own_child_process()
print(before, process.is_on())
"""
    assert run(script) == ["False True"]


def test_a_decode_worker_switches_the_tweaks_on_for_itself(monkeypatch):
    import pickle
    import signal

    from musicsearch.indexing.feed import _worker_main

    class Pipe:
        def __init__(self):
            self.sent = []

        def send(self, message):
            self.sent.append(message)

        def recv(self):
            return None  # no file: the worker ends

    monkeypatch.setattr(process, "_on", False)  # restored after the test, as the worker's process ends
    handler = signal.getsignal(signal.SIGINT)
    pipe = Pipe()
    try:
        _worker_main(pipe, pickle.dumps(None), None)
    finally:
        signal.signal(signal.SIGINT, handler)
    assert pipe.sent[0][0] == "ready" and process.is_on()
