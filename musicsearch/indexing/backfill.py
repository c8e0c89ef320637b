"""Tempo and key for tracks indexed before the analysis existed: an index run decodes each
such track under its folder once more, for the analysis only (its vectors stay as they
are), in threads; the one decode an index run makes besides the embeddings', and only once
per track (``tracks.analysed`` records it, also where the file could not be decoded)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from ..analysis import analyse_file, musical_of
from ..errors import DecodeError
from ..store import Musical, Store
from ..tags import read_tags

log = logging.getLogger(__name__)

BATCH = 64  # tracks analysed per write


def _analyse(path: str, window_seconds: float, max_windows: int | None) -> Musical:
    """The stored tempo, key and energy of ``path``: its tags win over the estimates."""
    tags = read_tags(path)
    tag_values = {"bpm": tags.bpm, "key": tags.key}
    try:
        estimate = analyse_file(Path(path), window_seconds, max_windows)
    except DecodeError as exc:  # recorded as analysed all the same: not tried again every run
        log.warning("%s: tempo and key not analysed (%s)", path, exc.reason)
        estimate = None
    musical = musical_of(tag_values, estimate)
    return musical if musical.analysed is not None else replace(musical, analysed=0)


def analyse_missing(store: Store, root: Path, window_seconds: float, max_windows: int | None, workers: int) -> int:
    """Analyse the tracks at or below ``root`` that have vectors but no analysis (indexes built
    before it); returns how many."""
    todo = store.unanalysed_under(root)
    if not todo:
        return 0
    log.info("analysing tempo and key of %d tracks indexed before the analysis existed", len(todo))
    done = 0
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="analyse") as pool:
        for i in range(0, len(todo), BATCH):
            part = todo[i : i + BATCH]
            results = list(pool.map(lambda t: _analyse(t[1], window_seconds, max_windows), part))
            with store.write(vectors=False):
                for (track_id, _), musical in zip(part, results):
                    store.set_musical(track_id, musical)
            done += len(part)
    return done
