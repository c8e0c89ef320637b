"""The vectors stage: FAISS indexes derived from the store (this module owns FAISS).

SQLite (``store.py``) holds every vector; the FAISS files only make search fast and are
rebuilt from it whenever missing, stale or damaged. Each file is named after the store
generation it was built from (``tracks-g<N>.faiss``, ``windows-g<N>.faiss``), written to a
temp file, fsynced and renamed, so a reader finds the file of the current generation or
rebuilds it: a killed run never leaves a half-written or out-of-date index in use.

**The index is chosen by size** (``ScalePolicy``):

- up to ``exact_max`` vectors: an ``IndexIDMap2`` over ``IndexFlatIP`` keyed by int64 ids
  (track or window ids), exact. Files are memory-mapped when read (``IO_FLAG_MMAP_IFC``); an
  index read this way is read-only. It is rebuilt from SQLite when the generation moves.
- above it: an IVF index keyed by the same ids, ``IVF{4·sqrt(N)},PQ{dim/4}x4fsr`` (4-bit PQ
  fast-scan of the residuals, 64 bytes a 512-d vector; at most 2,048 lists for tracks, 1,024
  for windows), whose top candidates are re-ranked exactly against a float16 copy of the
  vectors read with ``preadv`` (the *sidecar*, read into the page cache by a background thread
  when an index is opened, ``prefetch``; ``<kind>-e<E>.f16`` with its ids in ``<kind>-e<E>.ids``
  and, for windows, each row's track id in ``<kind>-e<E>.own``; append-only). ``nprobe`` and
  the re-rank depth are tuned at build time against exact search on out-of-distribution
  queries (windows: the top 10 tracks by best window, as a search by window ranks them); the
  state (factory, nprobe, measured recall, sidecar rows in use) is ``<kind>-g<N>.json``,
  written last: a generation's IVF index is in use only when its JSON exists.

**Updated in place**: when the generation moves, an IVF index is brought forward with
``remove_ids``/``add_with_ids`` over the ids that the store's vector log
(``Store.changed_ids``) names, the new vectors appended to the sidecar (a crashed append is
cut off by the next one: each state records how many rows it uses). Only the state JSON is
written until the ids changed since the index file was last written exceed ``resave`` of the
index (a reader replays them onto that *base* file); then the whole file. It is retrained
(rebuilt) when the data has drifted: grown or shrunk ``drift`` times since training.

**Filters keep k** (``vector_search.search_vector`` picks the path; year and duration filters are
evaluated in numpy over ``Store.filter_columns``, others in SQLite): a broad filter (``>= 5 %``
of the tracks) keeps the unfiltered candidates whose track passes, before the re-rank;
a narrower one lists the matching ids: a small share is scanned exactly (windows: every
window of the matching tracks, which the sidecar lists by track), a larger one searched with
a bitmap selector and an ``nprobe`` grown with 1/selectivity, falling back to exact when
fewer than k come back.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import mmap
import os
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np

if TYPE_CHECKING:
    import faiss

    from .store import Store

log = logging.getLogger(__name__)

KINDS = ("tracks", "windows")

SearchResult = tuple[np.ndarray, np.ndarray]  # (ids int64, scores float32), best first
GATHER_ROWS = 1024  # sidecar rows read between two releases of their pages


@dataclass(frozen=True)
class ScalePolicy:
    """When an index turns approximate, and how it is built.

    Attributes:
        exact_max: the most vectors an exact (flat) index holds, per kind. Flat search costs
            ~0.13 ms per 1,000 512-d vectors on one core (13 ms at 100k, 144 ms at 1M); past
            150k tracks (20 ms) an IVF index answers in ~2 ms with R@10 >= 0.98.
        max_nlist: the most IVF lists, per kind (building costs nlist x N: assigning 6M windows
            to 2,048 lists took ~2 minutes on 2 cores; a 4-bit PQ list scans fast, so lists of
            ~500 tracks or ~6,000 windows at 1M tracks cost little per probe).
        rerank: candidates re-ranked exactly from the sidecar per query (at least; more for k > 10).
        target_recall: the R@10 the build-time nprobe tuning aims for.
        drift: retrain when the index has grown or shrunk this many times since training.
        resave: an in-place update writes the whole index file again only once the ids changed
            since it was last written exceed this share of the index (else only the state
            JSON, and a reader replays those changes: at 1M tracks the files are ~1 GB).
        exact_subset_max: a filter matching at most this share of the vectors is searched exactly.
        tune_queries: out-of-distribution queries used to tune nprobe (``ood_queries``).
        prefetch: an approximate index read from disk has its sidecar read into the page
            cache by a background thread (``prefetch``), when it takes at most this
            share of the memory available (0: never). At 1M tracks a cold page cache cost
            more than the search itself: every re-ranked row not cached is a disk read (window
            search p50 12.6 ms with 3.3 of the 7.2 GB of sidecars cached, 3.7 ms with all).
    """

    exact_max: dict[str, int] = field(default_factory=lambda: {"tracks": 150_000, "windows": 900_000})
    max_nlist: dict[str, int] = field(default_factory=lambda: {"tracks": 2048, "windows": 1024})
    rerank: dict[str, int] = field(default_factory=lambda: {"tracks": 128, "windows": 256})
    target_recall: float = 0.99
    drift: float = 4.0
    resave: float = 0.01
    exact_subset_max: float = 0.02
    tune_queries: int = 100
    seed: int = 0
    prefetch: float = 0.5


DEFAULT_POLICY = ScalePolicy()


def index_path(index_dir: Path, kind: str, generation: int) -> Path:
    """Where the ``kind`` index of store generation ``generation`` lives."""
    return Path(index_dir) / f"{kind}-g{generation}.faiss"


def state_path(index_dir: Path, kind: str, generation: int) -> Path:
    """The JSON that records an approximate index's state (absent for exact ones)."""
    return Path(index_dir) / f"{kind}-g{generation}.json"


def build(ids: np.ndarray, vectors: np.ndarray, dim: int) -> faiss.Index:
    """An ``IndexIDMap2`` over ``IndexFlatIP`` holding ``vectors`` (n, dim) under ``ids``."""
    import faiss

    index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
    return index


def _fsync_dir(folder: Path) -> None:
    try:  # make a rename durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _atomic_write(target: Path, write: object) -> None:
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)  # type: ignore[operator]
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def save(index: faiss.Index, target: Path) -> None:
    """Write ``index`` to ``target`` atomically: a temp file beside it, fsynced, renamed over
    ``target``, then the folder fsynced. A failure leaves no temp file and ``target`` as it was.

    Raises:
        OSError: the folder is not writable (or the disk is full).
    """
    import faiss

    _atomic_write(target, lambda tmp: faiss.write_index(index, tmp))


def load(path: Path, mmap: bool = True) -> faiss.Index:
    """Read the index at ``path``, memory-mapped when ``mmap`` and FAISS can (flat indexes,
    FAISS >= 1.11: ``IO_FLAG_MMAP_IFC``; the older ``IO_FLAG_MMAP`` maps only on-disk IVF lists
    and still copies a flat index into memory). A mapped index is read-only: never add to it.

    Raises:
        RuntimeError: the file is damaged or not a FAISS index (or another exception FAISS
            raises on garbage, such as MemoryError).
    """
    import faiss

    flag = getattr(faiss, "IO_FLAG_MMAP_IFC", None)
    if mmap and flag is not None:
        try:
            return faiss.read_index(str(path), flag | faiss.IO_FLAG_READ_ONLY)
        except Exception as exc:  # a file system without mmap: the plain read decides
            log.debug("memory-mapping %s failed (%s); reading it", path, exc)
    return faiss.read_index(str(path))


# state of an approximate index ---------------------------------------------------


@dataclass(frozen=True)
class IndexState:
    """What an index is (written as ``<kind>-g<N>.json`` beside an approximate one).

    ``family`` is ``exact`` or ``ivf``; ``recall_at_10`` was measured at build time against
    exact search on out-of-distribution queries (1.0 for exact indexes); ``sidecar``/``rows``:
    the float16 vectors file and how many of its rows this generation uses; ``base``: the
    generation whose index file this one starts from (0: its own), ``pending``: how many ids
    changed since that file was written.
    """

    kind: str
    generation: int
    family: str
    factory: str
    n: int
    dim: int
    nprobe: int = 0
    rerank: int = 0
    recall_at_10: float = 1.0
    trained_n: int = 0
    sidecar: str = ""
    rows: int = 0
    built_at: float = 0.0
    base: int = 0
    pending: int = 0

    @property
    def file_generation(self) -> int:
        """The generation whose ``.faiss`` file holds this index as it was then (``base``);
        the changes since are replayed from the vector log and the sidecar when it is read."""
        return self.base or self.generation

    def write(self, folder: Path) -> None:
        text = json.dumps(asdict(self), indent=1)
        _atomic_write(state_path(folder, self.kind, self.generation), lambda tmp: Path(tmp).write_text(text))

    @classmethod
    def read(cls, path: Path) -> IndexState | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            log.warning("cannot read %s (%s); the index will be rebuilt", path, exc)
            return None


# the float16 sidecar -------------------------------------------------------------


class Sidecar:
    """Append-only float16 vectors (``<stem>.f16``) and their int64 ids (``<stem>.ids``),
    memory-mapped, plus, for windows, each row's track id (``<stem>.own``, held in memory as
    int32); the first ``rows`` rows are in use. A re-embedded id appears twice: the later row
    wins.

    Ids map to rows through a dense int32 table (4 bytes per id up to the largest; ids are
    SQLite rowids, dense) instead of sorted copies of the ids (32 bytes per row, and a sort
    of every id each time a process opens the index or an update lands).

    A gather reads its rows with ``preadv`` (one call per run of consecutive rows, into the
    result's own memory): nothing of the sidecar stays resident, and at 1M tracks it cost
    2.3 us a row against 8-9 us for touching the memory-mapped rows (a minor page fault each,
    the kernel mapping 16 neighbouring pages around it, then ``MADV_DONTNEED`` to drop them,
    else a serving process would grow towards the sidecar's size, 6 GB at 6M windows). Where
    ``os.preadv`` is missing, the mapping is read that way instead."""

    def __init__(self, folder: Path, stem: str, dim: int, rows: int):
        self.folder, self.stem, self.dim, self.rows = Path(folder), stem, dim, rows
        vec_path, ids_path = self.paths(folder, stem)
        have = min(vec_path.stat().st_size // (2 * dim), ids_path.stat().st_size // 8) if rows else 0
        if have < rows:
            raise RuntimeError(f"{vec_path} holds {have} rows, the index uses {rows}")
        self.vectors: np.ndarray = np.zeros((0, dim), np.float16)
        self.ids: np.ndarray = np.zeros(0, np.int64)
        self.owners: np.ndarray | None = None
        self._mm: mmap.mmap | None = None
        self._fd = os.open(self.paths(folder, stem)[0], os.O_RDONLY) if hasattr(os, "preadv") else -1
        self._closer = weakref.finalize(self, os.close, self._fd) if self._fd >= 0 else None
        self._map = np.full(0, -1, np.int32)
        self._first = np.full(0, -1, np.int32)  # track id -> its windows' first row (owners only)
        self._count = np.zeros(0, np.int32)  # track id -> how many rows from there
        self._map_rows(rows)
        own = self.owners_path(folder, stem)
        if rows and own.exists() and own.stat().st_size >= rows * 8:
            self._extend_owners(0)
        ids = np.fromfile(ids_path, dtype=np.int64, count=rows)  # read, not mapped: no RSS kept
        self._extend_map(ids, 0)
        self._extend_tracks(ids, 0)
        del ids

    @staticmethod
    def paths(folder: Path, stem: str) -> tuple[Path, Path]:
        return Path(folder) / f"{stem}.f16", Path(folder) / f"{stem}.ids"

    @staticmethod
    def owners_path(folder: Path, stem: str) -> Path:
        return Path(folder) / f"{stem}.own"

    def _map_rows(self, rows: int) -> None:
        self.rows = rows
        vec_path, ids_path = self.paths(self.folder, self.stem)
        if rows:
            with open(vec_path, "rb") as f:
                self._mm = mmap.mmap(f.fileno(), rows * self.dim * 2, prot=mmap.PROT_READ)
            self.vectors = np.frombuffer(self._mm, dtype=np.float16).reshape(rows, self.dim)
            self.ids = np.memmap(ids_path, dtype=np.int64, mode="r", shape=(rows,))

    def _extend_owners(self, first_row: int) -> None:
        """Read the owners of rows ``first_row ..`` (int32 in memory: looked up at random)."""
        own_path = self.owners_path(self.folder, self.stem)
        if first_row and self.owners is None:
            return
        if not own_path.exists() or own_path.stat().st_size < self.rows * 8:
            self.owners = None
            return
        new = np.fromfile(own_path, dtype=np.int64, count=self.rows - first_row, offset=first_row * 8)
        if len(new) and (new.min() < 0 or new.max() >= 2**31 - 1):
            log.warning("%s: track ids out of range; windows are listed from SQLite", self.stem)
            self.owners = None
            return
        old = self.owners if self.owners is not None else np.zeros(0, np.int32)
        self.owners = np.concatenate([old[:first_row], new.astype(np.int32)])

    def release(self) -> None:
        """Drop the vectors' pages from this process's mapping (they stay in the page cache)."""
        if self._mm is not None:
            try:
                self._mm.madvise(mmap.MADV_DONTNEED)
            except (AttributeError, OSError, ValueError):  # no madvise here: pages stay mapped
                pass

    def _extend_map(self, ids: np.ndarray, first_row: int) -> None:
        """Rows ``first_row ..`` hold ``ids``: later rows win over earlier ones."""
        if not len(ids):
            return
        if ids.min() < 0:
            raise RuntimeError(f"{self.stem}: negative ids in the sidecar")
        top = int(ids.max())
        if top >= 2**31 - 1 or first_row + len(ids) >= 2**31 - 1:
            raise RuntimeError(f"{self.stem}: ids or rows beyond the int32 map")
        if top >= len(self._map):
            grown = np.full(max(top + 1, len(self._map) + len(self._map) // 4), -1, np.int32)
            grown[: len(self._map)] = self._map
            self._map = grown
        rows = np.arange(first_row, first_row + len(ids), dtype=np.int32)
        self._map[ids] = rows
        lost = self._map[ids] < rows  # a duplicate id whose later row did not win (numpy does not promise an order)
        if lost.any():
            np.maximum.at(self._map, ids[lost], rows[lost])

    def _extend_tracks(self, ids: np.ndarray, first_row: int) -> None:
        """Index the runs of rows ``first_row ..`` (holding ``ids``) of one track: a track's
        windows are written together with consecutive ids (SQLite gives a new row max(id) + 1,
        so a re-embedded track's new windows never continue its old ids); a later run of a
        track wins."""
        if self.owners is None or not len(ids):
            return
        own = self.owners[first_row : first_row + len(ids)]
        starts = np.flatnonzero(np.r_[True, (own[1:] != own[:-1]) | (ids[1:] != ids[:-1] + 1)])
        tracks = own[starts]
        counts = np.diff(np.r_[starts, len(own)]).astype(np.int32)
        starts = (starts + first_row).astype(np.int32)
        if tracks.max() >= len(self._first):
            size = max(int(tracks.max()) + 1, len(self._first) + len(self._first) // 4)
            first, count = np.full(size, -1, np.int32), np.zeros(size, np.int32)
            first[: len(self._first)], count[: len(self._first)] = self._first, self._count
            self._first, self._count = first, count
        self._first[tracks] = starts
        lost = self._first[tracks] < starts  # the later run of a track must win
        if lost.any():
            np.maximum.at(self._first, tracks[lost], starts[lost])
        final = self._first[tracks] == starts
        self._count[tracks[final]] = counts[final]

    def extend(self, rows: int) -> None:
        """Take in the rows appended since (``append`` returned ``rows``)."""
        old = self.rows
        self._map_rows(rows)
        if rows > old:
            self._extend_owners(old)
            ids = np.array(self.ids[old:])
            self._extend_map(ids, old)
            self._extend_tracks(ids, old)

    def track_rows(self, track_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The rows of the windows of ``track_ids`` grouped by track: (rows, where each
        track's group starts, the tracks that have windows); None without owners."""
        if self.owners is None:
            return None
        t = np.asarray(track_ids, np.int64)
        t = t[(t >= 0) & (t < len(self._first))]
        t = t[self._first[t] >= 0]
        first, lens = self._first[t].astype(np.int64), self._count[t].astype(np.int64)
        starts = np.r_[0, np.cumsum(lens)[:-1]].astype(np.int64) if len(t) else np.zeros(0, np.int64)
        rows = np.repeat(first - starts, lens) + np.arange(int(lens.sum()), dtype=np.int64)
        return rows, starts, t

    @staticmethod
    def append(
        folder: Path, stem: str, dim: int, start: int, chunks: Iterator[tuple[np.ndarray, ...]], owners: bool = False
    ) -> int:
        """Cut the files to ``start`` rows (dropping what a killed run appended), append the
        (ids, vectors[, owners]) chunks, fsync; returns the new row count."""
        vec_path, ids_path = Sidecar.paths(folder, stem)
        own_path = Sidecar.owners_path(folder, stem)
        rows = start
        with open(vec_path, "ab+") as fv, open(ids_path, "ab+") as fi, open(own_path, "ab+") as fo:
            files = ((fv, 2 * dim), (fi, 8), (fo, 8)) if owners else ((fv, 2 * dim), (fi, 8))
            for f, width in files:
                f.truncate(start * width)
                f.seek(0, os.SEEK_END)
            for chunk in chunks:
                ids, vecs = chunk[0], chunk[1]
                fv.write(np.ascontiguousarray(vecs, dtype=np.float16).tobytes())
                fi.write(np.ascontiguousarray(ids, dtype=np.int64).tobytes())
                if owners:
                    fo.write(np.ascontiguousarray(chunk[2], dtype=np.int64).tobytes())
                rows += len(ids)
            for f, _ in files:
                f.flush()
                os.fsync(f.fileno())
        if not owners and own_path.stat().st_size == 0:
            own_path.unlink()
        return rows

    @property
    def id_bound(self) -> int:
        """One more than the largest id the map can hold."""
        return len(self._map)

    def rows_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, found mask) of ``ids``."""
        ids = np.asarray(ids, np.int64)
        inside = (ids >= 0) & (ids < len(self._map))
        rows = np.full(len(ids), -1, np.int64)
        rows[inside] = self._map[ids[inside]]
        return np.maximum(rows, 0), rows >= 0

    def live(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, rows) of every id in use, in id order."""
        ids = np.flatnonzero(self._map >= 0).astype(np.int64)
        return ids, self._map[ids].astype(np.int64)

    def owner_of(self, ids: np.ndarray) -> np.ndarray | None:
        """The track id of each window id (-1 where unknown), or None without an owners file."""
        if self.owners is None:
            return None
        rows, found = self.rows_of(ids)
        out = np.full(len(rows), -1, np.int64)
        if found.any():
            out[found] = self.owners[rows[found]]
        return out

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """float32 vectors of ``rows``, read in file order: with ``preadv``, one call per run of
        consecutive rows; else from the mapping, 1,024 rows at a time, each time dropping the
        pages the reads mapped (fault-around maps up to 64 KB around each row, so this bounds
        what a gather adds to the resident set to ~64 MB).

        Raises:
            IndexError: a row outside the sidecar's rows.
            RuntimeError: the file holds fewer rows than asked for (cut short underneath).
        """
        order = np.argsort(rows, kind="stable")
        ordered = np.asarray(rows, np.int64)[order]
        out = np.empty((len(rows), self.dim), np.float32)
        if len(ordered) and (ordered[0] < 0 or ordered[-1] >= self.rows):
            raise IndexError(f"{self.stem}: rows outside 0..{self.rows - 1}")
        if self._fd < 0:
            for a in range(0, len(rows), GATHER_ROWS):
                out[order[a : a + GATHER_ROWS]] = self.vectors[ordered[a : a + GATHER_ROWS]]
                self.release()
            return out
        width = 2 * self.dim
        buf = np.empty((len(ordered), self.dim), np.float16)
        starts = np.flatnonzero(np.r_[True, np.diff(ordered) != 1]) if len(ordered) else np.zeros(0, np.int64)
        ends = np.r_[starts[1:], len(ordered)].astype(np.int64)
        read, fd = os.preadv, self._fd
        for a, b, row in zip(starts.tolist(), ends.tolist(), ordered[starts].tolist()):
            if read(fd, [buf[a:b]], row * width) != (b - a) * width:  # type: ignore[list-item]
                raise RuntimeError(f"{self.stem}: the sidecar file is shorter than its {self.rows} rows")
        out[order] = buf
        return out


def _top(ids: np.ndarray, scores: np.ndarray, k: int) -> SearchResult:
    if len(ids) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        ids, scores = ids[part], scores[part]
    order = np.lexsort((ids, -scores))
    return ids[order].astype(np.int64), scores[order].astype(np.float32)


def _selector(allowed: np.ndarray, id_bound: int) -> tuple[faiss.IDSelector, object]:
    """A FAISS selector for ``allowed`` and what it points into (keep both alive while it is
    used): a bitmap over the id range when it is dense enough (one bit test per scanned code,
    no hash set to build), else an ``IDSelectorBatch``."""
    import faiss

    allowed = np.ascontiguousarray(allowed, dtype=np.int64)
    if len(allowed) and int(allowed.min()) >= 0 and int(allowed.max()) < id_bound <= 64 * len(allowed) + (1 << 23):
        mask = np.zeros(id_bound, bool)
        mask[allowed] = True
        bits = np.packbits(mask, bitorder="little")
        return faiss.IDSelectorBitmap(id_bound, faiss.swig_ptr(bits)), bits
    return faiss.IDSelectorBatch(allowed), allowed


class ApproxIndex:
    """An IVF index keyed by ids whose candidates are re-ranked exactly from the sidecar."""

    def __init__(self, index: faiss.Index, state: IndexState, sidecar: Sidecar, policy: ScalePolicy = DEFAULT_POLICY):
        import faiss

        self.index, self.state, self.sidecar, self.policy = index, state, sidecar, policy
        self.ivf = faiss.extract_index_ivf(index)
        self.ivf.nprobe = state.nprobe
        self.rerank = state.rerank

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def _coarse(self, q: np.ndarray, want: int, nprobe: int, allowed: np.ndarray | None = None) -> list[np.ndarray]:
        """Each query's ``want`` best ids by the IVF index's own (compressed) scores, best first."""
        import faiss

        params = faiss.SearchParametersIVF()
        params.nprobe = int(min(max(nprobe, 1), self.ivf.nlist))
        selector = None
        if allowed is not None:
            selector = _selector(allowed, self.sidecar.id_bound)
            params.sel = selector[0]
        _scores, cand = self.index.search(q, min(int(want), self.ntotal), params=params)
        del selector
        return [row[row >= 0] for row in cand]

    def rescore(self, q: np.ndarray, ids: np.ndarray, k: int) -> SearchResult:
        """The ``k`` best of ``ids`` for one query ``q`` (dim,), scored exactly from the sidecar
        (ids it lacks are skipped), best first."""
        rows, found = self.sidecar.rows_of(np.asarray(ids, np.int64))
        ids, rows = np.asarray(ids, np.int64)[found], rows[found]
        if not len(ids):
            return _empty()
        return _top(ids, self.sidecar.gather(rows) @ q, int(k))

    def _ivf_search(
        self,
        q: np.ndarray,
        k: int,
        nprobe: int,
        allowed: np.ndarray | None,
        keep: int = 0,
        passes: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> list[SearchResult]:
        """The IVF candidates (``rerank`` of them, at least 4k) re-ranked exactly from the
        sidecar: the best ``max(k, keep)`` of them. ``passes`` (ids -> a boolean mask) drops
        candidates before the re-rank, so those cost no sidecar read."""
        want = max(int(k), int(keep), self.rerank, 4 * int(k))
        out = []
        for qi, row in enumerate(self._coarse(q, want, nprobe, allowed)):
            if passes is not None and len(row):
                row = row[passes(row)]
            out.append(self.rescore(q[qi], row, max(int(k), int(keep))))
        return out

    def candidates(
        self, q: np.ndarray, depth: int, nprobe: int = 0, passes: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> SearchResult:
        """One query's re-ranked candidates, up to ``depth`` (at least the re-rank depth
        the index was tuned with), best first: a caller that groups windows by track or
        filters afterwards takes as many as it needs from one IVF search instead of searching
        again for more. ``nprobe``: lists to scan (default: the tuned number); ``passes``
        (ids -> boolean mask): a filter applied before the re-rank (of 3,200 candidates a
        10 % filter keeps ~320: only those are read from the sidecar)."""
        q2 = q.reshape(1, -1)
        return self._ivf_search(q2, 1, nprobe or self.state.nprobe, None, keep=depth, passes=passes)[0]

    def coarse(self, q: np.ndarray, depth: int, nprobe: int = 0) -> np.ndarray:
        """One query's ``depth`` best ids by the IVF index's compressed scores alone, best
        first (4-bit PQ ranks coarsely), without reading the sidecar: for a caller that
        filters them or scores them in another way."""
        return self._coarse(q.reshape(1, -1), depth, nprobe or self.state.nprobe)[0]

    def best_windows(self, q: np.ndarray, track_ids: np.ndarray, k: int) -> list[tuple[int, int, float]] | None:
        """Exact search by window restricted to tracks: every window of ``track_ids`` scored
        against ``q`` (the sidecar lists a track's windows), the ``k`` tracks whose best window
        scores highest as (track id, window id, score), best first. None when the sidecar
        cannot list windows by track (no owners)."""
        listed = self.sidecar.track_rows(np.asarray(track_ids, np.int64))
        if listed is None:
            return None
        rows, starts, owners = listed
        if not len(rows):
            return []
        scores = np.empty(len(rows), np.float32)
        for a in range(0, len(rows), 8192):  # blocks that stay in cache
            scores[a : a + 8192] = self.sidecar.gather(rows[a : a + 8192]) @ q
        best = np.maximum.reduceat(scores, starts)
        ends = np.r_[starts[1:], len(rows)]
        top = np.argsort(-best, kind="stable")[:k]
        out = []
        for g in top.tolist():
            j = starts[g] + int(np.argmax(scores[starts[g] : ends[g]]))
            out.append((int(owners[g]), int(self.sidecar.ids[rows[j]]), float(scores[j])))
        return out

    def owner_of(self, ids: np.ndarray) -> np.ndarray | None:
        """The track id of each window id (-1 where unknown); None when the sidecar has no owners."""
        return self.sidecar.owner_of(ids)

    def exact(self, q: np.ndarray, k: int, allowed: np.ndarray) -> list[SearchResult]:
        """Exact search over the vectors of ``allowed`` (ids not in the index are skipped)."""
        rows, found = self.sidecar.rows_of(np.asarray(allowed, np.int64))
        ids, rows = np.asarray(allowed, np.int64)[found], rows[found]
        out = []
        for start in range(0, len(ids), 32_768):  # bounded memory for a broad filter
            block = self.sidecar.gather(rows[start : start + 32_768])
            scores = q @ block.T
            out.append([_top(ids[start : start + 32_768], s, k) for s in scores])
        if not out:
            return [_empty() for _ in range(len(q))]
        merged = []
        for qi in range(len(q)):
            merged.append(
                _top(np.concatenate([part[qi][0] for part in out]), np.concatenate([part[qi][1] for part in out]), k)
            )
        return merged

    def search(self, q: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[SearchResult]:
        if allowed is None:
            return self._ivf_search(q, k, self.state.nprobe, None)
        if len(allowed) <= max(self.rerank, self.policy.exact_subset_max * self.ntotal):
            return self.exact(q, k, allowed)
        selectivity = len(allowed) / max(self.ntotal, 1)
        nprobe = math.ceil(self.state.nprobe / max(selectivity, 1e-6))
        results = self._ivf_search(q, k, nprobe, allowed)
        short = [i for i, (ids, _) in enumerate(results) if len(ids) < min(k, len(allowed))]
        if short:
            log.info(
                "filtered IVF search gave fewer than %d hits for %d queries; searching them exactly", k, len(short)
            )
            for i, res in zip(short, self.exact(q[short], k, allowed)):
                results[i] = res
        return results

    def range_search(self, x: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Approximate candidates (a margin below ``threshold``, nprobe x 4), re-scored exactly."""
        import faiss

        params = faiss.SearchParametersIVF()
        params.nprobe = int(min(self.state.nprobe * 4, self.ivf.nlist))
        lims, _scores, ids = self.index.range_search(x, float(threshold) - 0.05, params=params)
        out_lims, out_scores, out_ids = [0], [], []
        for i in range(len(x)):
            cand = np.asarray(ids[lims[i] : lims[i + 1]], np.int64)
            rows, found = self.sidecar.rows_of(cand)
            cand, rows = cand[found], rows[found]
            s = self.sidecar.gather(rows) @ x[i] if len(rows) else np.zeros(0, np.float32)
            keep = s > threshold
            out_ids.append(cand[keep])
            out_scores.append(s[keep].astype(np.float32))
            out_lims.append(out_lims[-1] + int(keep.sum()))
        return (
            np.asarray(out_lims, np.int64),
            np.concatenate(out_scores) if out_scores else np.zeros(0, np.float32),
            np.concatenate(out_ids) if out_ids else np.zeros(0, np.int64),
        )


# building -------------------------------------------------------------------------


def ood_queries(sample: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Out-of-distribution, text-like queries: a stored vector diluted by a larger random
    direction, so that its best cosine is ~0.45 (as CLAP text-to-audio cosines are) and
    the stored vectors near it stand out from the rest by a few standard deviations."""
    rng = np.random.default_rng(seed)
    a = sample[rng.integers(0, len(sample), n)].astype(np.float32)
    r = rng.standard_normal(a.shape).astype(np.float32)
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    q = 0.45 * a + 0.89 * r
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def exact_top(sidecar: Sidecar, queries: np.ndarray, k: int, by_owner: bool = False) -> list[np.ndarray]:
    """The exact top-k ids of each query over the live rows of ``sidecar``; ``by_owner``: the
    top-k owners (tracks, by their best window: what a search by window ranks)."""
    carry = 4 * k if by_owner else k  # an owner split across two chunks appears twice
    best_ids = np.full((len(queries), 0), -1, np.int64)
    best_scores = np.zeros((len(queries), 0), np.float32)
    live_ids, live_rows = sidecar.live()
    for start in range(0, len(live_ids), 200_000):
        ids = live_ids[start : start + 200_000]
        scores = queries @ sidecar.gather(live_rows[start : start + 200_000]).T
        if by_owner and sidecar.owners is not None:
            own = np.asarray(sidecar.owners[live_rows[start : start + 200_000]])
            runs = np.flatnonzero(np.r_[True, own[1:] != own[:-1]])
            ids, scores = own[runs], np.maximum.reduceat(scores, runs, axis=1)
        cat_ids = np.concatenate([best_ids, np.broadcast_to(ids, scores.shape)], axis=1)
        cat_scores = np.concatenate([best_scores, scores], axis=1)
        keep = np.argsort(-cat_scores, axis=1, kind="stable")[:, :carry]
        best_ids = np.take_along_axis(cat_ids, keep, axis=1)
        best_scores = np.take_along_axis(cat_scores, keep, axis=1)
    if by_owner:
        return [_first_unique(row, k) for row in best_ids]
    return list(best_ids)


def _first_unique(ids: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` distinct values of ``ids``, in order."""
    _, first = np.unique(ids, return_index=True)
    return ids[np.sort(first)][:k]


def recall_at(found: list[SearchResult], truth: list[np.ndarray], k: int = 10) -> float:
    """Mean share of the exact top-k found."""
    if not truth:
        return 1.0
    return float(
        np.mean([len(set(f[0][:k].tolist()) & set(t[:k].tolist())) / max(len(t[:k]), 1) for f, t in zip(found, truth)])
    )


def tune(index: ApproxIndex, policy: ScalePolicy) -> tuple[int, int, float]:
    """The fastest (nprobe, re-rank depth) whose R@10 against exact search on
    out-of-distribution queries (``ood_queries``) reaches the target, and that recall: for
    each depth (the policy's, x4, x16) the smallest nprobe reaching it, timed; the best
    recall found when none does. Windows (a sidecar with owners) are measured by the top 10
    tracks by best window among every re-ranked candidate. (Queries aimed at an IVF list's
    centroid instead were harder still: 0.95 with half the lists scanned.)"""
    sc = index.sidecar
    rng = np.random.default_rng(policy.seed)
    sample = sc.gather(np.sort(rng.choice(sc.rows, min(sc.rows, 4096), replace=False)))
    by_owner = sc.owners is not None  # windows: what counts is the tracks a search by window finds
    # the windows index is a fallback (a search by window scores the windows of the best tracks):
    # fewer queries tune it, at 6M windows each costs ~1 s
    queries = ood_queries(sample, policy.tune_queries // 4 if by_owner else policy.tune_queries, policy.seed)
    truth = exact_top(sc, queries, 10, by_owner)
    best: tuple[float, int, int, float] | None = None  # (seconds, nprobe, rerank, recall)
    fallback = (1, index.state.rerank, 0.0)
    for rerank in sorted({min(index.state.rerank * f, 4096) for f in (1, 4, 16)}):
        index.rerank = rerank
        nprobe = 1
        while True:
            t0 = time.perf_counter()
            found = index._ivf_search(queries, 10, nprobe, None, keep=rerank if by_owner else 0)
            if sc.owners is not None:
                found = [(_first_unique(sc.owners[sc.rows_of(ids)[0]], 10), s) for ids, s in found]
            recall = recall_at(found, truth)
            seconds = time.perf_counter() - t0
            if recall > fallback[2]:
                fallback = (nprobe, rerank, recall)
            if recall >= policy.target_recall:
                if best is None or seconds < best[0]:
                    best = (seconds, nprobe, rerank, recall)
                break
            if nprobe >= index.ivf.nlist or nprobe >= 1024:
                break
            nprobe *= 2
    return best[1:] if best is not None else fallback


def _factory(kind: str, n: int, dim: int, policy: ScalePolicy) -> tuple[str, int]:
    """4-bit PQ fast-scan of the residuals (``x4fsr``: dim/8 bytes a vector, 64 MB per 1M
    512-d vectors, against 512 MB for SQ8), whose candidates the sidecar re-ranks exactly;
    SQ8 where the dimension does not split into 4-d sub-vectors."""
    nlist = int(min(max(4 * math.sqrt(n), 16), policy.max_nlist[kind]))
    if dim % 4 == 0:
        return f"IVF{nlist},PQ{dim // 4}x4fsr", nlist
    return f"IVF{nlist},SQ8", nlist


def _prefetched(chunks: Iterator[tuple[np.ndarray, ...]], depth: int = 2) -> Iterator[tuple[np.ndarray, ...]]:
    """``chunks``, read ahead by a thread (SQLite reads while FAISS, which lets go of the GIL,
    adds the previous chunk); the reader's exception is raised here."""
    import queue
    import threading

    done = object()
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def read() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                q.put(chunk)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)
        q.put(done)

    reader = threading.Thread(target=read, name="musicsearch-vectors-reader", daemon=True)
    reader.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                pass
        reader.join()


def _training_sample(store: Store, kind: str, n: int, seed: int) -> np.ndarray:
    """About ``n`` vectors of ``kind`` drawn at random (ids are dense: random ids up to the
    largest, those that exist)."""
    top = store.conn.execute(f"select max(id) from {kind}").fetchone()[0] or 0
    rng = np.random.default_rng(seed)
    want = np.sort(rng.choice(np.arange(1, top + 1), min(top, int(n * 1.25) + 16), replace=False))
    _ids, vecs = store.vectors_by_id(kind, want.tolist())
    return vecs[:n] if len(vecs) > n else vecs


def build_approx(
    store: Store, kind: str, generation: int, dim: int, policy: ScalePolicy = DEFAULT_POLICY
) -> ApproxIndex:
    """Train the IVF index of ``kind`` on a random sample from SQLite, then fill it and a new
    sidecar in one pass over SQLite (read ahead by a thread while FAISS adds), tune nprobe.
    Uses every core FAISS is allowed."""
    import faiss

    started = time.perf_counter()
    stem = f"{kind}-e{generation}"
    n = store.counts()[kind]
    factory, nlist = _factory(kind, n, dim, policy)
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.extract_index_ivf(index)
    ivf.cp.niter = 10
    index.train(np.ascontiguousarray(_training_sample(store, kind, 40 * nlist, policy.seed), dtype=np.float32))
    times = {"train": time.perf_counter() - started}

    def added(chunks: Iterator[tuple[np.ndarray, ...]]) -> Iterator[tuple[np.ndarray, ...]]:
        for chunk in chunks:
            index.add_with_ids(np.ascontiguousarray(chunk[1], dtype=np.float32), chunk[0])
            yield chunk

    chunks = store.iter_windows() if kind == "windows" else store.iter_vectors(kind)
    rows = Sidecar.append(store.dir, stem, dim, 0, added(_prefetched(chunks)), owners=kind == "windows")
    sidecar = Sidecar(store.dir, stem, dim, rows)
    times["fill"] = time.perf_counter() - started - sum(times.values())
    state = IndexState(
        kind, generation, "ivf", factory, rows, dim, 1, policy.rerank[kind], 0.0, rows, stem, rows, time.time()
    )
    approx = ApproxIndex(index, state, sidecar, policy)
    nprobe, rerank, recall = tune(approx, policy)
    times["tune"] = time.perf_counter() - started - sum(times.values())
    state = IndexState(**{**asdict(state), "nprobe": nprobe, "rerank": rerank, "recall_at_10": round(recall, 4)})
    approx = ApproxIndex(index, state, sidecar, policy)
    log.info(
        "built %s %s over %d vectors in %.1f s (%s): nprobe %d, re-rank %d, R@10 %.3f",
        kind,
        factory,
        rows,
        time.perf_counter() - started,
        ", ".join(f"{k} {v:.1f} s" for k, v in times.items()),
        nprobe,
        rerank,
        recall,
    )
    return approx


def update_approx(
    store: Store, prev: ApproxIndex, generation: int, policy: ScalePolicy = DEFAULT_POLICY
) -> ApproxIndex | None:
    """Bring ``prev`` forward to ``generation`` in place (remove then re-add every id the
    store's vector log names since ``prev``'s generation; the new vectors are appended to the
    sidecar and added from it). None when it must be rebuilt: the log does not reach back
    that far, or the data drifted ``policy.drift`` times since training, or it shrank into
    exact range. ``prev`` is modified: drop it if this returns None or raises. The vector count
    comes from the log (what was removed and added), not from counting SQLite's rows (a scan
    of 6M windows); a reader checks it against SQLite when it opens the files."""
    st = prev.state
    kind = st.kind
    changed = store.changed_ids(kind, st.generation)
    if changed is None:
        log.info("the vector log does not reach generation %d; rebuilding the %s index", st.generation, kind)
        return None
    if kind == "windows":
        ids, vecs, owners = store.window_vectors_by_id(changed)
        chunk: tuple[np.ndarray, ...] = (ids, vecs, owners)
    else:
        ids, vecs = store.vectors_by_id(kind, changed)
        chunk = (ids, vecs)
    rows = Sidecar.append(store.dir, st.sidecar, st.dim, st.rows, iter([chunk]), owners=kind == "windows")
    prev.sidecar.extend(rows)
    _apply(prev.index, prev.sidecar, changed, ids)
    n_now = prev.ntotal
    if n_now <= policy.exact_max[kind]:
        return None
    if n_now > policy.drift * st.trained_n or n_now * policy.drift < st.trained_n:
        log.info("%s: %d vectors now, %d when trained; retraining", kind, n_now, st.trained_n)
        return None
    pending = st.pending + len(changed)
    base = st.file_generation if pending <= policy.resave * n_now else 0
    values = {**asdict(st), "generation": generation, "n": n_now, "rows": rows, "base": base}
    state = IndexState(**{**values, "pending": pending if base else 0})
    return ApproxIndex(prev.index, state, prev.sidecar, policy)


def _apply(index: faiss.Index, sidecar: Sidecar, changed: np.ndarray, present: np.ndarray) -> None:
    """Remove ``changed`` from ``index``, then add those of them ``present`` now, with their
    newest vectors in the sidecar (what a rebuild would add)."""
    import faiss

    if len(changed):
        index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(changed, dtype=np.int64)))
    rows, found = sidecar.rows_of(np.asarray(present, np.int64))
    if not found.all():
        raise RuntimeError(f"{sidecar.stem}: {int((~found).sum())} changed vectors are missing from the sidecar")
    if len(rows):
        index.add_with_ids(sidecar.gather(rows), np.ascontiguousarray(present, dtype=np.int64))


def _read_approx(store: Store, state: IndexState, policy: ScalePolicy) -> ApproxIndex:
    """The index of ``state``: its file, or its base generation's file with the changes since
    replayed (ids the vector log names since then: removed, and those in the store now added
    back with their newest sidecar vectors).

    Raises:
        RuntimeError: a file is missing or damaged, or the log no longer reaches the base.
    """
    import faiss

    path = index_path(store.dir, state.kind, state.file_generation)
    index = faiss.read_index(str(path))  # writable: updated in place
    sidecar = Sidecar(store.dir, state.sidecar, state.dim, state.rows)
    if state.file_generation != state.generation:
        changed = store.changed_ids(state.kind, state.file_generation)
        if changed is None:
            raise RuntimeError(f"the vector log no longer reaches generation {state.file_generation}")
        present = store.existing_ids(state.kind, changed)
        _, found = sidecar.rows_of(present)  # ids added after this state's generation are not there yet
        _apply(index, sidecar, changed, present[found])
    if policy.prefetch > 0:
        prefetch(Sidecar.paths(store.dir, state.sidecar)[0], policy.prefetch)
    return ApproxIndex(index, state, sidecar, policy)


def memory_available() -> int | None:
    """Bytes of memory available (``MemAvailable`` in /proc/meminfo), None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


PREFETCH_CHUNK = 8 << 20


def prefetch(path: Path, share: float) -> threading.Thread | None:
    """Read ``path``, 8 MB at a time, in a daemon thread, so that the page cache holds it (a
    serving process then re-ranks from memory instead of the disk; a process that exits first
    just stops reading), when the file takes at most ``share`` of the memory available. It is
    read twice: the kernel keeps pages used twice over pages read once (at 1M tracks, read
    once, a tenth of the tracks sidecar was evicted again while serving, the database's pages
    competing; ``posix_fadvise(WILLNEED)`` read less than half of it). The thread started, or
    None (unknown memory, or too large)."""
    available = memory_available()
    try:
        size = path.stat().st_size
    except OSError:
        return None
    if available is None or not size:
        return None
    if size > share * available:
        log.info("%s (%.1f GB) is not prefetched: %.1f GB of memory available", path.name, size / 1e9, available / 1e9)
        return None

    def run() -> None:
        buf = bytearray(PREFETCH_CHUNK)
        try:
            for _ in range(2):  # twice: pages used twice are kept over those read once (the database's)
                with open(path, "rb", buffering=0) as f:
                    while f.readinto(buf):
                        pass
        except OSError as exc:
            log.debug("prefetching %s stopped (%s)", path, exc)

    thread = threading.Thread(target=run, name=f"musicsearch-prefetch-{path.name}", daemon=True)
    thread.start()
    return thread


def _newest_state(store: Store, kind: str, below: int) -> IndexState | None:
    best: IndexState | None = None
    for p in store.dir.glob(f"{kind}-g*.json"):
        try:
            g = int(p.stem.split("-g")[-1])
        except ValueError:
            continue
        if g < below and (best is None or g > best.generation):
            st = IndexState.read(p)
            if (
                st is not None
                and st.generation == g
                and st.family == "ivf"
                and index_path(store.dir, kind, st.file_generation).exists()
            ):
                best = st
    return best


def _save_approx(store: Store, approx: ApproxIndex) -> None:
    """Index file first (unless the state names an older base file), then its state (the
    commit point), then older files go (not the base's)."""
    st = approx.state
    if st.file_generation == st.generation:
        save(approx.index, index_path(store.dir, st.kind, st.generation))
    st.write(store.dir)
    _remove_older(store, st.kind, st.generation, keep_sidecar=st.sidecar, keep_base=st.file_generation)


def _prune_log(store: Store) -> None:
    """Forget the vector log up to the oldest generation an update could start from: the
    newest index file of each kind that has one (a kind without any is rebuilt in full)."""
    gens = []
    for kind in KINDS:
        found = [int(g) for p in store.dir.glob(f"{kind}-g*.faiss") if (g := p.stem.split("-g")[-1]).isdigit()]
        if found:
            gens.append(max(found))
    if not gens:
        return
    try:
        store.prune_vector_log(min(gens))
    except Exception as exc:  # a read-only database: the log stays
        log.debug("cannot prune the vector log (%s)", exc)


def _remove_older(store: Store, kind: str, generation: int, keep_sidecar: str = "", keep_base: int = 0) -> None:
    keep = {f"{kind}-g{generation}", keep_sidecar, f"{kind}-g{keep_base or generation}"}
    for pattern in (f"{kind}-g*.faiss", f"{kind}-g*.json", f"{kind}-e*.f16", f"{kind}-e*.ids", f"{kind}-e*.own"):
        for old in store.dir.glob(pattern):
            if old.stem in keep:
                continue
            try:
                old.unlink()
            except OSError:
                pass


AnyIndex = Union["faiss.Index", ApproxIndex]


def _load_or_build(
    store: Store, kind: str, generation: int, policy: ScalePolicy = DEFAULT_POLICY, prev: AnyIndex | None = None
) -> AnyIndex:
    import faiss

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if isinstance(prev, ApproxIndex):
        moved = _update_in_memory(store, prev, generation, policy)
        if moved is not None:
            return moved
        prev = None  # possibly modified: never used again
    path = index_path(store.dir, kind, generation)
    rows = store.counts()[kind]
    st_path = state_path(store.dir, kind, generation)
    state = IndexState.read(st_path) if st_path.exists() else None
    if path.exists():
        try:
            index: AnyIndex = _read_approx(store, state, policy) if state is not None else load(path)
        except Exception as exc:
            log.warning("%s is damaged (%s); rebuilding it from the database", path, str(exc).splitlines()[0])
        else:
            if state is None and not isinstance(index, faiss.IndexIDMap2):
                # an approximate index without its state: a run died before committing it
                log.warning("%s was left unfinished by a stopped run; rebuilding it", path)
            elif index.ntotal == rows:
                return index
            else:
                log.warning("%s holds %d vectors, the database %d; rebuilding it", path, index.ntotal, rows)
            del index  # unmap before the file is replaced
    if rows > policy.exact_max[kind]:
        return _approx(store, kind, generation, policy, prev)
    flat = _update_flat(store, kind, generation, rows)
    if flat is None:
        ids, vecs = store.track_vectors() if kind == "tracks" else store.all_window_vectors()
        flat = build(ids, vecs, vecs.shape[1] if vecs.ndim == 2 and vecs.shape[1] else 1)
    try:
        save(flat, path)
    except OSError as exc:
        log.warning("cannot save %s (%s); answering from memory", path, exc)
        return flat  # a read-only index folder still answers queries
    _remove_older(store, kind, generation)
    _prune_log(store)
    return flat


def _update_flat(store: Store, kind: str, generation: int, rows: int) -> faiss.Index | None:
    """The exact index of the newest older generation on disk, brought forward in place
    (``remove_ids`` then ``add_with_ids`` of the ids the vector log names): cheaper than
    re-reading every vector from SQLite. None when there is none, the log does not reach
    it, or most vectors changed."""
    import faiss

    older = []
    for p in store.dir.glob(f"{kind}-g*.faiss"):
        g = p.stem.split("-g")[-1]
        if g.isdigit() and int(g) < generation and not state_path(store.dir, kind, int(g)).exists():
            older.append(int(g))
    if not older:
        return None
    since = max(older)
    changed = store.changed_ids(kind, since)
    if changed is None or len(changed) > rows // 2 + 1000:
        return None
    try:
        index = faiss.read_index(str(index_path(store.dir, kind, since)))  # a writable copy
    except Exception as exc:
        log.warning("cannot read the %s index of generation %d (%s); rebuilding", kind, since, exc)
        return None
    if not isinstance(index, faiss.IndexIDMap2):
        return None
    ids, vecs = store.vectors_by_id(kind, changed)
    if len(changed):
        index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(changed, dtype=np.int64)))
    if len(ids):
        if vecs.shape[1] != index.d:
            return None
        index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), ids)
    if index.ntotal != rows:
        log.warning("%s index holds %d vectors after the update, the database %d; rebuilding", kind, index.ntotal, rows)
        return None
    return index


@contextmanager
def _locked(store: Store, kind: str) -> Iterator[None]:
    """One process at a time brings an approximate index forward (they share its sidecar)."""
    try:
        fd = os.open(store.dir / f".{kind}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # a read-only folder: nothing will be written either
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _update_in_memory(store: Store, prev: ApproxIndex, generation: int, policy: ScalePolicy) -> ApproxIndex | None:
    """``prev`` (in memory, the newest state on disk) brought forward to ``generation`` and
    its state saved, without counting SQLite's rows; None when another process got there
    first or it must be rebuilt (the full path decides then)."""
    kind = prev.state.kind
    with _locked(store, kind):
        if state_path(store.dir, kind, generation).exists() or _newest_state(store, kind, generation) != prev.state:
            return None
        updated = update_approx(store, prev, generation, policy)
        if updated is None:
            return None
        _save_or_serve(store, updated)
        return updated


def _save_or_serve(store: Store, approx: ApproxIndex) -> None:
    """Save an index brought forward or built, then prune the vector log it covers; where it
    cannot be saved (a full or read-only disk), it answers from memory, with a WARNING."""
    try:
        _save_approx(store, approx)
    except OSError as exc:
        log.warning("cannot save the %s index (%s); answering from memory", approx.state.kind, exc)
    else:
        _prune_log(store)


def _approx(store: Store, kind: str, generation: int, policy: ScalePolicy, prev: AnyIndex | None) -> ApproxIndex:
    with _locked(store, kind):
        st_path = state_path(store.dir, kind, generation)
        if st_path.exists() and (state := IndexState.read(st_path)) is not None:
            try:  # another process built it meanwhile
                done = _read_approx(store, state, policy)
                if done.ntotal == store.counts()[kind]:
                    return done
            except Exception as exc:
                log.warning("cannot read the %s index of generation %d (%s); rebuilding", kind, generation, exc)
        older = _newest_state(store, kind, generation)
        base: ApproxIndex | None = None
        if older is not None:
            if isinstance(prev, ApproxIndex) and prev.state == older:
                base = prev  # already in memory
            else:
                try:
                    base = _read_approx(store, older, policy)
                except Exception as exc:
                    log.warning(
                        "cannot read the %s index of generation %d (%s); rebuilding", kind, older.generation, exc
                    )
        updated = update_approx(store, base, generation, policy) if base is not None else None
        if updated is None:
            meta = store.index_meta()
            updated = build_approx(store, kind, generation, meta.dim if meta else 0, policy)
        _save_or_serve(store, updated)
        return updated


def load_or_build(store: Store, kind: str = "tracks", policy: ScalePolicy = DEFAULT_POLICY) -> AnyIndex:
    """The ``kind`` index (``tracks`` or ``windows``, keyed by their ids) of the store's
    current generation: read from its file, or else brought forward in place from an older
    approximate one, or rebuilt from SQLite (when the file is missing, damaged or stale: its
    size differs from the row count), then saved atomically with the files of older
    generations removed. In a read-only folder the index is returned without being saved.
    """
    return _load_or_build(store, kind, store.generation, policy)


def describe(store: Store, kind: str) -> IndexState:
    """What the current generation's ``kind`` index is (or will be when next built): its
    state file for an approximate index, else an exact one."""
    path = state_path(store.dir, kind, store.generation)
    state = IndexState.read(path) if path.exists() else None
    if state is not None:
        return state
    return IndexState(kind, store.generation, "exact", "IDMap2,Flat", store.counts()[kind], 0)


class VectorIndexes:
    """The FAISS indexes of one store, loaded on first use and kept until the store's
    generation moves (another write), so that repeated queries do not re-read them; an
    approximate index in memory is then brought forward in place."""

    def __init__(self, store: Store, policy: ScalePolicy = DEFAULT_POLICY):
        self.store = store
        self.policy = policy
        self._cache: dict[str, tuple[int, AnyIndex]] = {}

    def get(self, kind: str = "tracks") -> AnyIndex:
        """The ``kind`` index (``tracks`` or ``windows``) of the current generation."""
        generation = self.store.generation
        cached = self._cache.get(kind)
        if cached is None or cached[0] != generation:
            prev = self._cache.pop(kind, (0, None))[1]  # modified in place: never kept if this fails
            cached = (generation, _load_or_build(self.store, kind, generation, self.policy, prev))
            self._cache[kind] = cached
        return cached[1]

    def clear(self) -> None:
        """Forget the loaded indexes (and unmap their files)."""
        self._cache.clear()


def _empty() -> SearchResult:
    return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)


def search(index: AnyIndex, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[SearchResult]:
    """The ``k`` best ids for each query, best first, and their scores.

    Args:
        index: an index from this module (exact, or approximate with re-rank).
        queries: (n, dim) float32 (one (dim,) vector is taken as n = 1).
        k: how many per query at most.
        allowed: the only ids that may be returned (an FAISS ``IDSelectorBatch``; an
            approximate index searches a small set exactly), or None.

    Returns:
        One (ids int64, scores float32) per query; fewer than ``k`` only when fewer exist
        (FAISS's -1 padding is dropped).
    """
    import faiss

    q = np.ascontiguousarray(queries, dtype=np.float32)
    if q.ndim == 1:
        q = q.reshape(1, -1)
    limit = index.ntotal if allowed is None else min(index.ntotal, len(allowed))
    k = min(int(k), limit)
    if k <= 0 or len(q) == 0:
        return [_empty() for _ in range(len(q))]
    if isinstance(index, ApproxIndex):
        return index.search(q, k, allowed)
    params = None
    if allowed is not None:
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        params = faiss.SearchParameters()
        params.sel = selector  # ``selector`` stays referenced until the search returns
    scores, ids = index.search(q, k, params=params)
    out = []
    for row_ids, row_scores in zip(ids, scores):
        keep = row_ids >= 0
        out.append((row_ids[keep], row_scores[keep]))
    return out


def range_search(index: AnyIndex, vectors: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every stored vector scoring above ``threshold`` (inner product, strictly greater, as
    FAISS does) with each of ``vectors`` (an approximate index re-scores its candidates
    exactly; it may miss a pair its IVF probes do not reach).

    Returns:
        (lims int64 (n + 1,), scores float32, ids int64): the hits of query ``i`` are
        ``ids[lims[i]:lims[i + 1]]`` with ``scores[lims[i]:lims[i + 1]]``, in no particular order.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if index.ntotal == 0 or len(x) == 0:
        return np.zeros(len(x) + 1, dtype=np.int64), np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64)
    if isinstance(index, ApproxIndex):
        return index.range_search(x, threshold)
    lims, scores, ids = index.range_search(x, float(threshold))
    return np.asarray(lims, dtype=np.int64), np.asarray(scores, dtype=np.float32), np.asarray(ids, dtype=np.int64)
