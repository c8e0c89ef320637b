"""The approximate index: IVF keyed by the same ids as the exact one,
``IVF{4·sqrt(N)},PQ{dim/4}x4fsr`` (4-bit PQ fast-scan of the residuals), whose candidates are
re-ranked exactly from the float16 sidecar; built from SQLite, tuned (``tune.py``), brought
forward in place from the store's vector log, and read back with the changes since its file
was written replayed."""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from .disk import IndexState, index_path, write_index
from .protocol import DEFAULT_POLICY, Passes, ScalePolicy, SearchResult, empty_result, top_k
from .sidecar import Sidecar, prefetch
from .tune import tune

if TYPE_CHECKING:
    import faiss

    from ..store import Store

log = logging.getLogger(__name__)


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
    """An IVF index keyed by ids whose candidates are re-ranked exactly from the sidecar
    (``VectorIndex``): searches scan ``state.nprobe`` lists (tuned at build time), ``widen``
    times that when asked."""

    approximate: Literal[True] = True

    def __init__(self, index: faiss.Index, state: IndexState, sidecar: Sidecar, policy: ScalePolicy = DEFAULT_POLICY):
        import faiss

        self.index, self.state, self.sidecar, self.policy = index, state, sidecar, policy
        self.ivf = faiss.extract_index_ivf(index)
        self.ivf.nprobe = state.nprobe
        self.rerank = state.rerank

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def lists_windows(self) -> bool:
        return self.sidecar.owners is not None

    def save(self, target: Path) -> None:
        """Write its IVF index (not the sidecar, not the state) to ``target`` atomically."""
        write_index(self.index, target)

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
            return empty_result()
        return top_k(ids, self.sidecar.gather(rows) @ q, int(k))

    def _ivf_search(
        self,
        q: np.ndarray,
        k: int,
        nprobe: int,
        allowed: np.ndarray | None,
        keep: int = 0,
        passes: Passes | None = None,
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

    def candidates(self, q: np.ndarray, depth: int, *, widen: int = 1, passes: Passes | None = None) -> SearchResult:
        """One query's re-ranked candidates, up to ``depth`` (at least the re-rank depth
        the index was tuned with), best first: a caller that groups windows by track or
        filters afterwards takes as many as it needs from one IVF search instead of searching
        again for more. ``widen``: scan that many times the tuned number of lists;
        ``passes`` (ids -> boolean mask): a filter applied before the re-rank (of 3,200
        candidates a 10 % filter keeps ~320: only those are read from the sidecar)."""
        q2 = q.reshape(1, -1)
        return self._ivf_search(q2, 1, widen * self.state.nprobe, None, keep=depth, passes=passes)[0]

    def coarse(self, q: np.ndarray, depth: int, *, widen: int = 1) -> np.ndarray:
        """One query's ``depth`` best ids by the IVF index's compressed scores alone, best
        first (4-bit PQ ranks coarsely), without reading the sidecar: for a caller that
        filters them or scores them in another way."""
        return self._coarse(q.reshape(1, -1), depth, widen * self.state.nprobe)[0]

    def _search_at(self, queries: np.ndarray, nprobe: int, rerank: int, keep: int) -> list[SearchResult]:
        """The 10 best of each query at ``nprobe`` lists and re-rank depth ``rerank`` (the
        depth stays set: ``tune`` tries them in turn)."""
        self.rerank = rerank
        return self._ivf_search(queries, 10, nprobe, None, keep=keep)

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
            out.append([top_k(ids[start : start + 32_768], s, k) for s in scores])
        if not out:
            return [empty_result() for _ in range(len(q))]
        merged = []
        for qi in range(len(q)):
            merged.append(
                top_k(np.concatenate([part[qi][0] for part in out]), np.concatenate([part[qi][1] for part in out]), k)
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
    top = store.max_id(kind)
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
    nprobe, rerank, recall = tune(sidecar, approx._search_at, state.rerank, approx.ivf.nlist, policy)
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


def read_approx(store: Store, state: IndexState, policy: ScalePolicy) -> ApproxIndex:
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
