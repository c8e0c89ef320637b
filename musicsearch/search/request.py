"""What a search asks for, as one frozen value (``SearchRequest``), and the one parser that
builds it from what a user types (``parse_request``). The CLI's arguments and options, the HTTP
API's query parameters and form fields, the beets plugin's options and ``MusicIndex``'s keywords
all go through that parser, so an option means the same everywhere and is checked in one place;
``search/runner.py`` runs the request.

The parser takes a mapping of fields named as in the HTTP API, each given as typed (``3``,
``True``) or as the text a user typed (``"3"``, ``"true"``):

- ``q``: one prompt or several (``"warm pads"``, ``"strings::0.5"``: a weight after ``::``).
- ``not``: prompts to steer away from (default weight 0.5).
- ``like``: tracks or audio files to start from (a path, or a unique part of an indexed
  track's path or title); ``"Teardrop@1:20-1:40"`` starts from that moment only.
- ``between``: the two ends of a path (a playlist of ``k`` tracks moving from one to the other).
- ``k``, ``by`` (track | window), ``order`` (score | smooth), ``min_score``, ``lexical`` (names
  in prompts act as names), ``include_named``.
- filters: ``artist``, ``album``, ``genre``, ``year`` ("1990-1999"), ``min_duration`` /
  ``max_duration`` ("3:00"), ``path`` (a glob), ``tag`` (one or several), ``exclude_artist``,
  ``exclude_genre``, ``exclude_path`` (one or several), ``bpm`` ("120-128", matching half and
  double time unless ``strict_bpm``), ``key`` ("8A", "Am"), ``key_compatible`` ("8A": the keys
  that mix with it); blanks mean no filter. Or ``filters``: a ``Filters``, to which the string
  fields add.
- ``sound_only``: ``order`` smooth and paths move by sound alone, not by tempo and key too.
- variety: ``max_per_artist``, ``dedupe``, ``variation`` (0..1), ``seed``; or ``variety``: a
  ``Variety``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import MusicSearchError
from ..filters import Filters, parse_duration, texts
from .variety import Variety

NEGATIVE_WEIGHT = 0.5  # default weight of a ``not`` prompt
BY = ("track", "window")
ORDERS = ("score", "smooth")
FILTER_FIELDS: tuple[str, ...] = ("artist", "album", "genre", "year", "min_duration", "max_duration", "path")
FILTER_FIELDS += ("bpm", "key", "key_compatible")
EXCLUDE_FIELDS = {
    "exclude_artist": "exclude_artists",
    "exclude_genre": "exclude_genres",
    "exclude_path": "exclude_paths",
}
FIELDS = frozenset(
    {"q", "not", "like", "between", "k", "by", "order", "min_score", "lexical", "include_named"}
    | {*FILTER_FIELDS, "tag", *EXCLUDE_FIELDS, "filters", "strict_bpm", "sound_only"}
    | {"max_per_artist", "dedupe", "variation", "seed", "variety"}
)
_MOMENT = re.compile(r"(.+)@([\d:.]+)-([\d:.]+)")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


class Prompt(NamedTuple):
    """A text prompt and its weight."""

    text: str
    weight: float


@dataclass(frozen=True)
class Seed:
    """A track or audio file to start from. ``given`` is what the user typed; for a moment
    (``"Teardrop@1:20-1:40"``) ``target`` is the part before ``@`` and ``start``/``end`` are
    seconds, else ``target`` is ``given`` and they are None."""

    given: str
    target: str
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class SearchRequest:
    """One search, checked. ``prompts`` add up and ``negatives`` subtract; with ``seeds`` the
    hits are the tracks like them (prompts mixed in; the seed tracks left out; ``names`` apply
    to prompt-only searches); with ``path`` the two seeds are the ends of a playlist of ``k``
    tracks. ``filters`` hold every condition on a track (the variety's exclusions included),
    ``variety`` what reshapes the ranking. Build it with ``parse_request``."""

    prompts: tuple[Prompt, ...] = ()
    negatives: tuple[Prompt, ...] = ()
    seeds: tuple[Seed, ...] = ()
    filters: Filters = field(default_factory=Filters)
    variety: Variety = field(default_factory=Variety)
    by: str = "track"
    order: str = "score"
    k: int = 10
    min_score: float | None = None
    names: bool = True
    include_named: bool = False
    path: bool = False
    sound_only: bool = False  # smooth order and paths by sound alone (else tempo and key count too)

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int):
            raise MusicSearchError(f"k must be a whole number, not {self.k!r}")
        if self.path:
            if len(self.seeds) != 2:
                raise MusicSearchError("a path runs between two tracks: give a start and an end")
            if self.k < 2:
                raise MusicSearchError("a path needs at least 2 tracks (-n 2)")
        elif self.k < 1:
            raise MusicSearchError("k must be at least 1")
        _choice("by", self.by, BY)
        _choice("order", self.order, ORDERS)
        if self.min_score is not None and not math.isfinite(self.min_score):
            raise MusicSearchError(f"--min-score must be a finite number, not {self.min_score!r}")
        v = self.variety
        if v.exclude_artists or v.exclude_genres or v.exclude_paths:  # one place for every exclusion
            object.__setattr__(self, "filters", v.applied_to(self.filters) or Filters())
            object.__setattr__(self, "variety", replace(v, exclude_artists=(), exclude_genres=(), exclude_paths=()))


def parse_prompt(text: str, default_weight: float = 1.0, option: str | None = None) -> Prompt:
    """``"warm pads::2"`` -> ("warm pads", 2.0); no ``::weight`` suffix -> default weight.
    ``option`` names where the prompt came from (``"--not"``) in the message for an empty one.

    Raises:
        MusicSearchError: empty prompt, a weight that is not a number (``"pads::x"``), or
            text that is not valid Unicode (e.g. invalid UTF-8 on the command line).
    """
    if not isinstance(text, str):
        raise MusicSearchError(f"a prompt is text, not {text!r}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MusicSearchError(f"the prompt {text!r} is not valid text (invalid UTF-8?)") from None
    prompt, sep, tail = text.rpartition("::")
    if not sep:
        prompt, weight = text, default_weight
    else:
        try:
            weight = float(tail)
        except ValueError:
            raise MusicSearchError(f"the weight after '::' in {text!r} must be a number, e.g. 'warm pads::2'") from None
        if not math.isfinite(weight):
            raise MusicSearchError(f"the weight after '::' in {text!r} must be a finite number")
    prompt = prompt.strip()
    if not prompt:
        if option is not None:
            raise MusicSearchError(f"{option} got an empty prompt: give the text to steer away from, or leave it out")
        raise MusicSearchError("empty query")
    return Prompt(prompt, weight)


def parse_seed(target: str | Path) -> Seed:
    """A seed as typed: ``"Teardrop@1:20-1:40"`` names a moment, unless a file has that name.

    Raises:
        MusicSearchError: a time range whose end is not after its start.
    """
    given = str(target)
    m = _MOMENT.fullmatch(given)
    if m is None or Path(given).expanduser().is_file():
        return Seed(given, given)
    start, end = parse_duration(m.group(2)), parse_duration(m.group(3))
    assert start is not None and end is not None
    if end <= start:
        raise MusicSearchError(f"bad time range in {given!r}: the end must come after the start")
    return Seed(given, m.group(1), start, end)


def _items(value: object) -> list:
    """One value or several as a list (None: none)."""
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    raise MusicSearchError(f"give a text or a list of texts, not {value!r}")


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _whole(name: str, value: object) -> int | None:
    if _blank(value):
        return None
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MusicSearchError(f"{name} must be a whole number, not {value!r}")
    return value


def _number(name: str, value: object) -> float | None:
    if _blank(value):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise MusicSearchError(f"{name} must be a number, not {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise MusicSearchError(f"{name} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise MusicSearchError(f"{name} must be a finite number, not {value!r}")
    return number


def _flag(name: str, value: object, default: bool) -> bool:
    if _blank(value):
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise MusicSearchError(f"{name} must be true or false, not {value!r}")


def _choice(name: str, value: object, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise MusicSearchError(f"--{name} must be {' or '.join(allowed)}, not {value!r}")


def _filters(fields: Mapping[str, object]) -> Filters:
    """The ``filters`` given, with the string filter fields added (blanks: none)."""
    base = fields.get("filters")
    if base is not None and not isinstance(base, Filters):
        raise MusicSearchError(f"filters must be a Filters, not {base!r}")
    given: dict[str, Any] = {k: fields[k] for k in FILTER_FIELDS if not _blank(fields.get(k))}
    given["tags"] = tuple(t for t in _items(fields.get("tag")) if not _blank(t))
    for key, attr in EXCLUDE_FIELDS.items():
        given[attr] = texts(key.replace("_", "-"), fields.get(key))
    if _flag("--strict-bpm", fields.get("strict_bpm"), False):
        given["strict_bpm"] = True
    if base is None:
        return Filters(**given)  # Filters parses and checks each value
    clash = sorted(k for k in FILTER_FIELDS if k in given and getattr(base, k) is not None)
    if clash:
        raise MusicSearchError(f"{clash[0]} is given twice: as a filter field and in filters")
    for attr in ("tags", *EXCLUDE_FIELDS.values()):
        given[attr] = (*getattr(base, attr), *given[attr])
    return replace(base, **given)


def _variety(fields: Mapping[str, object]) -> Variety:
    base = fields.get("variety")
    if base is not None and not isinstance(base, Variety):
        raise MusicSearchError(f"variety must be a Variety, not {base!r}")
    given: dict[str, Any] = {}
    if not _blank(fields.get("max_per_artist")):
        given["max_per_artist"] = _whole("--max-per-artist", fields["max_per_artist"])
    if not _blank(fields.get("dedupe")):
        given["dedupe"] = _flag("--dedupe", fields["dedupe"], False)
    if not _blank(fields.get("variation")):
        given["variation"] = _number("--variation", fields["variation"])
    if not _blank(fields.get("seed")):
        given["seed"] = _whole("--seed", fields["seed"])
    return replace(base, **given) if base is not None else Variety(**given)


def parse_request(fields: Mapping[str, object]) -> SearchRequest:
    """A checked ``SearchRequest`` from what a user gave (the fields in the module docstring).

    Raises:
        MusicSearchError: an unknown field, or a value that cannot be used, named in one line
            (``"bad year 'soon': ..."``, ``"--by must be track or window, not 'album'"``).
    """
    unknown = sorted(set(fields) - FIELDS)
    if unknown:
        raise MusicSearchError(f"unknown search option {unknown[0]!r}")
    filters, variety = _filters(fields), _variety(fields)
    k = _whole("k", fields.get("k"))
    between, like = _items(fields.get("between")), _items(fields.get("like"))
    if "between" in fields and like:
        raise MusicSearchError("a path takes its two ends, not tracks to start from")
    if "like" in fields and not like:
        raise MusicSearchError("give a track or an audio file to start from")
    seeds = tuple(parse_seed(s) for s in (between or like))
    prompts = tuple(parse_prompt(t) for t in _items(fields.get("q")))
    negatives = tuple(parse_prompt(t, NEGATIVE_WEIGHT, "--not") for t in _items(fields.get("not")))
    if not seeds and not prompts and "between" not in fields:
        raise MusicSearchError("empty query")
    return SearchRequest(
        prompts=prompts,
        negatives=negatives,
        seeds=seeds,
        filters=filters,
        variety=variety,
        by=str(fields.get("by") or "track"),
        order=str(fields.get("order") or "score"),
        k=10 if k is None else k,
        min_score=_number("--min-score", fields.get("min_score")),
        names=_flag("lexical", fields.get("lexical"), True),
        include_named=_flag("include_named", fields.get("include_named"), False),
        path="between" in fields,
        sound_only=_flag("--sound-only", fields.get("sound_only"), False),
    )
