"""``musicsearch eval``'s run: a caption set measured through the pipeline a user's search runs.

    dataset -> clip files (clips.py) -> for each model and window policy: an index of them
    built by the normal index run (decode, windows, the audio tower, the store, FAISS) ->
    captions embedded by the index's own prompt encoder (bare, each template, and the
    templates' ensemble) -> the index's ranking by track or by window -> metrics.py

Each model and window policy has its own index folder under the work folder
(``$MUSICSEARCH_CACHE/eval/<dataset>/indexes/<model>-<policy>``), kept between runs: the index
run is incremental, so a second evaluation (other rankings, other templates) embeds no audio.
Every row is measured on the same clips: those indexed under every model and policy.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..api import MusicIndex
from ..config import DEFAULT_MODEL, Settings
from ..device import pick_device
from ..embed import TextEmbedder
from ..errors import MusicSearchError
from ..events import Listener, Phase, quiet
from ..prepared import cache_root
from ..search.request import BY
from ..vectors import search
from .clips import ClipFiles, dataset_key, place_clips
from .datasets import Caption, Dataset
from .metrics import Metrics, audio_to_text_ranks, summarize, text_to_audio_ranks

log = logging.getLogger(__name__)

BARE = "{}"  # the captions as written
QUERY_BATCH = 256  # captions scored against the index at a time
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class WindowPolicy:
    """Which windows of each clip the index keeps: at most ``max_windows`` spread evenly,
    whole clips (``full``), or neither: the device's default (``Settings.window_budget``)."""

    max_windows: int | None = None
    full: bool = False

    def budget(self, device: str) -> int | None:
        """Windows per clip on ``device`` (None: whole clips)."""
        return Settings(max_windows=self.max_windows, full=self.full).window_budget(pick_device(device))


def budget_label(budget: int | None) -> str:
    return "whole" if budget is None else f"{budget} max"


@dataclass(frozen=True)
class EvalSettings:
    """What one evaluation compares: every model x window policy x ranking (``by``) x prompt
    form (the bare captions, each template, and with two or more templates their ensemble)
    is one row. ``work_dir``: where clips and indexes are kept (None: the cache's ``eval``)."""

    models: tuple[str | None, ...] = (None,)
    by: tuple[str, ...] = ("track",)
    policies: tuple[WindowPolicy, ...] = (WindowPolicy(),)
    templates: tuple[str, ...] = ()
    bootstrap: int = 1000
    seed: int = 0
    limit: int | None = None
    device: str = "auto"
    model_check: bool = True
    top_hits: int = 3
    work_dir: Path | None = None

    def __post_init__(self) -> None:
        for by in self.by:
            if by not in BY:
                raise MusicSearchError(f"--by must be {' or '.join(BY)}, not {by!r}")
        for template in self.templates:
            if BARE not in template:
                raise MusicSearchError(f"a template holds {{}} where the caption goes: {template!r}")
        if self.bootstrap < 0 or self.top_hits < 1 or (self.limit is not None and self.limit < 1):
            raise MusicSearchError("--bootstrap must be at least 0 and --limit at least 1")
        if not self.models or not self.policies or not self.by:
            raise MusicSearchError("give at least one model, window policy and ranking")


@dataclass(frozen=True)
class Row:
    """One combination's metrics."""

    model: str
    windows: str
    by: str
    prompts: str
    metrics: Metrics


@dataclass(frozen=True)
class QueryResult:
    """One caption under one row: the rank of its clip and the clips ranked first."""

    row: int
    caption: Caption
    rank: int
    top: tuple[str, ...]


@dataclass(frozen=True)
class EvalResult:
    """Rows in the order of the settings, each caption's result per row, the clips measured,
    what each index run embedded this time (index folder name -> clips), and the clips left
    out ((key, reason): not decodable, or not indexed under every model and policy)."""

    dataset: Dataset
    rows: tuple[Row, ...]
    queries: tuple[QueryResult, ...]
    clips: tuple[str, ...]
    embedded: dict[str, int] = field(default_factory=dict)
    failed: tuple[tuple[str, str], ...] = ()
    work_dir: Path = Path()


@dataclass
class _Index:
    """One model x policy: its index, label and which track holds each clip."""

    model: str
    windows: str
    index: MusicIndex
    tracks: dict[str, int]
    failures: dict[str, str]


def index_name(model: str, budget: int | None) -> str:
    """The index folder of a model and window budget: readable, and unique per model string."""
    digest = hashlib.sha1(model.encode()).hexdigest()[:6]
    return f"{_UNSAFE.sub('_', model).strip('._')[-40:]}-{digest}-{'full' if budget is None else f'w{budget}'}"


def _build_index(
    files: ClipFiles, work: Path, model: str | None, policy: WindowPolicy, settings: EvalSettings, on_event: Listener
) -> tuple[_Index, int]:
    """The index of the clips for one model and policy, brought up to date by the normal
    index run; returns it and how many clips this run embedded."""
    label = model or DEFAULT_MODEL
    budget = policy.budget(settings.device)
    folder = work / "indexes" / index_name(label, budget)
    config = Settings(
        index_dir=folder,
        model=model,
        device=settings.device,
        max_windows=budget,
        full=budget is None,
        model_check=settings.model_check,
    )
    on_event(Phase(f"Indexing {len(files.keys)} clips with {label} ({budget_label(budget)} windows)"))
    idx = MusicIndex(settings=config)
    report = idx.index(files.folder, on_event=on_event)
    tracks = {files.keys[p]: t.id for p, t in idx.tracks_under(files.folder).items() if p in files.keys}
    failures = {files.keys[p]: why for p, why in idx.failures() if p in files.keys}
    return _Index(label, budget_label(budget), idx, tracks, failures), len(report.added) + len(report.updated)


def prompt_forms(templates: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(label, templates) of each prompt form: the bare captions, each template, and all
    templates together (an ensemble) when there are two or more."""
    forms: list[tuple[str, tuple[str, ...]]] = [("captions", (BARE,))]
    forms += [(t, (t,)) for t in templates if t != BARE]
    if len(templates) > 1:
        forms.append((f"ensemble of {len(templates)}", tuple(templates)))
    return forms


def embed_captions(encoder: TextEmbedder, texts: Sequence[str], templates: Sequence[str]) -> np.ndarray:
    """(n, dim) unit vectors of the captions put in each template, averaged over the
    templates and normalized again (CLIP's prompt ensembles)."""
    total = np.zeros((len(texts), encoder.dim), np.float64)
    for template in templates:
        vecs = np.asarray(encoder.embed_texts([template.replace(BARE, t) for t in texts]), np.float64)
        total += vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    return (total / np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _lookup(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """An array ``a`` with ``a[keys] = values`` and -1 elsewhere (ids are small ints)."""
    table = np.full(int(keys.max(initial=-1)) + 2, -1, np.int64)
    table[keys] = values
    return table


def _owners(idx: MusicIndex, window_ids: np.ndarray) -> np.ndarray:
    """Window id -> its track id, as a lookup array."""
    ids = np.unique(window_ids)
    owner = np.full(len(ids), -1, np.int64)
    for at in range(0, len(ids), 10_000):  # SQLite's limit on parameters
        info = idx.context.store().windows_by_id(int(w) for w in ids[at : at + 10_000])
        owner[at : at + 10_000] = [info[int(w)][0] if int(w) in info else -1 for w in ids[at : at + 10_000]]
    return _lookup(ids, owner)


def score_matrix(idx: MusicIndex, queries: np.ndarray, track_ids: Sequence[int], by: str) -> np.ndarray:
    """(queries, tracks) scores as the index ranks them: each query searched over the whole
    tracks index (``by="track"``: the cosine to the track's mean vector) or windows index
    (``by="window"``: a track scores its best window)."""
    column = _lookup(np.asarray(track_ids, np.int64), np.arange(len(track_ids)))
    out = np.full((len(queries), len(track_ids)), -np.inf, np.float32)
    vectors = idx.context.vector_index("tracks" if by == "track" else "windows")
    owner: np.ndarray | None = None
    for lo in range(0, len(queries), QUERY_BATCH):
        for row, (ids, scores) in enumerate(search(vectors, queries[lo : lo + QUERY_BATCH], vectors.ntotal), lo):
            if by == "window":
                if owner is None or ids.max(initial=-1) >= len(owner):
                    owner = _owners(idx, ids)  # every window comes back: read their tracks once
                ids = owner[ids]
            cols = np.where((ids >= 0) & (ids < len(column)), column[np.clip(ids, 0, len(column) - 1)], -1)
            keep = cols >= 0
            np.maximum.at(out[row], cols[keep], scores[keep])
    return out


def _top(scores: np.ndarray, keys: Sequence[str], n: int) -> list[tuple[str, ...]]:
    order = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    return [tuple(keys[j] for j in row) for row in order]


def _rows_of(
    built: _Index,
    by: str,
    texts: dict[str, np.ndarray],
    captions: Sequence[Caption],
    keys: Sequence[str],
    settings: EvalSettings,
    rows: list[Row],
    queries: list[QueryResult],
) -> None:
    """The rows of one index and ranking: one per prompt form."""
    position = {k: j for j, k in enumerate(keys)}
    truth = np.array([position[c.clip] for c in captions], np.int64)
    track_ids = [built.tracks[k] for k in keys]
    for label, vectors in texts.items():
        scores = score_matrix(built.index, vectors, track_ids, by)
        t2a = text_to_audio_ranks(scores, truth)
        metrics = summarize(t2a, audio_to_text_ranks(scores, truth), settings.bootstrap, settings.seed)
        row = len(rows)
        rows.append(Row(built.model, built.windows, by, label, metrics))
        top = _top(scores, keys, settings.top_hits)
        queries.extend(QueryResult(row, c, int(r), t) for c, r, t in zip(captions, t2a, top))


def run_eval(data: Dataset, settings: EvalSettings, on_event: Listener = quiet) -> EvalResult:
    """Measure every combination of ``settings`` on ``data`` (see the module docstring)."""
    data = data.limited(settings.limit)
    work = (settings.work_dir or cache_root() / "eval") / dataset_key(data)
    on_event(Phase(f"Placing {len(data.clips)} clips in {work / 'clips'}"))
    files = place_clips(data, work / "clips")
    built: list[_Index] = []
    embedded: dict[str, int] = {}
    try:
        for model in settings.models:
            for policy in settings.policies:
                index, count = _build_index(files, work, model, policy, settings, on_event)
                built.append(index)
                embedded[index.index.path.name] = count
        common = [c.key for c in data.clips if all(c.key in b.tracks for b in built)]
        failed = list(files.failed) + _not_indexed(data, files, common, built)
        kept = set(common)
        captions = [c for c in data.captions if c.clip in kept]
        if not captions:
            raise MusicSearchError(f"no clip of {data.csv_path} could be indexed ({len(failed)} failed)")
        rows: list[Row] = []
        queries: list[QueryResult] = []
        texts_of: dict[str, dict[str, np.ndarray]] = {}
        for b in built:
            if b.model not in texts_of:
                on_event(Phase(f"Embedding {len(captions)} captions with {b.model}"))
                encoder = b.index.context.ready()[1]
                plain = [c.text for c in captions]
                texts_of[b.model] = {
                    lab: embed_captions(encoder, plain, ts) for lab, ts in prompt_forms(settings.templates)
                }
            for by in settings.by:
                _rows_of(b, by, texts_of[b.model], captions, common, settings, rows, queries)
    finally:
        for b in built:
            b.index.close()
    return EvalResult(data, tuple(rows), tuple(queries), tuple(common), embedded, tuple(failed), work)


def _not_indexed(
    data: Dataset, files: ClipFiles, common: Sequence[str], built: Sequence[_Index]
) -> list[tuple[str, str]]:
    """(key, reason) of the clips placed but not in every index (an index run could not decode them)."""
    placed, kept = set(files.keys.values()), set(common)
    out = []
    for clip in data.clips:
        if clip.key in placed and clip.key not in kept:
            why = next((b.failures[clip.key] for b in built if clip.key in b.failures), "not indexed")
            out.append((clip.key, why))
    return out
