"""The public entry point: ``MusicIndex``, a thin facade over an index folder. Each method
hands the work to the module that owns it: indexer (the index run), search (queries and
seeds), classify (labels and tags), store (SQLite), vectors (FAISS), embed (the model)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .classify import Classification, classify_vector, tag_tracks
from .config import DEFAULT_MODEL, Settings
from .embed import ClapEmbedder, Embedder, TextEmbedder, check_not_collapsed, prepared_text_encoder, resolve_model
from .errors import IndexNotFound, MusicSearchError, StorageError, storage_errors
from .filters import Filters
from .indexer import (
    IndexReport,
    Listener,
    Phase,
    _quiet,
    embed_audio_file,
    prepare_audio,
    prepare_queries,
    run_index,
    run_lock,
)
from .ingest import IngestReport
from .lexical import named_query
from .library import content_hash, walk
from .search import Hit, duplicate_groups, resolve_seed, search_vector, similar_query, text_query
from .store import IndexMeta, Store, Track
from .variety import Variety, merge_where, run_search
from .vectors import AnyIndex, IndexState, VectorIndexes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexInfo:
    """Counts and model facts of an index."""

    path: str
    tracks: int
    windows: int
    failures: int
    model: str
    revision: str | None
    dim: int
    window_seconds: float
    pipeline_version: str
    size_bytes: int


class MusicIndex:
    """An index folder (``musicsearch.db`` plus derived FAISS files).

    Args:
        path: the index folder; created on the first ``index`` run.
        settings: everything else (model, device, batch size...); ``path`` wins over
            ``settings.index_dir``. Default: ``Settings.from_env()``, as the CLI does.
        embedder: use this instead of loading the model named by the settings or the index
            (tests pass a fake one); it then also embeds the prompts.
    """

    def __init__(
        self, path: Path | str | None = None, *, settings: Settings | None = None, embedder: Embedder | None = None
    ):
        settings = settings or Settings.from_env()
        self.settings = replace(settings, index_dir=Path(path)) if path is not None else settings
        self.path = self.settings.index_dir
        self._embedder = embedder
        self._text: TextEmbedder | None = embedder
        self._store: Store | None = None
        self._vectors: VectorIndexes | None = None
        self._checked = False

    def _open(self, create: bool = False) -> Store:
        if self._store is None:
            self._store = Store(self.path, create=create)
            self._vectors = VectorIndexes(self._store)
        return self._store

    def _index(self, kind: str = "tracks") -> AnyIndex:
        self._open()
        assert self._vectors is not None
        return self._vectors.get(kind)

    def embedder(self, on_event: Listener = _quiet) -> Embedder:
        """The model of this index (loaded on first use)."""
        if self._embedder is None:
            store = self._store or (self._open() if (self.path / "musicsearch.db").exists() else None)
            meta = store.index_meta() if store else None
            model = self.settings.model or (meta.model if meta else None) or DEFAULT_MODEL
            revision = self.settings.revision or (meta.revision if meta else None)
            on_event(Phase(f"Loading the model {model}"))
            self._embedder = ClapEmbedder(model, revision, self.settings.device, self.settings.precision)
        return self._embedder

    def _text_encoder(self, store: Store) -> TextEmbedder:
        """What embeds prompts: the model's prepared ONNX text graph when this machine has one
        (no torch import), else the model itself."""
        if self._text is None:
            meta = store.index_meta()
            wanted = self.settings.model
            if meta is not None and (wanted is None or resolve_model(wanted) == meta.model):
                self._text = prepared_text_encoder(meta.model, meta.revision)
            if self._text is None:
                log.info("no prepared text graph for this index's model here; queries run the torch text tower")
                self._text = self.embedder()
        return self._text

    def _check_model(self, model: TextEmbedder) -> None:
        """The collapse guard, once per MusicIndex; skipped when the index records that its
        model passed it."""
        if self.settings.model_check and not self._checked:
            meta = self._store.index_meta() if self._store is not None else None
            if not (meta is not None and meta.passed_check(model.model_id)):
                check_not_collapsed(model)
        self._checked = True

    def _bind_model(self, store: Store, model: TextEmbedder, window_seconds: float | None = None) -> None:
        """Record the model in a new index (``window_seconds`` given by the index run), or
        refuse a model other than the index's."""
        meta = store.index_meta()
        if meta is not None:
            meta.check(model.model_id, model.revision, model.dim, self.path)
            return
        if window_seconds is None:
            raise IndexNotFound(
                f"index {self.path.absolute()} holds nothing yet; build it with: musicsearch index FOLDER"
            )
        self._check_model(model)
        checked = self.settings.model_check
        store.record_meta(IndexMeta.new(model.model_id, model.revision, model.dim, window_seconds, checked=checked))

    def _ready(self) -> tuple[Store, TextEmbedder]:
        """The store and the prompt encoder, checked against each other and by the guard."""
        store = self._open()
        encoder = self._text_encoder(store)
        self._bind_model(store, encoder)
        self._check_model(encoder)
        return store, encoder

    def _embed_file(self, path: Path) -> object:
        embedder = self.embedder()
        self._bind_model(self._open(), embedder)
        prepare_audio(embedder, self.settings)
        budget, batch = self.settings.window_budget(embedder.device), self.settings.batch_for(embedder.device)
        return embed_audio_file(embedder, path, batch, budget)

    def _embed_range(self, path: Path, start: float, end: float) -> object:
        """A file outside the index, from ``start`` to ``end`` s: the normalized mean of its
        windows that overlap that range (only those are embedded)."""
        import numpy as np

        from .audio import iter_windows
        from .embed import embed_windows
        from .store import track_vector

        embedder = self.embedder()
        self._bind_model(self._open(), embedder)
        prepare_audio(embedder, self.settings)
        wanted = [w.samples for w in iter_windows(path, embedder.window_seconds) if w.start < end and w.end > start]
        if not wanted:
            raise MusicSearchError(f"{path} is shorter than {start:g} s")
        return track_vector(np.asarray(embed_windows(embedder, np.stack(wanted))))

    def _hits(self, store: Store, q: object, k: int, filters: Filters | None, by: str, **kw: object) -> list[Hit]:
        if k < 1:
            raise MusicSearchError("k must be at least 1")
        where = filters.sql() if filters is not None and filters.active else None
        return search_vector(store, self._index, q, k, where=where, by=by, **kw)  # type: ignore[arg-type]

    # precomputed embeddings in and out (issue 11) -----------------------------------
    @storage_errors
    def search_vectors(
        self, vectors: object, k: int = 10, filters: Filters | None = None, *, by: str = "track"
    ) -> list[list[Hit]]:
        """One hit list per query vector ((n, dim) or (dim,) unit vectors of the index's
        model, e.g. text embeddings computed elsewhere); no model is loaded."""
        import numpy as np

        store = self._open()
        q = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        meta = store.index_meta()
        if q.ndim != 2 or (meta is not None and q.shape[1] != meta.dim) or not np.isfinite(q).all():
            raise MusicSearchError(
                f"query vectors must be finite and {meta.dim if meta else '?'}-d, not shaped {q.shape}"
            )
        return [self._hits(store, v, k, filters, by) for v in q]

    @storage_errors
    def ingest(self, shards: Sequence[Path | str], *, model: str | None = None) -> IngestReport:
        """Add window embeddings computed elsewhere (Parquet shards or folders of them; schema
        in musicsearch/ingest.py) without loading any model: a new index is bound to ``model``
        (or ``settings.model``) and the shards' dimension; re-ingesting a shard changes
        nothing. The derived indexes are brought up to date.

        Raises:
            MusicSearchError: no model named for a new index, another model or dimension
                than the index's, a missing or malformed shard.
        """
        from .errors import ModelMismatch
        from .ingest import ingest, shard_dim, shard_files

        files = shard_files(shards)
        dim = next((d for d in map(shard_dim, files) if d), 0)
        exists = (self.path / "musicsearch.db").exists()
        meta = self._open().index_meta() if exists else None
        wanted = model or self.settings.model
        if meta is None:
            if not wanted:
                raise MusicSearchError("name the model that computed the shards: --model MODEL")
            if not dim:
                raise MusicSearchError("the shards hold no vectors")
        elif wanted and resolve_model(wanted) != meta.model:
            raise ModelMismatch(f"index {self.path} was built with model {meta.model}, not {wanted}")
        store = self._open(create=True)
        if meta is None:
            store.record_meta(
                IndexMeta.new(resolve_model(wanted or ""), self.settings.revision, dim, 10.0, checked=False)
            )
        report = ingest(store, files, store.index_meta().dim)  # type: ignore[union-attr]
        self._index("tracks")
        self._index("windows")
        return report

    def vector_indexes(self) -> dict[str, IndexState]:
        """kind -> ``vectors.IndexState`` (exact or IVF, nprobe, measured R@10) of the current indexes."""
        from .vectors import describe

        store = self._open()
        return {kind: describe(store, kind) for kind in ("tracks", "windows")}

    @storage_errors
    def index(
        self,
        folder: Path | str,
        *,
        retry_failed: bool = False,
        on_event: Listener = _quiet,
        cluster: str | None = None,
        shards: Path | str | None = None,
    ) -> IndexReport:
        """Index the audio files below ``folder`` (or one file): add new ones, re-embed
        changed ones, follow moves, drop vanished ones, record failures. ``on_event`` hears
        each phase (``Phase``), the start of embedding (``RunStart``, with an ETA) and each
        committed batch (``Progress``). ``cluster`` (``auto`` or HOST:PORT) embeds on a Ray
        cluster (musicsearch/cluster.py); with ``shards`` (a folder) the cluster's vectors go
        to Parquet shards there instead of this index (merge them with ``ingest``).

        Raises:
            MusicSearchError: bad folder, model that cannot load or does not match the index.
        """
        root = Path(folder).expanduser().absolute()
        if not root.exists():
            raise MusicSearchError(f"no such file or folder: {root}")
        if self.path.exists() and not self.path.is_dir():
            raise StorageError(f"--index {self.path.absolute()} is a file, not a folder; pass a folder for the index")
        started = time.perf_counter()
        unreadable: dict[str, str] = {}
        files = list(walk(root, self.settings.extensions, on_error=lambda p, why: unreadable.update({str(p): why})))
        embedder = self.embedder(on_event)  # before creating anything: a bad model leaves no empty index
        if shards is not None:  # a cluster run into Parquet shards: this index is left alone
            from .cluster import index_to_shards

            report = index_to_shards(
                embedder,
                root,
                files,
                Path(shards).expanduser(),
                settings=self.settings,
                address=cluster or "auto",
                retry_failed=retry_failed,
                unreadable=unreadable,
                on_event=on_event,
            )
            report.seconds = time.perf_counter() - started
            return report
        store = self._open(create=True)
        self._bind_model(store, embedder, embedder.window_seconds)
        with run_lock(self.path):
            if cluster is not None:  # embedding on a Ray cluster; the plan and the writes stay here
                from .cluster import run_index_cluster

                report = run_index_cluster(
                    store,
                    embedder,
                    root,
                    files,
                    settings=self.settings,
                    address=cluster,
                    retry_failed=retry_failed,
                    unreadable=unreadable,
                    on_event=on_event,
                )
            else:
                budget = self.settings.window_budget(embedder.device)
                report = run_index(
                    store,
                    embedder,
                    root,
                    files,
                    batch_size=self.settings.batch_for(embedder.device),
                    workers=self.settings.workers,
                    max_windows=budget,
                    retry_failed=retry_failed,
                    unreadable=unreadable,
                    on_event=on_event,
                    before_embed=lambda n: prepare_audio(embedder, self.settings, on_event, n * (budget or 18)),
                )
            on_event(Phase("Saving the search index"))
            self._index()
            report.notes.extend(prepare_queries(embedder, self.settings, on_event))
            self._text = None  # the next query picks up a newly prepared text graph
        report.seconds = time.perf_counter() - started
        return report

    @storage_errors
    def search(
        self,
        text: str | Sequence[str],
        k: int = 10,
        *,
        negative: Sequence[str] = (),
        filters: Filters | None = None,
        by: str = "track",
        min_score: float | None = None,
        lexical: bool = True,
        include_named: bool = False,
        variety: Variety | None = None,
        order: str = "score",
    ) -> list[Hit]:
        """The ``k`` tracks that best match one or more prompts (``"prompt::2"`` weighs one;
        ``negative`` steers away), exactly k when at least k tracks pass ``filters``;
        ``by`` is ``track`` (mean vector) or ``window`` (best window).

        With ``lexical`` (the default) names in a prompt act as names (musicsearch/lexical.py):
        a whole title/artist/album ranks its tracks first (fused with the sound ranking),
        "by X" keeps X's tracks, "like X" seeds from X's tracks (left out unless
        ``include_named``); each hit's ``matched`` says why. ``variety`` caps artists, drops
        duplicates, excludes, shuffles (musicsearch/variety.py); ``order="smooth"`` orders the
        hits so that neighbours sound alike."""
        texts = [text] if isinstance(text, str) else list(text)
        store, encoder = self._ready()
        if k < 1:
            raise MusicSearchError("k must be at least 1")
        where = filters.sql() if filters is not None and filters.active else None
        if not lexical:
            q = text_query(encoder, texts, negative)
            return run_search(
                store, self._index, q, k, where=where, by=by, min_score=min_score, variety=variety, order=order
            )
        nq = named_query(store, encoder, texts, negative, include_named=include_named)
        return run_search(
            store,
            self._index,
            nq.vector,
            k,
            where=merge_where(where, nq.where),
            by=by,
            exclude=nq.exclude,
            min_score=min_score,
            names=nq.names,
            matched=nq.matched,
            variety=variety,
            order=order,
        )

    @storage_errors
    def similar(
        self,
        targets: str | Path | Sequence[str | Path],
        k: int = 10,
        *,
        text: Sequence[str] = (),
        negative: Sequence[str] = (),
        filters: Filters | None = None,
        by: str = "track",
        min_score: float | None = None,
        variety: Variety | None = None,
        order: str = "score",
    ) -> list[Hit]:
        """Tracks like the seed(s): indexed tracks (path, or a unique part of the path or
        title) or audio files (decoded and embedded on the fly), with optional prompts mixed
        in. The seed tracks themselves are never returned. ``variety`` and ``order`` as in
        ``search``."""
        seeds = [targets] if isinstance(targets, (str, Path)) else list(targets)
        store = self._open()
        encoder = self._ready()[1] if (text or negative) else None
        q, exclude = similar_query(
            store,
            seeds,
            self._embed_file,  # type: ignore[arg-type]
            encoder,
            text,
            negative,
            embed_range=self._embed_range,  # type: ignore[arg-type]
        )
        if k < 1:
            raise MusicSearchError("k must be at least 1")
        where = filters.sql() if filters is not None and filters.active else None
        return run_search(
            store,
            self._index,
            q,
            k,
            where=where,
            by=by,
            exclude=exclude,
            min_score=min_score,
            variety=variety,
            order=order,
        )

    @storage_errors
    def path_between(
        self,
        start: str | Path,
        end: str | Path,
        n: int = 12,
        *,
        filters: Filters | None = None,
        variety: Variety | None = None,
    ) -> list[Hit]:
        """A playlist of ``n`` indexed tracks from ``start`` to ``end`` (each a path, or a
        unique part of a path or title) whose steps move steadily through the embedding space
        (musicsearch/paths.py), with the filters and ``variety`` (per-artist cap, duplicates,
        exclusions) honoured; each hit's score is its cosine to the step before."""
        from .paths import path_hits, path_ids
        from .variety import accepts

        store = self._open()
        ends = []
        for target in (start, end):
            _, track_id = resolve_seed(store, target, self._embed_file)  # type: ignore[arg-type]
            if track_id is None:
                raise MusicSearchError(f"{str(target)!r} is not an indexed track: a path runs between indexed tracks")
            ends.append(track_id)
        variety = variety or Variety()
        where = merge_where(filters.sql() if filters is not None and filters.active else None, variety.sql())
        ids = path_ids(store, self._index, ends[0], ends[1], n, where=where, accept=accepts(store, variety))
        return path_hits(store, ids)

    @storage_errors
    def duplicates(self, threshold: float = 0.995) -> list[list[tuple[Track, float]]]:
        """Groups of near-identical recordings (track cosine >= ``threshold``), largest first;
        each track comes with its best cosine to another member. No model is loaded."""
        if not -1.0 <= threshold <= 1.0:
            raise MusicSearchError("threshold must be between -1 and 1")
        store = self._open()
        return duplicate_groups(store, self._index(), threshold)

    @storage_errors
    def classify(self, target: str | Path, labels: str | Sequence[str], template: str = "{}") -> Classification:
        """Zero-shot classification of an indexed track (stored vector) or an audio file:
        each label's softmax probability with the model's logit scale, best first."""
        store, encoder = self._ready()
        vec, _ = resolve_seed(store, target, self._embed_file)  # type: ignore[arg-type]
        return classify_vector(encoder, vec, labels, template)

    @storage_errors
    def tag(self, *, top: int = 3, extra_labels: Sequence[str] = (), retag: bool = False) -> int:
        """Give every indexed track (only untagged ones unless ``retag``) its ``top`` labels
        from each built-in vocabulary and from ``extra_labels``; returns how many were tagged."""
        store, encoder = self._ready()
        return tag_tracks(store, encoder, top=top, extra_labels=extra_labels, retag=retag)

    @storage_errors
    def warm(self) -> None:
        """Load what queries need (text encoder, FAISS index) before the first one comes."""
        self._ready()
        self._index()

    @storage_errors
    def info(self) -> IndexInfo:
        """Counts, model and size of the index (no model is loaded)."""
        store = self._open()
        counts, meta = store.counts(), store.index_meta()
        return IndexInfo(
            path=str(self.path.absolute()),
            tracks=counts["tracks"],
            windows=counts["windows"],
            failures=counts["failures"],
            model=meta.model if meta else "",
            revision=meta.revision if meta else None,
            dim=meta.dim if meta else 0,
            window_seconds=meta.window_seconds if meta else 0.0,
            pipeline_version=meta.pipeline_version if meta else "",
            size_bytes=sum(p.stat().st_size for p in self.path.iterdir() if p.is_file()),
        )

    @storage_errors
    def window_scores(
        self,
        track_id: int,
        text: str | None = None,
        *,
        negative: Sequence[str] = (),
        like: int | None = None,
        lexical: bool = True,
    ) -> list[dict]:
        """[{start, end, score}] of each window of a track: its cosine to a text query (names
        in it count, unless ``lexical`` is off) or to another track's vector (``like``)."""
        from .libmap import window_scores

        if like is not None:
            store = self._open()
            _, vecs = store.track_vectors([like])
            if not len(vecs):
                raise MusicSearchError(f"no track {like}")
            return window_scores(store, track_id, vecs[0])
        store, encoder = self._ready()
        if lexical:
            from .lexical import named_query

            return window_scores(store, track_id, named_query(store, encoder, [text or ""], negative).vector)
        return window_scores(store, track_id, text_query(encoder, [text or ""], negative))

    @storage_errors
    def library_map(self) -> list:
        """Every track on a 2-D map of the library (libmap.MapPoint), cached per generation."""
        from .libmap import library_map

        return library_map(self._open())

    @storage_errors
    def tracks(self, ids: Sequence[int]) -> dict[int, Track]:
        """The indexed tracks among ``ids``, by id."""
        return self._open().tracks(ids)

    @storage_errors
    def track(self, track_id: int) -> tuple[Track, list[tuple[str, str, float]]] | None:
        """An indexed track and its tags as (vocab, label, score), best first; or None."""
        store = self._open()
        track = store.tracks([track_id]).get(track_id)
        return (track, store.tags_of([track_id])[track_id]) if track else None

    @storage_errors
    def tracks_under(self, path: Path | str) -> dict[str, Track]:
        """The indexed tracks at or below ``path`` (a file or a folder), by absolute path (the
        beets plugin maps library items to tracks with it); no model is loaded."""
        store = self._open()
        known = store.known_files(Path(path).expanduser().absolute())
        tracks = store.tracks(row[0] for row in known.values())
        return {p: tracks[row[0]] for p, row in known.items() if row[0] in tracks}

    @storage_errors
    def follow_moves(self, moves: Iterable[tuple[Path | str, Path | str]]) -> list[tuple[str, str]]:
        """Record files moved by someone who knows where (the beets plugin hears each move):
        a pair is followed when its old path is indexed, its new path is not, and the new
        file has the track's content hash; nothing is decoded or embedded. Returns the pairs
        followed (absolute paths); the others are left for an index run."""
        store = self._open()
        done: list[tuple[str, str]] = []
        with run_lock(self.path):
            pairs = [(str(Path(a).expanduser().absolute()), str(Path(b).expanduser().absolute())) for a, b in moves]
            found: list[tuple[int, str, str, os.stat_result]] = []
            for old, new in pairs:
                known = store.known_files(Path(old)).get(old)
                if known is None or store.known_files(Path(new)).get(new) is not None:
                    continue
                try:
                    st = os.stat(new)
                    if st.st_size == known[1] and content_hash(new) == known[3]:
                        found.append((known[0], old, new, st))
                except OSError:
                    continue
            if found:
                with store.write():
                    for track_id, old, new, st in found:
                        store.move_track(track_id, new, st.st_size, st.st_mtime_ns)
                        done.append((old, new))
        return done

    @storage_errors
    def failures(self) -> list[tuple[str, str]]:
        """(path, reason) of every recorded failure."""
        return self._open().failures()

    @storage_errors
    def warnings(self) -> list[tuple[str, str]]:
        """(path, warning) of the tracks indexed despite a problem (e.g. truncated)."""
        return self._open().warnings()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> MusicIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
