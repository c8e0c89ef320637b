"""Zero-shot classification and tagging (owns labels and tags): labels are wrapped in a prompt template, embedded
with the text tower, and scored against an audio vector with CLAP's logit scale and a
softmax over the labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..embed import TextEmbedder
from ..errors import MusicSearchError
from ..store import Store

VOCABULARIES: dict[str, tuple[str, tuple[str, ...]]] = {
    # name: (template, labels)
    "genre": (
        "This audio is a {} song.",
        (
            "rock",
            "pop",
            "jazz",
            "blues",
            "classical",
            "electronic",
            "techno",
            "house",
            "ambient",
            "hip hop",
            "rap",
            "r&b",
            "soul",
            "funk",
            "reggae",
            "country",
            "folk",
            "metal",
            "punk",
            "latin",
            "world music",
            "soundtrack",
            "orchestral",
            "disco",
            "drum and bass",
            "dubstep",
            "lo-fi",
            "gospel",
            "opera",
            "chiptune",
        ),
    ),
    "mood": (
        "This audio is {} music.",
        (
            "happy",
            "sad",
            "calm",
            "energetic",
            "aggressive",
            "romantic",
            "dark",
            "uplifting",
            "melancholic",
            "relaxing",
            "tense",
            "epic",
            "dreamy",
            "playful",
            "mysterious",
            "peaceful",
        ),
    ),
    "instrument": (
        "This audio features {}.",
        (
            "piano",
            "acoustic guitar",
            "electric guitar",
            "bass guitar",
            "drums",
            "violin",
            "cello",
            "strings",
            "trumpet",
            "saxophone",
            "flute",
            "synthesizer",
            "organ",
            "choir",
            "female vocals",
            "male vocals",
            "harp",
            "percussion",
            "brass",
            "accordion",
        ),
    ),
}
DEFAULT_TEMPLATE = "{}"


@dataclass(frozen=True)
class Classification:
    """Each label with its probability (best first), the top label and its probability."""

    labels: tuple[tuple[str, float], ...]
    top_label: str
    confidence: float


def parse_labels(text: str | Sequence[str]) -> list[str]:
    """``"rock, jazz , classical"`` -> ["rock", "jazz", "classical"] (duplicates dropped)."""
    items = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
    labels = list(dict.fromkeys(t.strip() for t in items if t.strip()))
    if len(labels) < 2:
        raise MusicSearchError("give at least two labels, comma separated")
    return labels


def read_label_file(path: Path | str) -> list[str]:
    """Labels, one per line; blank lines and lines starting with # are skipped."""
    try:
        lines = Path(path).expanduser().read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise MusicSearchError(f"cannot read labels file {path}: {exc.strerror}") from None
    labels = list(dict.fromkeys(s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")))
    if len(labels) < 2:
        raise MusicSearchError(f"labels file {path} needs at least two labels")
    return labels


def prompts(labels: Sequence[str], template: str) -> list[str]:
    if "{}" not in template:
        raise MusicSearchError("--template must contain {} where the label goes")
    return [template.replace("{}", label) for label in labels]


def probabilities(audio: np.ndarray, label_vectors: np.ndarray, logit_scale: float) -> np.ndarray:
    """Softmax over labels of ``logit_scale * cos(audio, label)``; works on one vector or a
    (n, dim) batch."""
    logits = logit_scale * (np.atleast_2d(audio) @ label_vectors.T).astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    return p if np.ndim(audio) > 1 else p[0]


def classification(labels: Sequence[str], probs: np.ndarray) -> Classification:
    order = np.argsort(-probs, kind="stable")
    ranked = tuple((labels[i], float(probs[i])) for i in order)
    return Classification(ranked, ranked[0][0], ranked[0][1])


def classify_vector(
    encoder: TextEmbedder, vector: np.ndarray, labels: str | Sequence[str], template: str
) -> Classification:
    """Each label's probability for an audio vector, best first."""
    names = parse_labels(labels)
    label_vecs = encoder.embed_texts(prompts(names, template))
    return classification(names, probabilities(vector, label_vecs, encoder.logit_scale))


def shown_tags(rows: Sequence[tuple[str, str, float]]) -> tuple[tuple[str, float], ...]:
    """What a hit shows of a track's (vocab, label, score) tags, best first: the best label
    of each built-in vocabulary and of the user's labels, so that custom labels add to the
    genre, mood and instrument instead of pushing them out."""
    best: dict[str, tuple[str, float]] = {}
    for vocab, label, score in rows:
        if vocab not in best or score > best[vocab][1]:
            best[vocab] = (label, score)
    order = [*VOCABULARIES, "user"]
    return tuple(best[v] for v in order if v in best)


def tag_tracks(
    store: Store, encoder: TextEmbedder, *, top: int = 3, extra_labels: Sequence[str] = (), retag: bool = False
) -> int:
    """Give every indexed track (only untagged ones unless ``retag``) its ``top`` labels from
    each built-in vocabulary (genre, mood, instrument) and from ``extra_labels`` (template
    ``"{}"``), stored with their probabilities and usable as ``--tag`` filters. Custom
    labels are added to tracks tagged before too (replacing their earlier custom labels).

    Returns:
        The number of tracks tagged.
    """
    if top < 1:
        raise MusicSearchError("top must be at least 1")
    user = ("{}", tuple(parse_labels(list(extra_labels)))) if extra_labels else None
    untagged = set(store.untagged_ids())
    ids, vecs = store.track_vectors(None if retag or user else sorted(untagged))
    if not len(ids):
        return 0
    existing = store.tags_of(int(i) for i in ids)
    rows: dict[int, list[tuple[str, str, float]]] = {}
    for i in ids:
        fresh = retag or int(i) in untagged  # every vocabulary; else only the custom labels change
        rows[int(i)] = [] if fresh else [t for t in existing[int(i)] if t[0] != "user"]
    vocabs = dict(VOCABULARIES) | ({"user": user} if user else {})
    for name, (tmpl, labels) in vocabs.items():
        targets = [n for n, i in enumerate(ids) if name == "user" or retag or int(i) in untagged]
        if not targets:
            continue
        probs = probabilities(vecs[targets], encoder.embed_texts(prompts(labels, tmpl)), encoder.logit_scale)
        for n, p in zip(targets, probs):
            rows[int(ids[n])] += [(name, labels[j], float(p[j])) for j in np.argsort(-p, kind="stable")[:top]]
    with store.write(vectors=False):
        for track_id, tags in rows.items():
            store.set_tags(track_id, tags)
    return len(rows)
