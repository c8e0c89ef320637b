"""The public entry point: ``MusicIndex`` opens (or creates) an index folder, indexes music
folders into it and answers text queries."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .classify import VOCABULARIES, Classification, classification, parse_labels, probabilities, prompts
from .config import DEFAULT_MODEL, PIPELINE_VERSION, Settings
from .embed import ClapEmbedder, Embedder, check_not_collapsed, resolve_model
from .errors import ModelMismatch, MusicSearchError
from .filters import Filters
from .indexer import IndexReport, RunStart, embed_audio_file, embed_files, estimate_windows, plan_run, warm_up
from .library import walk
from .search import NEGATIVE_WEIGHT, Hit, combine, duplicate_groups, parse_prompt, search_vector
from .store import Store, Track, load_faiss


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
            ``settings.index_dir``. Default: ``Settings.from_env()`` (MUSICSEARCH_INDEX,
            MUSICSEARCH_NO_MODEL_CHECK), as the CLI does.
        embedder: use this instead of loading the model named by the settings or the index
            (tests pass a fake one).
    """

    def __init__(
        self, path: Path | str | None = None, *, settings: Settings | None = None, embedder: Embedder | None = None
    ):
        settings = settings or Settings.from_env()
        if path is not None:
            settings = replace(settings, index_dir=Path(path))
        self.settings = settings
        self.path = settings.index_dir
        self._embedder = embedder
        self._injected = embedder is not None  # a caller's embedder also embeds the prompts
        self._store: Store | None = None
        self._faiss: dict[str, tuple[int, object]] = {}
        self._checked = False
        self._text: Embedder | None = None

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
        """The collapse guard, run once per MusicIndex; skipped when the index records that
        its model passed it."""
        if self.settings.model_check and not self._checked:
            store = self._store
            passed = (
                store is not None and store.meta("model_check") == "passed" and store.meta("model") == embedder.model_id
            )
            if not passed:
                check_not_collapsed(embedder)
        self._checked = True

    def _text_encoder(self, store: Store) -> Embedder:
        """What embeds prompts: the index's ONNX text tower when it has one (no torch import),
        else the model itself."""
        if self._injected:
            return self._embedder  # type: ignore[return-value]
        if self._text is None:
            from .onnx_towers import OnnxTextEncoder, has_onnx

            model = store.meta("model")
            wanted = self.settings.model
            if model and has_onnx(self.path) and (wanted is None or resolve_model(wanted) == model):
                try:
                    self._text = OnnxTextEncoder(
                        self.path,
                        model,
                        store.meta("revision") or None,
                        int(store.meta("dim") or 0),
                        int(store.meta("pad_token_id") or 1),
                    )
                except Exception:  # a damaged graph: fall back to torch
                    self._text = None
            if self._text is None:
                self._text = self.embedder()
        return self._text

    def _prepare_fast_queries(self, store: Store, embedder: Embedder, report: IndexReport) -> None:
        """Once per index: export the text tower to ONNX (checked against torch) and record
        the logit scale, so that queries need neither torch nor transformers."""
        from .onnx_towers import has_onnx

        export = getattr(embedder, "export_text_onnx", None)
        if export is None or not self.settings.fast_queries or has_onnx(self.path):
            return
        try:
            cosine, kind = export(self.path)
        except MusicSearchError as exc:
            report.notes.append(str(exc))
            return
        store.set_meta(
            {
                "text_onnx": kind,
                "text_onnx_cosine": f"{cosine:.7f}",
                "logit_scale": repr(embedder.logit_scale),
                "pad_token_id": str(embedder.pad_token_id),
            },
            vectors=False,
        )
        report.notes.append(f"exported the text tower to ONNX ({kind}) for fast queries (cosine {cosine:.7f} vs torch)")

    def _prepare_audio(self, embedder: Embedder, report: IndexReport | None = None) -> None:
        """On a CPU, move the audio tower to onnxruntime (see Settings.onnx_audio)."""
        use = getattr(embedder, "use_onnx_audio", None)
        if use is None or not self.settings.onnx_audio:
            return
        try:
            cosine = use(self.path, int8=self.settings.audio_int8)
        except MusicSearchError as exc:
            if report is not None:
                report.notes.append(str(exc))
            return
        if cosine is not None and report is not None:
            what = "int8 copy, cosine {:.5f} vs fp32" if self.settings.audio_int8 else "cosine {:.7f} vs torch"
            report.notes.append(f"audio tower on onnxruntime ({what.format(cosine)})")

    def _logit_scale(self, store: Store) -> float:
        recorded = store.meta("logit_scale")
        if recorded and not self._injected:
            return float(recorded)
        return float(self.embedder().logit_scale)  # type: ignore[attr-defined]

    def _bind_model(self, store: Store, embedder: Embedder) -> None:
        """Record the model in a new index, or refuse a model other than the index's."""
        recorded = store.meta("model")
        if recorded is None:
            self._check_model(embedder)
            store.set_meta(
                {
                    "model_check": "passed" if self.settings.model_check else "skipped",
                    "model": embedder.model_id,
                    "revision": embedder.revision or "",
                    "dim": str(embedder.dim),
                    "window_seconds": str(embedder.window_seconds),
                    "hop_seconds": str(embedder.window_seconds),
                    "sample_rate": "48000",
                    "pipeline_version": PIPELINE_VERSION,
                    "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
            )
            return
        if recorded != embedder.model_id or (store.meta("revision") or None) != (embedder.revision or None):
            rev = store.meta("revision")
            raise ModelMismatch(
                f"index {self.path} was built with model {recorded}{'@' + rev if rev else ''}, not "
                f"{embedder.model_id}{'@' + embedder.revision if embedder.revision else ''}; "
                "drop --model, or use another --index folder"
            )
        if int(store.meta("dim") or 0) != embedder.dim:
            raise ModelMismatch(
                f"index {self.path} holds {store.meta('dim')}-d vectors; the model gives {embedder.dim}-d"
            )
        if store.meta("pipeline_version") != PIPELINE_VERSION:
            raise ModelMismatch(
                f"index {self.path} was built by pipeline version {store.meta('pipeline_version')} "
                f"(this is {PIPELINE_VERSION}); rebuild it in a new --index folder"
            )

    def _index_faiss(self, store: Store, kind: str = "tracks") -> object:
        generation = store.generation
        cached = self._faiss.get(kind)
        if cached is None or cached[0] != generation:
            self._faiss[kind] = cached = (generation, load_faiss(store, kind))
        return cached[1]

    def _text_ready(self) -> tuple[Store, Embedder]:
        """The store and the prompt encoder, checked against each other and by the
        collapse guard."""
        store = self._open()
        encoder = self._text_encoder(store)
        self._bind_model(store, encoder)
        self._check_model(encoder)
        return store, encoder

    def _text_vectors(
        self, embedder: Embedder, texts: Sequence[str], default_weight: float
    ) -> list[tuple[np.ndarray, float]]:
        parsed = [parse_prompt(t, default_weight) for t in texts]
        if not parsed:
            return []
        vecs = embedder.embed_texts([p for p, _ in parsed])
        return [(v, w) for v, (_, w) in zip(vecs, parsed)]

    def _seed(self, store: Store, target: str | Path) -> tuple[np.ndarray, int | None]:
        """A seed's vector, and its track id when it is an indexed track: a path (indexed or
        not), or a unique part of an indexed track's path or title."""
        path = Path(target).expanduser()
        if path.is_file():
            found = store.find_tracks(str(path.absolute()))
            if found and found[0].path == str(path.absolute()):
                _ids, vecs = store.track_vectors([found[0].id])
                return vecs[0], found[0].id
            embedder = self.embedder()
            self._bind_model(store, embedder)
            self._prepare_audio(embedder)
            device = getattr(embedder, "device", None)
            budget, batch = self.settings.window_budget(device), self.settings.batch_for(device)
            return embed_audio_file(embedder, path, batch, budget), None  # DecodeError: path and reason
        found = store.find_tracks(str(target))
        if not found:
            raise MusicSearchError(f"no indexed track matches {str(target)!r}, and no such file")
        if len(found) > 1:
            names = "; ".join(t.path for t in found[:3])
            raise MusicSearchError(
                f"{str(target)!r} matches several tracks ({names}{'; ...' if len(found) > 3 else ''}); be more specific"
            )
        _ids, vecs = store.track_vectors([found[0].id])
        return vecs[0], found[0].id

    def _query(
        self,
        store: Store,
        q: np.ndarray,
        k: int,
        filters: Filters | None,
        by: str,
        exclude: Sequence[int] = (),
        min_score: float | None = None,
    ) -> list[Hit]:
        if k < 1:
            raise MusicSearchError("k must be at least 1")
        where = filters.sql() if filters is not None and filters.active else None
        return search_vector(
            store,
            lambda kind: self._index_faiss(store, kind),
            q,
            k,
            where=where,
            by=by,
            exclude=exclude,
            min_score=min_score,
        )

    # public -----------------------------------------------------------------

    def index(
        self,
        folder: Path | str,
        *,
        retry_failed: bool = False,
        progress: bool = False,
        on_start: Callable[[RunStart], None] | None = None,
    ) -> IndexReport:
        """Index the audio files below ``folder`` (or one file): add new ones, re-embed
        changed ones, follow moves, drop vanished ones, record failures.

        Args:
            folder: a music folder or one file.
            retry_failed: try recorded failures again even if their files did not change.
            progress: show a tqdm progress bar on stderr.
            on_start: called before embedding starts with the amount of work, the window
                budget and a throughput measured on a warm-up window (for an ETA).

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
            self._prepare_audio(embedder, report)
            device = getattr(embedder, "device", None)
            budget = self.settings.window_budget(device)
            if on_start is not None:
                on_start(
                    RunStart(
                        len(plan.to_embed),
                        estimate_windows(plan.to_embed, embedder.window_seconds, budget),
                        budget,
                        device,
                        warm_up(embedder),
                    )
                )
            embed_files(
                store,
                embedder,
                plan.to_embed,
                hashes=plan.hashes,
                batch_size=self.settings.batch_for(device),
                workers=self.settings.workers,
                max_windows=budget,
                report=report,
                updates=plan.updates,
                progress=progress,
            )
        self._index_faiss(store)
        self._prepare_fast_queries(store, embedder, report)
        report.seconds = time.perf_counter() - started
        return report

    def search(
        self,
        text: str | Sequence[str],
        k: int = 10,
        *,
        negative: Sequence[str] = (),
        filters: Filters | None = None,
        by: str = "track",
        min_score: float | None = None,
    ) -> list[Hit]:
        """The ``k`` tracks that best match one or more text prompts, best first.

        Args:
            text: a prompt, or several (their vectors are summed); ``"prompt::2"`` weighs one.
            k: number of hits; exactly k when at least k tracks pass ``filters``.
            negative: prompts to steer away from (weight 0.5 each unless ``::w`` is given).
            filters: metadata and tag filters, applied inside the vector search.
            by: ``track`` (the track's mean vector) or ``window`` (its best window).
            min_score: drop hits scoring below this.

        Raises:
            MusicSearchError: empty query, missing index, model mismatch, bad options.
        """
        texts = [text] if isinstance(text, str) else list(text)
        if not texts or not all(t and t.strip() for t in texts):
            raise MusicSearchError("empty query")
        store, encoder = self._text_ready()
        q = combine(self._text_vectors(encoder, texts, 1.0), self._text_vectors(encoder, negative, NEGATIVE_WEIGHT))
        return self._query(store, q, k, filters, by, min_score=min_score)

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
    ) -> list[Hit]:
        """Tracks like the seed(s): indexed tracks (path, or a unique part of the path or
        title) or audio files outside the library (decoded and embedded on the fly); text
        prompts may be mixed in. The seed tracks themselves are never returned."""
        seeds = [targets] if isinstance(targets, (str, Path)) else list(targets)
        if not seeds:
            raise MusicSearchError("give a track or an audio file to start from")
        store = self._open()
        vectors, exclude = [], []
        for target in seeds:
            vec, track_id = self._seed(store, target)
            vectors.append((vec, 1.0))
            if track_id is not None:
                exclude.append(track_id)
        encoder = self._text_ready()[1] if (text or negative) else None
        q = combine(
            vectors + (self._text_vectors(encoder, text, 1.0) if encoder else []),
            self._text_vectors(encoder, negative, NEGATIVE_WEIGHT) if encoder else [],
        )
        return self._query(store, q, k, filters, by, exclude=exclude, min_score=min_score)

    def duplicates(self, threshold: float = 0.995) -> list[list[tuple[Track, float]]]:
        """Groups of near-identical recordings (track cosine >= ``threshold``), largest first;
        each track comes with its best cosine to another member. No model is loaded."""
        if not -1.0 <= threshold <= 1.0:
            raise MusicSearchError("threshold must be between -1 and 1")
        store = self._open()
        return duplicate_groups(store, self._index_faiss(store), threshold)

    def classify(self, target: str | Path, labels: str | Sequence[str], template: str = "{}") -> Classification:
        """Zero-shot classification of an indexed track (stored vector, no decoding) or an
        audio file: each label's softmax probability over the labels with the model's logit
        scale, best first."""
        names = parse_labels(labels)
        texts = prompts(names, template)
        store, encoder = self._text_ready()
        vec, _ = self._seed(store, target)
        label_vecs = encoder.embed_texts(texts)
        return classification(names, probabilities(vec, label_vecs, self._logit_scale(store)))

    def tag(self, *, top: int = 3, extra_labels: Sequence[str] = (), retag: bool = False) -> int:
        """Give every indexed track (only untagged ones unless ``retag``) its ``top`` labels
        from each built-in vocabulary (genre, mood, instrument) and from ``extra_labels``
        (template ``"{}"``), stored with their probabilities and usable as ``--tag`` filters.

        Returns:
            The number of tracks tagged.
        """
        if top < 1:
            raise MusicSearchError("top must be at least 1")
        store, encoder = self._text_ready()
        logit_scale = self._logit_scale(store)
        vocabs = dict(VOCABULARIES)
        if extra_labels:
            vocabs["user"] = ("{}", tuple(parse_labels(list(extra_labels))))
        label_vecs = {name: encoder.embed_texts(prompts(labels, tmpl)) for name, (tmpl, labels) in vocabs.items()}
        ids, vecs = store.track_vectors(None if retag else store.untagged_ids())
        if not len(ids):
            return 0
        rows: dict[int, list[tuple[str, str, float]]] = {int(i): [] for i in ids}
        for name, (_, labels) in vocabs.items():
            probs = probabilities(vecs, label_vecs[name], logit_scale)
            for i, p in zip(ids, probs):
                for j in np.argsort(-p, kind="stable")[:top]:
                    rows[int(i)].append((name, labels[j], float(p[j])))
        with store.write(vectors=False):
            for track_id, tags in rows.items():
                store.set_tags(track_id, tags)
        return len(rows)

    def warm(self) -> None:
        """Load what queries need (text encoder, FAISS index) before the first one comes.

        Raises:
            IndexNotFound: there is no index yet.
        """
        store, _ = self._text_ready()
        self._index_faiss(store)

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

    def track(self, track_id: int) -> tuple[Track, list[tuple[str, str, float]]] | None:
        """An indexed track and its tags as (vocab, label, score), best first; None when the
        index has no such track."""
        store = self._open()
        track = store.tracks([track_id]).get(track_id)
        return (track, store.tags_of([track_id])[track_id]) if track else None

    def failures(self) -> list[tuple[str, str]]:
        """(path, reason) of every recorded failure."""
        return self._open().failures()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> MusicIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
