from musicsearch.clap import ClapEmbedder

CHILD_CASES = """
import logging, os, sys, time
import musicsearch.clap as clap
import musicsearch.text_child as text_child
import musicsearch.onnx_towers as towers
from musicsearch.errors import ModelLoadError
logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="WARNING %(message)s")
model, root = sys.argv[1], sys.argv[2]

def case(name, **patches):
    os.environ["MUSICSEARCH_CACHE"] = os.path.join(root, name)
    saved = {k: getattr(towers if hasattr(towers, k) else text_child, k) for k in patches}
    for k, v in patches.items():
        setattr(towers if hasattr(towers, k) else text_child, k, v)
    e = clap.ClapEmbedder(model, device="cpu")
    started = e.start_text_preparation()
    again = e.start_text_preparation()
    try:
        print(name, started, again, e.text_preparing(), *e.prepare_text_onnx(), e.text_prepared(), os.getpid())
    except ModelLoadError as exc:
        print(name, started, again, "error", exc, e.text_prepared(), e.prepared.has(towers.ONNX_FILE))
    print(name, "tmp left", list(e.prepared.folder.glob("tmp-*")))
    for k, v in saved.items():
        setattr(towers if hasattr(towers, k) else text_child, k, v)

def export_reporting_gc(*args):  # what the child's collector looked like during an export
    import gc
    return float(gc.get_freeze_count() > 0), "int8" if not gc.isenabled() else "fp32"

case("gc", export_text_tower=export_reporting_gc)
case("fallback", MIN_COSINE_INT8=1.01)
case("dies", export_text_tower=lambda *args: os._exit(3))
case("hangs", export_text_tower=lambda *args: time.sleep(120), TEXT_CHILD_TIMEOUT_S=1.0)
case("refused", MIN_COSINE=1.01, MIN_COSINE_INT8=1.01)
e = clap.ClapEmbedder(model, device="cpu")
sys.modules["grpc"] = sys  # a process with gRPC threads is not forked
print("grpc", e.start_text_preparation(), e.text_preparing())
"""


def test_the_text_tower_prepared_in_a_child_process_and_its_failures(tmp_path, tiny_model):
    """In a clean process (this one may run Ray's threads): the child's result and WARNINGs
    reach the parent; a child that dies, hangs or disagrees leaves queries on torch with
    nothing installed; a process with gRPC loaded is not forked (said at WARNING)."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", CHILD_CASES, str(tiny_model), str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    out = run.stdout.splitlines()
    assert run.returncode == 0, run.stderr[-2000:]
    line = {w.split()[0]: w for w in out if not w.startswith("WARNING") and "tmp left" not in w}
    fallback = line["fallback"].split()
    assert fallback[1:4] == ["True", "False", "True"] and fallback[5] == "fp32" and fallback[6] == "True"
    assert float(fallback[4]) >= 0.9999 and any("strays from torch" in w for w in out if w.startswith("WARNING"))
    assert "died (exit code 3); queries stay on torch False False" in line["dies"]
    assert "took over 1 s and was stopped (exit code -9)" in line["hangs"] and line["hangs"].endswith("False False")
    assert "text tower disagrees" in line["refused"] and line["refused"].endswith("False False")
    assert all(w.endswith("tmp left []") for w in out if "tmp left" in w)
    assert line["grpc"] == "grpc False False" and any("grpc loaded" in w for w in out)
    # the child froze what it inherited, and its export ran with the collector deferred
    assert line["gc"].split()[1:6] == ["True", "False", "True", "1.0", "int8"]


def test_a_process_with_other_threads_is_not_forked(tiny_model, caplog):
    import threading

    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        e = ClapEmbedder(str(tiny_model), device="cpu")
        with caplog.at_level("WARNING"):
            assert not e.start_text_preparation() and not e.text_preparing()
        assert "prepared after the run, not beside it (forking this process is unsafe" in caplog.text
    finally:
        stop.set()
        thread.join()


def test_the_progress_redraw_thread_does_not_stop_the_fork():
    """In a clean process: the command's progress redraws (a QuietThread) leave forking possible;
    a plain thread beside them does not."""
    import subprocess
    import sys

    script = """
import threading
from musicsearch.process import QuietThread
from musicsearch.text_child import TextJob
import musicsearch.cli.output  # its fork hook holds the redraws' lock across a fork
stop = threading.Event()
QuietThread(target=stop.wait, daemon=True).start()
print(TextJob.possible())
threading.Thread(target=stop.wait, daemon=True).start()
print(TextJob.possible())
stop.set()
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["True", "False"]
    assert "forking this process is unsafe: 2 threads" in run.stderr  # the quiet one not counted
