"""The index files' lifecycle: which index answers for the store's current generation, read
from its file, brought forward in place from an older one, or rebuilt from SQLite, then saved
atomically with the files of older generations removed (``load_or_build``); the indexes of one
store kept in memory until its generation moves (``VectorIndexes``)."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Union

from .approx import ApproxIndex, build_approx, read_approx, update_approx
from .disk import IndexState, index_path, state_path
from .flat import FlatIndex, build, load, update_flat
from .protocol import DEFAULT_POLICY, KINDS, ScalePolicy

if TYPE_CHECKING:
    from ..store import Store

log = logging.getLogger(__name__)


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
        approx.save(index_path(store.dir, st.kind, st.generation))
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


Loaded = Union[FlatIndex, ApproxIndex]  # what this module loads or builds


def _read_current(store: Store, path: Path, state: IndexState | None, rows: int, policy: ScalePolicy) -> Loaded | None:
    """The index in ``path`` (with its ``state`` when approximate) when it is whole and holds
    ``rows`` vectors; None (with a WARNING) when it must be rebuilt."""
    try:
        index: Loaded = read_approx(store, state, policy) if state is not None else load(path)
    except Exception as exc:
        log.warning("%s is damaged (%s); rebuilding it from the database", path, str(exc).splitlines()[0])
        return None
    if not index.approximate and not index.keyed:
        # an approximate index without its state: a run died before committing it
        log.warning("%s was left unfinished by a stopped run; rebuilding it", path)
    elif index.ntotal == rows:
        return index
    else:
        log.warning("%s holds %d vectors, the database %d; rebuilding it", path, index.ntotal, rows)
    return None


def _load_or_build(
    store: Store, kind: str, generation: int, policy: ScalePolicy = DEFAULT_POLICY, prev: Loaded | None = None
) -> Loaded:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if prev is not None and prev.approximate:
        moved = _update_in_memory(store, prev, generation, policy)
        if moved is not None:
            return moved
        # possibly modified: never used again
    path = index_path(store.dir, kind, generation)
    rows = store.counts()[kind]
    st_path = state_path(store.dir, kind, generation)
    state = IndexState.read(st_path) if st_path.exists() else None
    if path.exists():
        found = _read_current(store, path, state, rows, policy)  # unmapped again before the file is replaced
        if found is not None:
            return found
    if rows > policy.exact_max[kind]:
        return _approx(store, kind, generation, policy)
    flat = update_flat(store, kind, generation, rows)
    if flat is None:
        ids, vecs = store.track_vectors() if kind == "tracks" else store.all_window_vectors()
        flat = build(ids, vecs, vecs.shape[1] if vecs.ndim == 2 and vecs.shape[1] else 1)
    try:
        flat.save(path)
    except OSError as exc:
        log.warning("cannot save %s (%s); answering from memory", path, exc)
        return flat  # a read-only index folder still answers queries
    _remove_older(store, kind, generation)
    _prune_log(store)
    return flat


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


def _approx(store: Store, kind: str, generation: int, policy: ScalePolicy) -> ApproxIndex:
    """The approximate index of ``generation``: another process's (built meanwhile), else the
    newest older one on disk brought forward, else built anew; saved."""
    with _locked(store, kind):
        st_path = state_path(store.dir, kind, generation)
        if st_path.exists() and (state := IndexState.read(st_path)) is not None:
            try:  # another process built it meanwhile
                done = read_approx(store, state, policy)
                if done.ntotal == store.counts()[kind]:
                    return done
            except Exception as exc:
                log.warning("cannot read the %s index of generation %d (%s); rebuilding", kind, generation, exc)
        older = _newest_state(store, kind, generation)
        base: ApproxIndex | None = None
        if older is not None:
            try:
                base = read_approx(store, older, policy)
            except Exception as exc:
                log.warning("cannot read the %s index of generation %d (%s); rebuilding", kind, older.generation, exc)
        updated = update_approx(store, base, generation, policy) if base is not None else None
        if updated is None:
            meta = store.index_meta()
            updated = build_approx(store, kind, generation, meta.dim if meta else 0, policy)
        _save_or_serve(store, updated)
        return updated


def load_or_build(store: Store, kind: str = "tracks", policy: ScalePolicy = DEFAULT_POLICY) -> Loaded:
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
    """The vector indexes (``VectorIndex``: exact or approximate) of one store, loaded on first use and kept until the store's
    generation moves (another write), so that repeated queries do not re-read them; an
    approximate index in memory is then brought forward in place."""

    def __init__(self, store: Store, policy: ScalePolicy = DEFAULT_POLICY):
        self.store = store
        self.policy = policy
        self._cache: dict[str, tuple[int, Loaded]] = {}

    def get(self, kind: str = "tracks") -> Loaded:
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
