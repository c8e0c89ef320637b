"""The public entry point: ``MusicIndex`` opens (or creates) an index folder, indexes music
folders into it and answers text queries."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from .config import DEFAULT_MODEL, PIPELINE_VERSION, Settings
from .embed import ClapEmbedder, Embedder, check_not_collapsed
from .errors import MusicSearchError, ModelMismatch
from .indexer import IndexReport, embed_files, plan_run
from .library import walk
from .search import Hit, search_vector
from .store import Store, load_faiss


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
            ``settings.index_dir``.
        embedder: use this instead of loading the model named by the settings or the index
            (tests pass a fake one).
    """

    def __init__(self, path: Path | str | None = None, *, settings: Settings | None = None, embedder: Embedder | None = None):
        settings = settings or Settings()
        if path is not None:
            settings = replace(settings, index_dir=Path(path))
        self.settings = settings
        self.path = settings.index_dir
        self._embedder = embedder
        self._store: Store | None = None
        self._faiss: object | None = None
        self._faiss_generation = -1
        self._checked = False

    # plumbing ---------------------------------------------------------------

    def _open(self, create: bool = False) -> Store:
        if self._store is None:
            self._store = Store(self.path, create=create)
        return self._store

    def _model_name(self, store: Store | None) -> str:
        recorded = store.meta("model") if store else None
        wanted = self.settings.model
        return wanted or recorded or DEFAULT_MODEL

    def embedder(self) -> Embedder:
        """The embedder of this index (loaded on first use)."""
        if self._embedder is None:
            store = self._store
            if store is None and (self.path / "musicsearch.db").exists():
                store = self._open()
            revision = self.settings.revision or (store.meta("revision") if store else None) or None
            self._embedder = ClapEmbedder(self._model_name(store), revision, self.settings.device)
        return self._embedder

    def _check_model(self, embedder: Embedder) -> None:
        if self.settings.model_check and not self._checked:
            check_not_collapsed(embedder)
        self._checked = True

    def _bind_model(self, store: Store, embedder: Embedder) -> None:
        """Record the model in a new index, or refuse a model other than the index's."""
        recorded = store.meta("model")
        if recorded is None:
            self._check_model(embedder)
            store.set_meta({
                "model": embedder.model_id,
                "revision": embedder.revision or "",
                "dim": str(embedder.dim),
                "window_seconds": str(embedder.window_seconds),
                "hop_seconds": str(embedder.window_seconds),
                "sample_rate": "48000",
                "pipeline_version": PIPELINE_VERSION,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            })
            return
        if recorded != embedder.model_id or (store.meta("revision") or None) != (embedder.revision or None):
            rev = store.meta("revision")
            raise ModelMismatch(
                f"index {self.path} was built with model {recorded}{'@' + rev if rev else ''}, not "
                f"{embedder.model_id}{'@' + embedder.revision if embedder.revision else ''}; "
                "drop --model, or use another --index folder"
            )
        if int(store.meta("dim") or 0) != embedder.dim:
            raise ModelMismatch(f"index {self.path} holds {store.meta('dim')}-d vectors; the model gives {embedder.dim}-d")
        if store.meta("pipeline_version") != PIPELINE_VERSION:
            raise ModelMismatch(
                f"index {self.path} was built by pipeline version {store.meta('pipeline_version')} "
                f"(this is {PIPELINE_VERSION}); rebuild it in a new --index folder"
            )

    def _index_faiss(self, store: Store) -> object:
        if self._faiss is None or self._faiss_generation != store.generation:
            self._faiss_generation = store.generation
            self._faiss = load_faiss(store)
        return self._faiss

    # public -----------------------------------------------------------------

    def index(self, folder: Path | str, *, retry_failed: bool = False, progress: bool = False) -> IndexReport:
        """Index the audio files below ``folder`` (or one file): add new ones, re-embed
        changed ones, follow moves, drop vanished ones, record failures.

        Returns:
            What was added, updated, moved, removed, left unchanged and what failed.

        Raises:
            MusicSearchError: bad folder, model that cannot load or does not match the index.
        """
        root = Path(folder).expanduser().absolute()
        if not root.exists():
            raise MusicSearchError(f"no such file or folder: {root}")
        started = time.perf_counter()
        files = list(walk(root, self.settings.extensions))
        embedder = self.embedder()  # before creating anything: a bad model leaves no empty index
        store = self._open(create=True)
        self._bind_model(store, embedder)
        plan = plan_run(store, root, files, retry_failed)
        report = IndexReport(str(root), unchanged=plan.unchanged, skipped_failed=plan.skipped_failed)
        if plan.moves or plan.touched or plan.removed or plan.stale_failures:
            with store.write():
                for track_id, f in plan.touched:
                    store.move_track(track_id, str(f.path), f.size, f.mtime_ns)
                for track_id, old, f in plan.moves:
                    store.move_track(track_id, str(f.path), f.size, f.mtime_ns)
                    report.moved.append((old, str(f.path)))
                store.remove_tracks(plan.removed.values())
                store.remove_failures(plan.stale_failures)
            report.removed = sorted(plan.removed)
        if plan.to_embed:
            embed_files(
                store, embedder, plan.to_embed,
                hashes=plan.hashes, batch_size=self.settings.batch_size, workers=self.settings.workers,
                max_windows=self.settings.max_windows, report=report, updates=plan.updates, progress=progress,
            )
        self._index_faiss(store)
        report.seconds = time.perf_counter() - started
        return report

    def search(self, text: str, k: int = 10) -> list[Hit]:
        """The ``k`` tracks that best match a text prompt, best first.

        Raises:
            MusicSearchError: empty query, missing index, model mismatch.
        """
        if not text or not text.strip():
            raise MusicSearchError("empty query")
        if k < 1:
            raise MusicSearchError("k must be at least 1")
        store = self._open()
        embedder = self.embedder()
        self._bind_model(store, embedder)
        self._check_model(embedder)
        query = embedder.embed_texts([text.strip()])[0]
        return search_vector(store, self._index_faiss(store), query, k)

    def info(self) -> IndexInfo:
        """Counts, model and size of the index (no model is loaded)."""
        store = self._open()
        counts = store.counts()
        size = sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())
        return IndexInfo(
            path=str(self.path.absolute()),
            tracks=counts["tracks"],
            windows=counts["windows"],
            failures=counts["failures"],
            model=store.meta("model") or "",
            revision=store.meta("revision") or None,
            dim=int(store.meta("dim") or 0),
            window_seconds=float(store.meta("window_seconds") or 0),
            pipeline_version=store.meta("pipeline_version") or "",
            size_bytes=size,
        )

    def failures(self) -> list[tuple[str, str]]:
        """(path, reason) of every recorded failure."""
        return self._open().failures()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> "MusicIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
