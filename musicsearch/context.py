"""One open index folder and what it binds together: its settings, its SQLite store, its FAISS
indexes and the model that embeds for it (loaded on first use, checked against the index's
meta). ``MusicIndex`` holds one; the modules that do the work (the index run, the searches,
ingest) take it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .clap import ClapEmbedder, prepared_text_encoder
from .config import DEFAULT_MODEL, Settings
from .embed import Embedder, TextEmbedder, embed_windows
from .engine import check_not_collapsed, prepare_audio
from .errors import IndexNotFound, MusicSearchError
from .events import Listener, Phase, quiet
from .loading import resolve_model
from .store import IndexMeta, Store, track_vector
from .vectors import AnyIndex, VectorIndexes

log = logging.getLogger(__name__)


def embed_audio_file(
    embedder: Embedder, path: Path | str, batch_size: int, max_windows: int | None = None
) -> np.ndarray:
    """Decode and embed a file outside the index: the normalized mean of its window vectors.

    Raises:
        DecodeError: the file cannot be decoded.
    """
    from .audio import iter_windows  # decoding (soundfile, soxr): not imported by a text query

    vectors: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    for w in iter_windows(path, embedder.window_seconds, max_windows):
        batch.append(w.samples)
        if len(batch) == batch_size:
            vectors.extend(embed_windows(embedder, np.stack(batch)))
            batch.clear()
    if batch:
        vectors.extend(embed_windows(embedder, np.stack(batch)))
    return track_vector(np.stack(vectors))


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
    model_check: str = ""  # "passed", "skipped" (built with --no-model-check), "" (not recorded)


class IndexContext:
    """The store, vector indexes and models of one index folder, each opened once.

    ``embedder`` (tests pass a fake one) replaces the model named by the settings or the
    index, and then also embeds the prompts."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None):
        self.settings = settings
        self.path = settings.index_dir
        self._embedder = embedder
        self._text: TextEmbedder | None = embedder
        self._store: Store | None = None
        self._vectors: VectorIndexes | None = None
        self._checked = False

    def exists(self) -> bool:
        return (self.path / "musicsearch.db").exists()

    def store(self, create: bool = False) -> Store:
        """The SQLite store (raises ``IndexNotFound`` where there is none, unless ``create``)."""
        if self._store is None:
            self._store = Store(self.path, create=create)
            self._vectors = VectorIndexes(self._store)
        return self._store

    def vector_index(self, kind: str = "tracks") -> AnyIndex:
        """The current FAISS index of ``tracks`` or ``windows`` (rebuilt when stale)."""
        self.store()
        assert self._vectors is not None
        return self._vectors.get(kind)

    def embedder(self, on_event: Listener = quiet) -> Embedder:
        """The model of this index: ``settings.model``, else the index's, else the default."""
        if self._embedder is None:
            meta = self.store().index_meta() if self._store is not None or self.exists() else None
            model = self.settings.model or (meta.model if meta else None) or DEFAULT_MODEL
            revision = self.settings.revision or (meta.revision if meta else None)
            on_event(Phase(f"Loading the model {model}"))
            self._embedder = ClapEmbedder(model, revision, self.settings.device, self.settings.precision)
        return self._embedder

    def text_encoder(self) -> TextEmbedder:
        """What embeds prompts: the model's prepared ONNX text graph when this machine has one
        (no torch import), else the model itself."""
        if self._text is None:
            meta = self.store().index_meta()
            wanted = self.settings.model
            if meta is not None and (wanted is None or resolve_model(wanted) == meta.model):
                self._text = prepared_text_encoder(meta.model, meta.revision)
            if self._text is None:
                log.info("no prepared text graph for this index's model here; queries run the torch text tower")
                self._text = self.embedder()
        return self._text

    def forget_text_encoder(self) -> None:
        """Pick up a newly prepared text graph at the next query."""
        self._text = None

    def check_model(self, model: TextEmbedder) -> None:
        """The collapse guard, once per context; skipped when the index records that its model
        passed it, or that it was built with the guard waived (then no later run needs
        ``--no-model-check`` again)."""
        if self.settings.model_check and not self._checked:
            meta = self._store.index_meta() if self._store is not None else None
            if not (meta is not None and meta.check_settled(model.model_id)):
                check_not_collapsed(model)
        self._checked = True

    def bind_model(self, model: TextEmbedder, window_seconds: float | None = None) -> Store:
        """Record the model in a new index (``window_seconds`` given by the index run), or refuse
        a model other than the index's. Returns the store."""
        store = self.store(create=window_seconds is not None)
        meta = store.index_meta()
        if meta is not None:
            meta.check(model.model_id, model.revision, model.dim, self.path)
            return store
        if window_seconds is None:
            raise IndexNotFound(
                f"index {self.path.absolute()} holds nothing yet; build it with: musicsearch index FOLDER"
            )
        self.check_model(model)
        checked = self.settings.model_check
        store.record_meta(IndexMeta.new(model.model_id, model.revision, model.dim, window_seconds, checked=checked))
        return store

    def ready(self) -> tuple[Store, TextEmbedder]:
        """The store and the prompt encoder, checked against each other and by the guard."""
        store = self.store()
        encoder = self.text_encoder()
        self.bind_model(encoder)
        self.check_model(encoder)
        return store, encoder

    def audio_model(self) -> Embedder:
        """The model bound to this index, prepared to embed audio files outside it."""
        embedder = self.embedder()
        self.bind_model(embedder)
        prepare_audio(embedder, self.settings)
        return embedder

    def embed_file(self, path: Path) -> np.ndarray:
        """The track vector of an audio file outside the index."""
        embedder = self.audio_model()
        budget, batch = self.settings.window_budget(embedder.device), self.settings.batch_for(embedder.device)
        return np.asarray(embed_audio_file(embedder, path, batch, budget))

    def embed_range(self, path: Path, start: float, end: float) -> np.ndarray:
        """An audio file (outside the index, or an indexed track where the index keeps no
        window of that range) from ``start`` to ``end`` s: the normalized mean of its windows
        that overlap that range, as a whole-track index run cuts them (only those are
        embedded)."""
        from .audio import iter_windows

        embedder = self.audio_model()
        wanted, length = [], 0.0
        for w in iter_windows(path, embedder.window_seconds):
            length = max(length, w.end)  # the last window ends where the track does
            if w.start < end and w.end > start:
                wanted.append(w.samples)
        if not wanted:
            minutes, seconds = divmod(int(round(length)), 60)
            raise MusicSearchError(
                f"{path} is only {length:.0f} s long ({minutes}:{seconds:02d}), shorter than {start:g} s"
            )
        return np.asarray(track_vector(np.asarray(embed_windows(embedder, np.stack(wanted)))))

    def info(self) -> IndexInfo:
        """Counts, model and size of the index (no model is loaded)."""
        store = self.store()
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
            model_check=meta.model_check if meta else "",
        )

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
