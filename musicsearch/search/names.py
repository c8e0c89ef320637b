"""Names in queries: the words of a prompt that name an artist, an album or a title (found
through the SQLite FTS5 index ``tracks_fts`` of migration 5) act as names; the rest ranks
by sound.

- A prompt that is exactly a title, an artist, an album (or album artist) or a file name
  ("Song 07", "Ann Arbor") puts those tracks in a lexical ranking (titles first) fused with
  the sound ranking by reciprocal rank fusion; they rank above the tracks only the sound
  brings, so an exact title ranks first.
- "piano by Ryan Reilly": only that artist's tracks, ranked by "piano".
- "from Kind of Blue": only that album's tracks.
- "like Daft Punk but calmer": the mean vector of that artist's (or album's, or title's)
  tracks plus "calmer"; the named tracks themselves are left out unless asked for.

A name counts only when its words equal a whole field (case, accents and punctuation aside),
so ordinary words ("piano", "a 440 Hz tone") never reorder a pure sound query.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..embed import TextEmbedder
from ..errors import MusicSearchError
from ..filters import Filters
from ..hits import Hit
from ..store import Store
from ..vectors.query import best_segments
from .classify import shown_tags
from .prompts import Query, combine, prompt_vectors
from .request import Prompt

log = logging.getLogger(__name__)

RRF_K = 60  # reciprocal rank fusion: score = sum 1 / (RRF_K + rank)
MAX_NAME_WORDS = 8  # the longest name tried after "by" / "like" / "from"
MAX_LEXICAL = 10_000  # tracks one name may bring
TITLE_FIELDS = ("title", "artist", "albumartist", "album", "file")  # best first: a title wins
ARTIST_FIELDS = ("artist", "albumartist")
ALBUM_FIELDS = ("album",)
LIKE_FIELDS = ("artist", "albumartist", "album", "title")
FIELD_NAMES = {"albumartist": "artist", "file": "title"}  # how a match is reported
_PHRASE = re.compile(r"(?<!\w)(by|from|similar to|sounds like|like)\s+", re.IGNORECASE)
_LEAD = re.compile(r"^(?:[\s,;:.!?&+-]|(?:but|and|yet|though|only|just)\b)+", re.IGNORECASE)
_TAIL = re.compile(r"(?:[\s,;:.!?&+-]|\b(?:but|and|something|anything|sounding|sounds|music)\b)+$", re.IGNORECASE)


def tokens(text: str | None) -> list[str]:
    """Lower-case words without accents: ``"Beyoncé - Halo (Live)"`` -> beyonce, halo, live."""
    if not text:
        return []
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return re.findall(r"\w+", plain.casefold())


@dataclass(frozen=True)
class Interpretation:
    """What a prompt names and what is left to rank by sound.

    Attributes:
        sound: the words ranked by sound ("" when the prompt was only a name).
        exact: (track id, field) of the tracks a whole prompt names, best first.
        by_ids: "by X" / "from X": the only tracks allowed (empty: no such phrase).
        by_field: "artist" or "album" for ``by_ids``.
        like_ids: "like X": the tracks whose mean vector seeds the query.
        name: the name found ("" when none).
    """

    sound: str
    exact: tuple[tuple[int, str], ...] = ()
    by_ids: tuple[int, ...] = ()
    by_field: str = ""
    like_ids: tuple[int, ...] = ()
    name: str = ""


def whole_field_matches(store: Store, words: Sequence[str], fields: Sequence[str]) -> list[tuple[int, str]]:
    """(track id, field) of the tracks one of whose ``fields`` has exactly ``words``, in the
    order of ``fields`` (a title before an artist), then by track id."""
    if not words:
        return []
    try:
        rows = store.name_matches(words, fields, MAX_LEXICAL)
    except sqlite3.OperationalError as exc:  # an index from before migration 5 opened read-only
        log.warning("name search unavailable (%s): ranking by sound only", exc)
        return []
    target = list(words)
    found: list[tuple[int, int, str]] = []
    for row in rows:
        for rank, name in enumerate(fields):
            value = row[1 + rank]
            if name == "file" and value:
                value = value.rsplit(".", 1)[0]  # the name without its extension
            if tokens(value) == target:
                found.append((rank, int(row[0]), name))
                break
    found.sort()
    return [(tid, FIELD_NAMES.get(name, name)) for _, tid, name in found]


def _rest(before: str, after: str) -> str:
    """What is left of a prompt around a name, without dangling connectors."""
    before = _TAIL.sub("", before.strip())
    after = _LEAD.sub("", after.strip())
    return " ".join(p for p in (before.strip(), after.strip()) if p)


def interpret(store: Store, prompt: str) -> Interpretation:
    """Find the names in ``prompt`` (see the module docstring); a prompt naming nothing comes
    back as ``Interpretation(sound=prompt)``."""
    if not store.has_name_index():
        return Interpretation(prompt)
    exact = whole_field_matches(store, tokens(prompt), TITLE_FIELDS)
    if exact:
        return Interpretation(prompt, exact=tuple(exact), name=prompt.strip())
    for m in _PHRASE.finditer(prompt):
        kind = m.group(1).lower()
        fields = ARTIST_FIELDS if kind == "by" else ALBUM_FIELDS if kind == "from" else LIKE_FIELDS
        after = prompt[m.end() :]
        words = list(re.finditer(r"\S+", after))
        for n in range(min(len(words), MAX_NAME_WORDS), 0, -1):
            end = words[n - 1].end()
            name = after[:end].strip(" ,;:.!?")
            found = whole_field_matches(store, tokens(name), fields)
            if not found:
                continue
            rest = _rest(prompt[: m.start()], after[end:])
            ids = tuple(dict.fromkeys(tid for tid, _ in found))
            if kind in ("by", "from"):
                return Interpretation(rest, by_ids=ids, by_field=found[0][1], name=name)
            return Interpretation(rest, like_ids=ids, name=name)
    return Interpretation(prompt)


def fuse(sound: Sequence[int], lexical: Sequence[int], k: int = RRF_K) -> list[int]:
    """Reciprocal rank fusion of the sound ranking and the lexical one (track ids, best
    first), names first: the tracks a name brought, ordered by ``sum 1 / (k + rank)`` over
    both rankings (ties: lexical order), then the rest in sound order. A name typed in full is
    what the user asked for, so it never sinks below a track that only sounds alike."""
    score: dict[int, float] = {}
    for ranking in (sound, lexical):
        for rank, tid in enumerate(ranking, 1):
            score[tid] = score.get(tid, 0.0) + 1.0 / (k + rank)
    lex = {tid: i for i, tid in enumerate(lexical)}
    named = sorted(lex, key=lambda t: (-score[t], lex[t]))
    return named + [t for t in sound if t not in lex]


def named_query(
    store: Store,
    encoder: TextEmbedder,
    prompts: Sequence[Prompt],
    negatives: Sequence[Prompt] = (),
    *,
    include_named: bool = False,
) -> Query:
    """The query of ``prompts`` minus ``negatives``, with the names in each prompt used as
    names (see ``interpret``); ``include_named`` keeps the tracks of a "like X" name among
    the hits."""
    if not prompts:
        raise MusicSearchError("empty query")
    positive: list[tuple[np.ndarray, float]] = []
    names: list[tuple[int, str]] = []
    allowed: list[int] = []
    exclude: list[int] = []
    matched = "sound"
    for prompt, weight in prompts:
        found = interpret(store, prompt)
        names.extend(found.exact)
        seed_ids = found.like_ids or (found.by_ids if not found.sound else ())
        if seed_ids:
            _, vecs = store.track_vectors(seed_ids)
            mean = vecs.astype(np.float64).mean(axis=0)
            positive.append(((mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32), weight))
        if found.like_ids and not include_named:
            exclude.extend(found.like_ids)
        if found.by_ids:
            allowed.extend(found.by_ids)
            matched = f"{found.by_field}+sound" if found.sound else found.by_field
        if found.sound:
            positive.append((encoder.embed_texts([found.sound])[0], weight))
    only = tuple(sorted(set(allowed))) if allowed else None
    q = combine(positive, prompt_vectors(encoder, negatives))
    return Query(q, tuple(names), only, tuple(dict.fromkeys(exclude)), matched)


def named_hits(
    store: Store, q: np.ndarray, names: Sequence[tuple[int, str]], filters: Filters | None, exclude: set[int]
) -> dict[int, Hit]:
    """Hits for the tracks a name brought (their sound score and best window), those that
    pass ``filters`` and are not excluded."""
    ids = [tid for tid, _ in names if tid not in exclude]
    if filters is not None and ids:
        allowed = set(store.filtered_ids(filters, among=ids).tolist())
        ids = [i for i in ids if i in allowed]
    tracks = store.tracks(ids)
    segments = best_segments(store, q, ids)
    tags = store.tags_of(ids)
    tids, vecs = store.track_vectors(ids)
    score = {int(t): float(v @ q) for t, v in zip(tids, vecs)}
    field_of = dict(names)
    out: dict[int, Hit] = {}
    for tid in ids:
        if tid in tracks and tid in segments:
            out[tid] = Hit(0, score.get(tid, 0.0), tracks[tid], segments[tid], shown_tags(tags[tid]), field_of[tid])
    return out
