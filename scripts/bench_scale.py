"""Scale benchmark: indexes of N synthetic tracks (6 windows each) built through ``ingest``,
queried through ``MusicIndex.search_vectors`` (metadata included), one thread, one query at a
time, printed side by side for every N in one run.

Vectors: 2,000 clusters around a shared direction (mean pairwise cosine ~0.30, as CLAP's
audio embeddings); queries are out-of-distribution, text-like (best cosine ~0.4). Metadata,
each drawn at random per track: a year in 1000-1999 (``--year 1500`` keeps 0.1 % of the
tracks, ``1500-1509`` 1 %, ``1500-1599`` 10 %), a duration of 100-1099 s (500-500, 500-509,
500-599 s), a genre "Genre 000." .. "Genre 999." (substrings "Genre 150.", "GENRE 15",
"genre 1", any case: 0.1 %, 1 %, 10 %), an artist and an album "Artist 0000" .. "Artist
9999" ("artist 150", "ARTIST 15", "Artist 1"). R@10 is measured against exact search over the
stored vectors (tracks: the track vectors; windows: each track's best window) restricted to
the tracks each filter keeps (computed here in Python).

    python scripts/bench_scale.py --sizes 100000 1000000 --work /tmp/bench-scale > bench.txt

``--sql`` serves each text filter a second time the way it ran before the text columns (every
matching id from SQLite, ``instr(lower(...))`` over the rows; ``--sql-queries`` of them), side
by side in the same serving process.

Each size's serving figures (RSS, latency, recall) come from a fresh process that only opens
the index and answers queries: the exact answers (R@10's ground truth, a scan of every stored
vector) are computed beforehand in the building process and handed over as a JSON file, and
the serving process reads its RSS after its last query (anonymous and file-backed pages shown
apart; the memory-mapped sidecars' pages are dropped after each re-rank, so file-backed is
mostly the libraries). Phases are timed and printed to stderr as they end.

For quick iterations, ``--sizes 200000 --exact-max 20000`` exercises the approximate path
(IVF indexes from 20k tracks / 120k windows) in a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DIM = 512
SHARES = {"10 %": 0, "1 %": 1, "0.1 %": 2}
FILTERS: dict[str, dict | None] = {"unfiltered": None}
for _share, _i in SHARES.items():
    FILTERS[f"year {_share}"] = {"year": [(1500, 1599), (1500, 1509), (1500, 1500)][_i]}
    FILTERS[f"duration {_share}"] = {"min_duration": 500, "max_duration": [599, 509, 500][_i]}
    FILTERS[f"genre {_share}"] = {"genre": ["genre 1", "GENRE 15", "Genre 150."][_i]}
    FILTERS[f"artist {_share}"] = {"artist": ["Artist 1", "ARTIST 15", "artist 150"][_i]}
    FILTERS[f"album {_share}"] = {"album": ["Album 1", "ALBUM 15", "album 150"][_i]}
TEXT_FILTERS = [name for name in FILTERS if name.split()[0] in ("genre", "artist", "album")]


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class Synth:
    """Clustered CLAP-like vectors: track = 0.548 u + 0.59 centre + 0.59 noise (pairwise
    cosine ~0.30 across clusters), windows = track + 0.5 noise."""

    def __init__(self, seed: int = 0, clusters: int = 2000):
        rng = np.random.default_rng(seed)
        self.u = unit(rng.standard_normal(DIM))
        self.centres = unit(rng.standard_normal((clusters, DIM)))

    @staticmethod
    def metadata(lo: int, hi: int) -> dict[str, np.ndarray]:
        """Tracks lo..hi's genre, artist and album codes and duration (their own random
        stream: the vectors and years stay those of earlier runs)."""
        rng = np.random.default_rng(1_000_000_007 + lo)
        n = hi - lo
        return {
            "genre": rng.integers(0, 1000, n),
            "artist": rng.integers(0, 10_000, n),
            "album": rng.integers(0, 10_000, n),
            "duration": 100 + rng.integers(0, 1000, n).astype(np.float64),
        }

    def tracks(self, lo: int, hi: int, windows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(window vectors (n, windows, dim), years, clusters) of tracks lo..hi."""
        rng = np.random.default_rng(seed)
        n = hi - lo
        cl = rng.integers(0, len(self.centres), n)
        base = 0.548 * self.u + 0.59 * self.centres[cl] + 0.59 * unit(rng.standard_normal((n, DIM)))
        w = base[:, None, :] + 0.5 * unit(rng.standard_normal((n, windows, DIM))).astype(np.float32)
        return unit(w), rng.integers(1000, 2000, n), cl

    def queries(self, n: int, seed: int = 12345) -> np.ndarray:
        rng = np.random.default_rng(seed)
        cl = rng.integers(0, len(self.centres), n)
        return unit(0.4 * self.centres[cl] + 0.3 * self.u + 0.87 * unit(rng.standard_normal((n, DIM))))


def write_shard(path: Path, synth: Synth, lo: int, hi: int, windows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    w, years, _ = synth.tracks(lo, hi, windows, seed=lo)
    meta = synth.metadata(lo, hi)
    n = hi - lo
    paths = np.repeat(
        np.array([f"/lib/artist{i % 5000}/track{i:07d}.flac" for i in range(lo, hi)], dtype=object), windows
    )
    starts = np.tile(np.arange(windows, dtype=np.float64) * 10, n)
    flat = pa.array(w.reshape(-1), pa.float32())
    vectors = pa.FixedSizeListArray.from_arrays(flat, DIM)
    table = pa.table(
        {
            "path": pa.array(paths.tolist(), pa.string()),
            "start": starts,
            "end": starts + 10,
            "vector": vectors,
            "title": pa.array(np.repeat([f"track {i}" for i in range(lo, hi)], windows).tolist()),
            "artist": pa.array(np.repeat([f"Artist {a:04d}" for a in meta["artist"]], windows).tolist()),
            "album": pa.array(np.repeat([f"Album {a:04d}" for a in meta["album"]], windows).tolist()),
            "genre": pa.array(np.repeat([f"Genre {g:03d}." for g in meta["genre"]], windows).tolist()),
            "year": np.repeat(years, windows),
            "duration": np.repeat(meta["duration"], windows),
        }
    )
    pq.write_table(table, path, compression="none")


def du(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def truths(store, queries: np.ndarray, k: int = 10) -> dict:
    """Exact top-k track ids per (by, filter) from every stored vector (chunks, two threads)."""
    rows = store.conn.execute("select id, year, duration, genre, artist, album from tracks order by id").fetchall()
    ids_all = np.array([r[0] for r in rows], np.int64)
    column = {
        name: [r[j] for r in rows] for j, name in enumerate(("id", "year", "duration", "genre", "artist", "album"))
    }
    del rows
    track_scores = np.full((len(queries), len(ids_all)), -np.inf, np.float32)
    window_best = np.full((len(queries), len(ids_all)), -np.inf, np.float32)
    for ids, vecs in store.iter_vectors("tracks", 200_000):
        track_scores[:, np.searchsorted(ids_all, ids)] = queries @ vecs.T
    wrows = store.conn.execute("select id, track_id from windows order by id").fetchall()
    wid = np.array([r[0] for r in wrows], np.int64)
    wcol = np.searchsorted(ids_all, np.array([r[1] for r in wrows], np.int64))
    del wrows
    for ids, vecs in store.iter_vectors("windows", 300_000):
        cols = wcol[np.searchsorted(wid, ids)]
        s = queries @ vecs.T
        order = np.argsort(cols, kind="stable")
        cols_s, s_s = cols[order], s[:, order]
        starts = np.flatnonzero(np.r_[True, cols_s[1:] != cols_s[:-1]])
        best = np.maximum.reduceat(s_s, starts, axis=1)
        uc = cols_s[starts]
        window_best[:, uc] = np.maximum(window_best[:, uc], best)
    out = {}
    for name, spec in FILTERS.items():
        mask = filter_mask(column, spec)
        for by, mat in (("track", track_scores), ("window", window_best)):
            m = np.where(mask, mat, -np.inf)
            top = np.argsort(-m, axis=1)[:, : min(k, int(mask.sum()))]
            out[f"{by}|{name}"] = [ids_all[row].tolist() for row in top]
        out[f"matching|{name}"] = int(mask.sum())
    return out


def filter_mask(column: dict[str, list], spec: dict | None) -> np.ndarray:
    """Which tracks (in ``column``'s order) pass the filter ``spec``, computed here in Python."""
    n = len(column["id"])
    if spec is None:
        return np.ones(n, bool)
    if "year" in spec:
        year = np.array(column["year"], np.float64)
        return (year >= spec["year"][0]) & (year <= spec["year"][1])
    if "min_duration" in spec:
        duration = np.array(column["duration"], np.float64)
        return (duration >= spec["min_duration"]) & (duration <= spec["max_duration"])
    ((name, needle),) = spec.items()
    needle = needle.lower()
    return np.fromiter((v is not None and needle in v.lower() for v in column[name]), bool, n)


class Phases:
    """Per-phase wall time and page faults of the serving path (``--profile``): wraps the
    functions each phase runs in, and charges each call its own time and major/minor page
    faults (``getrusage`` before and after), less what the wrapped calls inside it took."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = {}
        self._stack: list[list[float]] = []

    @staticmethod
    def _now() -> tuple[float, float, float, float]:
        import resource

        ru = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), float(ru.ru_majflt), float(ru.ru_inblock), float(ru.ru_minflt)

    def wrap(self, owner: object, name: str, label: str) -> None:
        import functools

        fn = getattr(owner, name, None) if owner is not None else None
        if fn is None:  # another version of the code: nothing to time there
            return

        @functools.wraps(fn)
        def timed(*a, **kw):  # type: ignore[no-untyped-def]
            start = self._now()
            self._stack.append([0.0, 0.0, 0.0, 0.0])
            try:
                return fn(*a, **kw)
            finally:
                inner = self._stack.pop()
                end = self._now()
                spent = [e - s for e, s in zip(end, start)]
                own = [sp - i for sp, i in zip(spent, inner)]
                tot = self.totals.setdefault(label, [0.0, 0.0, 0.0, 0.0, 0.0])
                for j in range(4):
                    tot[j] += own[j]
                tot[4] += 1
                if self._stack:
                    for j in range(4):
                        self._stack[-1][j] += spent[j]

        setattr(owner, name, timed)

    def install(self) -> None:
        from musicsearch import store, vectors
        from musicsearch.search import runner
        from musicsearch.vectors import approx
        from musicsearch.vectors import query as search

        for owner, name, label in (
            (runner, "search_vector", "other (python, glue)"),
            (search, "_matching", "sqlite: count matching"),
            (search, "_broad", "sqlite: broad? (count)"),
            (search, "_passing", "sqlite: which candidates pass"),
            (getattr(search, "_Matching", None), "__init__", "filter: numpy mask"),
            (getattr(search, "_Matching", None), "count", "filter: count matching"),
            (getattr(search, "_Matching", None), "ids", "filter: list matching ids"),
            (getattr(search, "_Matching", None), "passing", "filter: which candidates pass"),
            (store.Store, "filter_columns", "filter: columns (read per generation)"),
            (store.Store, "filter_mask", "filter: numpy mask (text columns read per generation)"),
            (store.Store, "filtered_ids", "sqlite: list matching ids"),
            (approx, "_selector", "selector build"),
            (vectors.ApproxIndex, "_ivf_search", "IVF search (faiss; python when split)"),
            (vectors.ApproxIndex, "_coarse", "IVF search (faiss)"),
            (vectors.Sidecar, "gather", "sidecar re-rank reads"),
            (vectors.ApproxIndex, "best_windows", "windows of tracks (scoring)"),
            (vectors.ApproxIndex, "exact", "exact over subset"),
            (store.Store, "window_vectors", "sqlite: window vectors (segments)"),
            (store.Store, "windows_by_id", "sqlite: windows by id"),
            (store.Store, "tracks", "sqlite: track metadata"),
            (store.Store, "tags_of", "sqlite: tags"),
        ):
            self.wrap(owner, name, label)

    def take(self, queries: int) -> dict:
        out = {k: [v[0] * 1000 / queries, *(x / queries for x in v[1:])] for k, v in self.totals.items()}
        self.totals = {}
        return out


def resident(index_dir: Path) -> dict[str, list[int]]:
    """How much of each index file is in the page cache (``fincore``; empty without it)."""
    files = sorted(str(p) for p in index_dir.iterdir() if p.suffix in (".f16", ".db", ".faiss"))
    try:
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", *files], capture_output=True, text=True)
    except OSError:
        return {}
    found = {}
    for line in out.stdout.splitlines():
        res, _pages, size, name = line.split(maxsplit=3)
        found[Path(name).name] = [int(res), int(size)]
    return found


def warm_up(index_dir: Path) -> float:
    """Read the sidecars once (what a serving machine's page cache holds after a while); seconds."""
    t0 = time.perf_counter()
    buf = bytearray(16 << 20)
    for p in sorted(index_dir.glob("*.f16")):
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass
    return time.perf_counter() - t0


def timed_queries(idx, queries: np.ndarray, truth: dict, by: str, name: str, filters) -> dict:  # type: ignore[no-untyped-def]
    """p50/p95 (ms), R@10 and how many came back short, of ``queries`` one at a time; the first
    query's time apart (a text filter's first query reads its column)."""
    times, recalls, short = [], [], 0
    for qi, q in enumerate(queries):
        t0 = time.perf_counter()
        (hits,) = idx.search_vectors(q, 10, filters, by=by)
        times.append(time.perf_counter() - t0)
        exact = truth[f"{by}|{name}"][qi]
        recalls.append(len({h.track.id for h in hits} & set(exact)) / max(len(exact), 1))
        short += len(hits) < min(10, truth[f"matching|{name}"])
    return {
        "p50_ms": 1000 * float(np.percentile(times, 50)),
        "p95_ms": 1000 * float(np.percentile(times, 95)),
        "first_ms": 1000 * times[0],
        "recall": float(np.mean(recalls)),
        "short": short,
        "queries": len(times),
    }


def serve(
    index_dir: Path,
    queries_path: Path,
    truth_path: Path,
    profile: bool = False,
    warm: bool = False,
    sql_queries: int = 0,
) -> dict:
    """Runs in a fresh process: open, warm, query one at a time on one thread."""
    import faiss

    from musicsearch import MusicIndex
    from musicsearch.filters import Filters

    faiss.omp_set_num_threads(1)
    queries = np.load(queries_path)
    truth = json.loads(truth_path.read_text())
    cache: dict = {"before": resident(index_dir)}
    if warm:
        cache["warm_s"] = warm_up(index_dir)
        cache["warmed"] = resident(index_dir)
    phases = Phases() if profile else None
    if phases is not None:
        phases.install()
    idx = MusicIndex(index_dir)
    started = time.perf_counter()
    idx.search_vectors(queries[:1], 10)
    idx.search_vectors(queries[:1], 10, by="window")
    load_s = time.perf_counter() - started
    import threading

    for thread in threading.enumerate():  # measured once the sidecars are read in (vectors.prefetch)
        if thread.name.startswith("musicsearch-prefetch"):
            thread.join()
    cache["prefetched_s"] = time.perf_counter() - started
    out: dict = {"load_s": load_s, "indexes": {k: v.__dict__ for k, v in idx.vector_indexes().items()}}
    out["page_cache"] = cache
    out["peak_mb_after"] = {"open": rss_mb()[1]}  # VmHWM after each phase: which one set the peak
    if phases is not None:
        phases.take(1)
        out["phases"] = {}
    for by in ("track", "window"):
        for name, spec in FILTERS.items():
            filters = Filters(**spec) if spec else None
            out[f"{by}|{name}"] = timed_queries(idx, queries, truth, by, name, filters)
            out["peak_mb_after"][f"{by}|{name}"] = rss_mb()[1]
            if phases is not None:
                out["phases"][f"{by}|{name}"] = phases.take(len(queries))
    if sql_queries:  # the text filters as before the text columns: every matching id from SQLite
        from musicsearch.store import Store

        columnar = Store.filter_mask
        Store.filter_mask = lambda self, f: None  # type: ignore[method-assign,assignment,misc]
        try:
            for by in ("track", "window"):
                for name in TEXT_FILTERS:
                    filters = Filters(**FILTERS[name])  # type: ignore[arg-type]
                    out[f"{by}|{name}|sql"] = timed_queries(idx, queries[:sql_queries], truth, by, name, filters)
        finally:
            Store.filter_mask = columnar  # type: ignore[method-assign]
    out["rss_mb"], out["peak_rss_mb"] = rss_mb()
    cache["after"] = resident(index_dir)
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    # file-backed pages (the memory-mapped sidecars and index files) are page cache the kernel can drop
    out["rss_anon_mb"] = int(status["RssAnon"].split()[0]) / 1024
    out["rss_file_mb"] = int(status["RssFile"].split()[0]) / 1024
    return out


def bench_size(n: int, args: argparse.Namespace, synth: Synth, queries: np.ndarray) -> dict:
    import faiss

    from musicsearch.indexing.ingest import ingest
    from musicsearch.store import IndexMeta, Store
    from musicsearch.vectors import ScalePolicy, VectorIndexes

    faiss.omp_set_num_threads(args.build_threads)
    policy = ScalePolicy()
    if args.exact_max is not None:  # development: approximate indexes at small N
        policy = ScalePolicy(exact_max={"tracks": args.exact_max, "windows": args.exact_max * args.windows})
    work = Path(args.work) / f"n{n}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "shards").mkdir(parents=True)
    index_dir = work / "index"
    store = Store(index_dir, create=True)
    store.record_meta(IndexMeta.new("synthetic/clap-like", None, DIM, 10.0, checked=False))
    res: dict = {"n": n}
    ingest_s = 0.0
    for lo in range(0, n, args.shard):
        shard = work / "shards" / f"{lo:08d}.parquet"
        write_shard(shard, synth, lo, min(n, lo + args.shard), args.windows)
        t0 = time.perf_counter()
        ingest(store, [shard], DIM)
        ingest_s += time.perf_counter() - t0
        shard.unlink()
        print(f"  n={n}: ingested {min(n, lo + args.shard)} tracks, {ingest_s:.0f} s", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    cache = VectorIndexes(store, policy)
    cache.get("tracks")
    tracks_s = time.perf_counter() - t0
    cache.get("windows")
    index_s = time.perf_counter() - t0
    res.update(ingest_s=ingest_s, tracks_index_s=tracks_s, index_s=index_s, build_s=ingest_s + index_s)
    res["build_peak_rss_mb"] = rss_mb()[1]
    res["disk_bytes"] = du(index_dir)
    res["disk_db_bytes"] = (index_dir / "musicsearch.db").stat().st_size
    print(f"  n={n}: indexes built in {index_s:.0f} s; exact answers...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    truth = truths(store, queries)
    res["truth_s"] = time.perf_counter() - t0
    print(f"  n={n}: exact answers in {res['truth_s']:.0f} s; serving...", file=sys.stderr, flush=True)
    (work / "truth.json").write_text(json.dumps(truth))
    np.save(work / "queries.npy", queries)
    res["serve"], res["serve_s"] = run_serve(
        index_dir, work / "queries.npy", work / "truth.json", args.profile, args.warm, sql_queries(args)
    )
    print(
        f"  n={n}: served in {res['serve_s']:.0f} s; adding and removing 1,000 tracks...", file=sys.stderr, flush=True
    )
    # add then remove 1,000 tracks: SQLite write, then the derived indexes brought forward
    shard = work / "shards" / "extra.parquet"
    write_shard(shard, synth, n, n + 1000, args.windows)
    t0 = time.perf_counter()
    ingest(store, [shard], DIM)
    t1 = time.perf_counter()
    cache.get("tracks")
    cache.get("windows")
    t2 = time.perf_counter()
    res["add_db_s"], res["add_index_s"] = t1 - t0, t2 - t1
    ids = [r[0] for r in store.conn.execute("select id from tracks order by id limit 1000")]
    t0 = time.perf_counter()
    with store.write():
        store.remove_tracks(ids)
    t1 = time.perf_counter()
    cache.get("tracks")
    cache.get("windows")
    t2 = time.perf_counter()
    res["remove_db_s"], res["remove_index_s"] = t1 - t0, t2 - t1
    res["after_update"] = {k: cache.get(k).ntotal for k in ("tracks", "windows")}
    res["disk_after_bytes"] = du(index_dir)
    store.close()
    return res


def cached(files: dict[str, list[int]]) -> str:
    """'sidecars 6.1/7.2 GB, SQLite 3.0/14.5 GB' (in the page cache / size)."""
    parts = []
    for label, suffixes in (("sidecars", (".f16",)), ("FAISS", (".faiss",)), ("SQLite", (".db",))):
        picked = [v for k, v in files.items() if k.endswith(suffixes)]
        if picked:
            parts.append(f"{label} {sum(v[0] for v in picked) / 1e9:.1f}/{sum(v[1] for v in picked) / 1e9:.1f} GB")
    return ", ".join(parts) or "?"


def served(serve: dict, key: str) -> str:
    """'4.1/6.0, 0.990, 0' (p50/p95 ms, R@10, short), with the SQLite way beside it when served."""
    text = "{p50_ms:.1f}/{p95_ms:.1f}, {recall:.3f}, {short}".format(**serve[key])
    if "first_ms" in serve[key] and key.split("|")[1] in TEXT_FILTERS:
        text += f" (first {serve[key]['first_ms']:.0f})"
    if f"{key}|sql" in serve:
        text += " | SQLite: {p50_ms:.0f}/{p95_ms:.0f}, {recall:.3f}, {short}".format(**serve[f"{key}|sql"])
    return text


def report(results: list[dict]) -> None:
    cols = [f"{r['n']:,} tracks" for r in results]
    w = max(16, *(len(c) for c in cols))
    rows: list[tuple[str, list[str]]] = []

    def add(label: str, f) -> None:  # type: ignore[no-untyped-def]
        rows.append((label, [f(r) for r in results]))

    for kind in ("tracks", "windows"):
        add(f"{kind} index", lambda r, k=kind: r["serve"]["indexes"][k]["factory"])
        add(
            f"{kind} nprobe / rerank / R@10 (build)",
            lambda r, k=kind: (
                "exact"
                if r["serve"]["indexes"][k]["family"] == "exact"
                else "{nprobe} / {rerank} / {recall_at_10:.3f}".format(**r["serve"]["indexes"][k])
            ),
        )
    add("build: ingest (s)", lambda r: f"{r['ingest_s']:.0f}")
    add("build: indexes (s)", lambda r: f"{r['index_s']:.0f} (tracks {r['tracks_index_s']:.0f})")
    add("build: total (s)", lambda r: f"{r['build_s']:.0f}")
    add("build: peak RSS (MB)", lambda r: f"{r['build_peak_rss_mb']:.0f}")
    add("disk: all / SQLite (GB)", lambda r: f"{r['disk_bytes'] / 1e9:.1f} / {r['disk_db_bytes'] / 1e9:.1f}")
    add("serve: in page cache before serving", lambda r: cached(r["serve"]["page_cache"]["before"]))
    add(
        "serve: open + first query; sidecars read in (s)",
        lambda r: f"{r['serve']['load_s']:.1f}; {r['serve']['page_cache'].get('prefetched_s', 0):.1f}",
    )
    add("serve: RSS / peak (MB)", lambda r: f"{r['serve']['rss_mb']:.0f} / {r['serve']['peak_rss_mb']:.0f}")
    add(
        "serve: RSS anonymous + file-backed (MB)",
        lambda r: f"{r['serve']['rss_anon_mb']:.0f} + {r['serve']['rss_file_mb']:.0f}",
    )
    for by in ("track", "window"):
        for name in FILTERS:
            add(f"by {by}, {name}: p50/p95 ms, R@10, short", lambda r, key=f"{by}|{name}": served(r["serve"], key))
    add(
        "add 1,000 tracks: SQLite + indexes = total (s)",
        lambda r: f"{r['add_db_s']:.2f} + {r['add_index_s']:.2f} = {r['add_db_s'] + r['add_index_s']:.2f}",
    )
    add(
        "remove 1,000 tracks: SQLite + indexes = total (s)",
        lambda r: f"{r['remove_db_s']:.2f} + {r['remove_index_s']:.2f} = {r['remove_db_s'] + r['remove_index_s']:.2f}",
    )
    add("exact answers, serving run (s)", lambda r: f"{r['truth_s']:.0f}, {r['serve_s']:.0f}")
    lw = max(len(label) for label, _ in rows)
    w = max(w, *(len(v) for _, vals in rows for v in vals))
    print(f"{'':{lw}}  " + "  ".join(f"{c:>{w}}" for c in cols))
    for label, vals in rows:
        print(f"{label:{lw}}  " + "  ".join(f"{v:>{w}}" for v in vals))


def serve_kept(n: int, args: argparse.Namespace, queries: np.ndarray) -> dict:
    """``--serve-only``: the serving part again on an index kept by ``--keep`` (its ground
    truth recomputed once per store generation: the kept index had 1,000 tracks added and
    removed after its first serving run)."""
    from musicsearch.store import Store

    work = Path(args.work) / f"n{n}"
    index_dir = work / "index"
    store = Store(index_dir)
    truth_path = work / f"truth-g{store.generation}.json"
    res: dict = {"n": n}
    if not truth_path.exists():
        print(f"  n={n}: exact answers for generation {store.generation}...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        truth_path.write_text(json.dumps(truths(store, queries)))
        res["truth_s"] = time.perf_counter() - t0
    store.close()
    np.save(work / "queries.npy", queries)
    res["serve"], res["serve_s"] = run_serve(
        index_dir, work / "queries.npy", truth_path, args.profile, args.warm, sql_queries(args)
    )
    return res


def sql_queries(args: argparse.Namespace) -> int:
    """How many queries serve each text filter the SQLite way too (``--sql``), else 0."""
    return min(args.sql_queries, args.queries) if args.sql else 0


def run_serve(
    index_dir: Path, queries: Path, truth: Path, profile: bool, warm: bool = False, sql: int = 0
) -> tuple[dict, float]:
    """The serving part in a fresh process: (its figures, seconds)."""
    t0 = time.perf_counter()
    cmd = [sys.executable, __file__, "--serve", str(index_dir), str(queries), str(truth), f"--sql-queries={sql}"]
    proc = subprocess.run(
        cmd + (["--profile"] if profile else []) + (["--warm"] if warm else []),
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1]), time.perf_counter() - t0


def report_serving(results: list[dict]) -> None:
    """The serving rows only (``--serve-only``), then each phase's share with ``--profile``."""
    for r in results:
        s = r["serve"]
        print(
            f"{r['n']:,} tracks: open + first query {s['load_s']:.1f} s, RSS {s['rss_mb']:.0f} MB (peak {s['peak_rss_mb']:.0f})"
        )
        for when, files in s.get("page_cache", {}).items():
            shown = f"{files:.0f} s" if isinstance(files, float) else cached(files)
            print(f"  page cache {when}: {shown}")
        for by in ("track", "window"):
            for name in FILTERS:
                print(f"  by {by:6} {name:14}: p50/p95 ms, R@10, short: {served(s, f'{by}|{name}')}")
                for label, (ms, majflt, inblock, minflt, calls) in sorted(
                    s.get("phases", {}).get(f"{by}|{name}", {}).items(), key=lambda kv: -kv[1][0]
                ):
                    print(
                        f"      {label:36} {ms:7.2f} ms/query, faults {majflt:6.1f} major {minflt:7.1f} minor,"
                        f" {inblock * 512 / 1024:8.1f} KB read from disk, {calls:.1f} calls"
                    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        flags = sys.argv[5:]
        sql = next((int(f.split("=")[1]) for f in flags if f.startswith("--sql-queries=")), 0)
        out = serve(
            Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), "--profile" in flags, "--warm" in flags, sql
        )
        print(json.dumps(out))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--windows", type=int, default=6)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--shard", type=int, default=20_000, help="tracks per ingested shard")
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--work", default="/tmp/bench-scale")
    ap.add_argument("--exact-max", type=int, default=None, help="tracks above which indexes turn approximate")
    ap.add_argument("--keep", action="store_true", help="keep the indexes")
    ap.add_argument("--serve-only", action="store_true", help="only the serving part, on indexes kept by --keep")
    ap.add_argument("--profile", action="store_true", help="time and count page faults of each serving phase")
    ap.add_argument("--warm", action="store_true", help="read the sidecars once before serving (a warm page cache)")
    ap.add_argument("--sql", action="store_true", help="serve the text filters the SQLite way too, side by side")
    ap.add_argument("--sql-queries", type=int, default=20, help="queries per text filter the SQLite way")
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING, format="  %(name)s: %(message)s")
    logging.getLogger("musicsearch.vectors").setLevel(logging.INFO)  # each index build's phases
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}", flush=True)
    synth = Synth()
    queries = synth.queries(args.queries)
    results = []
    if args.serve_only:
        for n in args.sizes:
            results.append(serve_kept(n, args, queries))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        report_serving(results)
        print(f"load average after: {Path('/proc/loadavg').read_text().strip()}", flush=True)
        return
    for n in args.sizes:
        results.append(bench_size(n, args, synth, queries))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        if not args.keep:
            shutil.rmtree(Path(args.work) / f"n{n}", ignore_errors=True)
    report(results)
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}", flush=True)


if __name__ == "__main__":
    main()
