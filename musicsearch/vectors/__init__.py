"""The vectors stage: FAISS indexes derived from the store (this package owns FAISS), split
the way autofaiss splits it: one protocol every index answers (``protocol.py``: ``VectorIndex``,
``ScalePolicy``), the exact index (``flat.py``), the approximate one (``approx.py``) with its
float16 sidecar (``sidecar.py``) and build-time tuning (``tune.py``), the files on disk
(``disk.py``) and their lifecycle (``files.py``: ``load_or_build``, ``VectorIndexes``), and the
vector search under every query (``query.py``: ``search_vector``), which asks only the protocol.

SQLite (``store/``) holds every vector; the FAISS files only make search fast and are
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

**Filters keep k** (``query.search_vector`` picks the path; year and duration filters are
evaluated in numpy over ``Store.filter_columns``, others in SQLite): a broad filter (``>= 5 %``
of the tracks) keeps the unfiltered candidates whose track passes, before the re-rank;
a narrower one lists the matching ids: a small share is scanned exactly (windows: every
window of the matching tracks, which the sidecar lists by track), a larger one searched with
a bitmap selector and an ``nprobe`` grown with 1/selectivity, falling back to exact when
fewer than k come back.
"""

from .approx import ApproxIndex, build_approx, read_approx, update_approx
from .disk import IndexState, atomic_write, index_path, state_path, write_index
from .files import VectorIndexes, describe, load_or_build
from .flat import FlatIndex, build, load, update_flat
from .protocol import (
    DEFAULT_POLICY,
    KINDS,
    AnyIndex,
    ScalePolicy,
    SearchResult,
    VectorIndex,
    empty_result,
    range_search,
    search,
    top_k,
)
from .sidecar import GATHER_ROWS, PREFETCH_CHUNK, Sidecar, memory_available, prefetch
from .tune import exact_top, ood_queries, recall_at, tune

__all__ = [
    "DEFAULT_POLICY",
    "GATHER_ROWS",
    "KINDS",
    "PREFETCH_CHUNK",
    "AnyIndex",
    "ApproxIndex",
    "FlatIndex",
    "IndexState",
    "ScalePolicy",
    "SearchResult",
    "Sidecar",
    "VectorIndex",
    "VectorIndexes",
    "atomic_write",
    "build",
    "build_approx",
    "describe",
    "empty_result",
    "exact_top",
    "index_path",
    "load",
    "load_or_build",
    "memory_available",
    "ood_queries",
    "prefetch",
    "range_search",
    "read_approx",
    "recall_at",
    "search",
    "state_path",
    "top_k",
    "tune",
    "update_approx",
    "update_flat",
    "write_index",
]
