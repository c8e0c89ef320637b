"""The public entry point: ``MusicIndex``, a thin facade over an index folder. Each method hands
the work to the module that owns it: context (the store, FAISS indexes and model of one
folder), indexing (the index run, ingest), search (each query becomes one ``SearchRequest``,
run by search/runner.py; labels and tags in search/classify.py), store (SQLite reads) and
vectors (FAISS)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Settings, index_path
from .context import IndexContext, IndexInfo
from .embed import Embedder
from .errors import MusicSearchError, storage_errors
from .events import IndexReport, Listener, quiet
from .filters import Filters
from .hits import Hit
from .search.classify import Classification, classify_vector, tag_tracks
from .search.prompts import resolve_seed
from .search.request import SearchRequest, parse_request
from .search.runner import run, search_vectors, window_scores
from .search.variety import Variety
from .store import Track
from .vectors import IndexState
from .vectors.query import duplicate_groups

if TYPE_CHECKING:  # the index run's modules load when a run starts, never for a query
    from .indexing.ingest import IngestReport

__all__ = ["IndexInfo", "MusicIndex"]


class MusicIndex:
    """An index folder (``musicsearch.db`` plus derived FAISS files).

    Args:
        path: the index folder, or an index's name (``"jazz"``: under the user data folder's
            ``indexes/``; see ``config.index_path``); created on the first ``index`` run.
        settings: everything else (model, device, batch size...); ``path`` wins over
            ``settings.index_dir``. Default: ``Settings.from_env()``, as the CLI does.
        embedder: use this instead of loading the model named by the settings or the index
            (tests pass a fake one); it then also embeds the prompts.
    """

    def __init__(
        self, path: Path | str | None = None, *, settings: Settings | None = None, embedder: Embedder | None = None
    ):
        settings = settings or Settings.from_env()
        self.settings = replace(settings, index_dir=index_path(path)) if path is not None else settings
        self.path = self.settings.index_dir
        self.context = IndexContext(self.settings, embedder)

    def embedder(self, on_event: Listener = quiet) -> Embedder:
        """The model of this index (loaded on first use)."""
        return self.context.embedder(on_event)

    @storage_errors
    def index(
        self,
        folder: Path | str,
        *,
        retry_failed: bool = False,
        on_event: Listener = quiet,
        cluster: str | None = None,
        shards: Path | str | None = None,
    ) -> IndexReport:
        """Index the audio files below ``folder`` (or one file): add new ones, re-embed changed
        ones, follow moves, drop vanished ones, record failures. ``on_event`` hears each phase
        (``Phase``), the start of embedding (``RunStart``, with an ETA) and each committed batch
        (``Progress``). ``cluster`` (``auto`` or HOST:PORT) embeds on a Ray cluster; with
        ``shards`` (a folder) the cluster's vectors go to Parquet shards there instead (merge
        them with ``ingest``). Raises ``MusicSearchError`` for a bad folder or model."""
        from .indexing.runner import index_folder  # not imported by a query

        return index_folder(
            self.context, folder, retry_failed=retry_failed, on_event=on_event, cluster=cluster, shards=shards
        )

    @storage_errors
    def ingest(self, shards: Sequence[Path | str], *, model: str | None = None) -> IngestReport:
        """Add window embeddings computed elsewhere (Parquet shards or folders of them; schema in
        musicsearch/indexing/ingest.py) without loading any model; re-ingesting a shard changes nothing.
        A new index is bound to ``model`` (or ``settings.model``) and the shards' dimension."""
        from .indexing.ingest import ingest_into

        return ingest_into(self.context, shards, model)

    @storage_errors
    def search(
        self,
        text: str | Sequence[str] | SearchRequest,
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
        ``negative`` steers away), exactly k when at least k tracks pass ``filters``; ``by`` is
        ``track`` (mean vector) or ``window`` (best window).

        With ``lexical`` (the default) names in a prompt act as names (musicsearch/search/names.py):
        a whole title/artist/album ranks its tracks first, "by X" keeps X's tracks, "like X"
        seeds from X's tracks (left out unless ``include_named``); each hit's ``matched`` says
        why. ``variety`` caps artists, drops duplicates, excludes, shuffles
        (musicsearch/search/variety.py); ``order="smooth"`` orders the hits so neighbours sound
        alike. ``text`` may also be a ``SearchRequest``, which then carries every option (the
        keywords are not used)."""
        if isinstance(text, SearchRequest):
            return run(self.context, text)
        fields: dict[str, object] = {"q": text, "k": k, "not": negative, "filters": filters, "by": by, "order": order}
        fields |= {"min_score": min_score, "lexical": lexical, "include_named": include_named, "variety": variety}
        return run(self.context, parse_request(fields))

    @storage_errors
    def similar(
        self,
        targets: str | Path | Sequence[str | Path] | SearchRequest,
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
        """Tracks like the seed(s): indexed tracks (path, or a unique part of the path or title;
        ``"seed@1:20-1:40"`` for a moment) or audio files (embedded on the fly), with optional
        prompts mixed in. The seeds are never returned. ``variety`` and ``order`` as in ``search``;
        ``targets`` may also be a ``SearchRequest`` with seeds."""
        if isinstance(targets, SearchRequest):
            return run(self.context, targets)
        fields: dict[str, object] = {"like": targets, "q": text, "k": k, "not": negative, "by": by, "order": order}
        fields |= {"filters": filters, "min_score": min_score, "variety": variety}
        return run(self.context, parse_request(fields))

    @storage_errors
    def search_vectors(
        self, vectors: object, k: int = 10, filters: Filters | None = None, *, by: str = "track"
    ) -> list[list[Hit]]:
        """One hit list per query vector ((n, dim) or (dim,) unit vectors of the index's model,
        e.g. text embeddings computed elsewhere); no model is loaded."""
        return search_vectors(self.context, vectors, SearchRequest(k=k, filters=filters or Filters(), by=by))

    @storage_errors
    def path_between(
        self,
        start: str | Path,
        end: str | Path,
        n: int = 12,
        *,
        filters: Filters | None = None,
        variety: Variety | None = None,
        sound_only: bool = False,
    ) -> list[Hit]:
        """A playlist of ``n`` indexed tracks from ``start`` to ``end`` (each a path, or a unique
        part of a path or title) moving steadily through the embedding space
        (musicsearch/search/paths.py), in small tempo and key steps where those are known unless
        ``sound_only``, filters and ``variety`` honoured; each hit's score is its cosine to the
        step before."""
        fields = {"between": [start, end], "k": n, "filters": filters, "variety": variety, "sound_only": sound_only}
        return run(self.context, parse_request(fields))

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
        """[{start, end, score}] of each window of a track: its cosine to a text query (names in
        it count, unless ``lexical`` is off) or to another track's vector (``like``)."""
        if like is not None:
            return window_scores(self.context, track_id, None, like)
        request = parse_request({"q": text or "", "not": negative, "lexical": lexical})
        return window_scores(self.context, track_id, request, None)

    @storage_errors
    def classify(self, target: str | Path, labels: str | Sequence[str], template: str = "{}") -> Classification:
        """Zero-shot classification of an indexed track (stored vector) or an audio file: each
        label's softmax probability with the model's logit scale, best first."""
        store, encoder = self.context.ready()
        vector, _ = resolve_seed(store, target, self.context.embed_file)
        return classify_vector(encoder, vector, labels, template)

    @storage_errors
    def tag(self, *, top: int = 3, extra_labels: Sequence[str] = (), retag: bool = False) -> int:
        """Give every indexed track (only untagged ones unless ``retag``) its ``top`` labels from
        each built-in vocabulary and from ``extra_labels``; returns how many were tagged."""
        store, encoder = self.context.ready()
        return tag_tracks(store, encoder, top=top, extra_labels=extra_labels, retag=retag)

    @storage_errors
    def duplicates(self, threshold: float = 0.995) -> list[list[tuple[Track, float]]]:
        """Groups of near-identical recordings (track cosine >= ``threshold``), largest first;
        each track comes with its best cosine to another member. No model is loaded."""
        if not -1.0 <= threshold <= 1.0:
            raise MusicSearchError("threshold must be between -1 and 1")
        return duplicate_groups(self.context.store(), self.context.vector_index(), threshold)

    @storage_errors
    def follow_moves(self, moves: Iterable[tuple[Path | str, Path | str]]) -> list[tuple[str, str]]:
        """Record files moved by someone who knows where (the beets plugin hears each move): a
        pair is followed when its old path is indexed, its new path is not, and the new file has
        the track's content hash; nothing is embedded. Returns the pairs followed (absolute
        paths); the others are left for an index run."""
        from .indexing.plan import follow_moves

        return follow_moves(self.context.store(), self.path, moves)

    @storage_errors
    def warm(self) -> None:
        """Load what queries need (text encoder, FAISS index) before the first one comes."""
        self.context.ready()
        self.context.vector_index()

    @storage_errors
    def info(self) -> IndexInfo:
        """Counts, model and size of the index (no model is loaded)."""
        return self.context.info()

    @storage_errors
    def vector_indexes(self) -> dict[str, IndexState]:
        """kind -> ``vectors.IndexState`` (exact or IVF, nprobe, measured R@10) of the current indexes."""
        from .vectors import describe

        return {kind: describe(self.context.store(), kind) for kind in ("tracks", "windows")}

    @storage_errors
    def library_map(self) -> list:
        """Every track on a 2-D map of the library (libmap.MapPoint), cached per generation."""
        from .libmap import library_map

        return library_map(self.context.store())

    @storage_errors
    def tracks(self, ids: Sequence[int]) -> dict[int, Track]:
        """The indexed tracks among ``ids``, by id."""
        return self.context.store().tracks(ids)

    @storage_errors
    def track(self, track_id: int) -> tuple[Track, list[tuple[str, str, float]]] | None:
        """An indexed track and its tags as (vocab, label, score), best first; or None."""
        track = self.context.store().tracks([track_id]).get(track_id)
        return (track, self.context.store().tags_of([track_id])[track_id]) if track else None

    @storage_errors
    def catalog(self, since: tuple[int, int] | None = None) -> tuple[tuple[int, int], list[tuple] | None]:
        """(a stamp that changes with the database, every track's row with its file size and
        time indexed, see ``Store.catalog_rows``; None when the stamp is still ``since``): what
        the Subsonic API groups into artists and albums. No model is loaded."""
        store = self.context.store()
        stamp = store.change_stamp()
        return stamp, None if stamp == since else store.catalog_rows()

    @storage_errors
    def tracks_under(self, path: Path | str) -> dict[str, Track]:
        """The indexed tracks at or below ``path`` (a file or a folder), by absolute path (the
        beets plugin maps library items to tracks with it); no model is loaded."""
        return self.context.store().tracks_under(Path(path).expanduser().absolute())

    @storage_errors
    def failures(self) -> list[tuple[str, str]]:
        """(path, reason) of every recorded failure."""
        return self.context.store().failures()

    @storage_errors
    def warnings(self) -> list[tuple[str, str]]:
        """(path, warning) of the tracks indexed despite a problem (e.g. truncated)."""
        return self.context.store().warnings()

    def close(self) -> None:
        self.context.close()

    def __enter__(self) -> MusicIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
