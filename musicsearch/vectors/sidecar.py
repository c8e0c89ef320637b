"""The float16 sidecar of an approximate index: every vector it holds, append-only, read back
to re-rank candidates exactly (``Sidecar.gather``), and read into the page cache when an index
is opened (``prefetch``)."""

from __future__ import annotations

import logging
import mmap
import os
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

GATHER_ROWS = 1024  # sidecar rows read between two releases of their pages


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
