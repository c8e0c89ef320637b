"""Caption sets as published, read into one shape: the clips to index (an audio file, or a time
range of one) and the captions that describe them.

- **Song Describer** (``song_describer.csv``: ``caption_id``, ``track_id``, ``caption``,
  ``is_valid_subset``, ``familiarity``, ``artist_id``, ``album_id``, ``path``, ``duration``...;
  its ``audio`` folder of ``NN/<track_id>.2min.mp3`` excerpts). A track has one caption or
  several; ``path`` names the original MTG-Jamendo file (``NN/<track_id>.mp3``).
- **MusicCaps** (``musiccaps-public.csv``: ``ytid``, ``start_s``, ``end_s``,
  ``audioset_positive_labels``, ``aspect_list``, ``caption``, ...), with whatever clips the
  user has as local files named by ``ytid`` (``<ytid>.wav``, or ``<ytid>_<start>-<end>.wav``
  and the like); a file longer than its clip is cut to ``start_s``..``end_s``.
- **A plain CSV** of ``path,caption`` with optional ``start,end`` (seconds), paths relative
  to the CSV's folder (or ``--audio``); a header row is optional.

Clips whose audio is missing are counted in ``Dataset.missing``, not dropped silently.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..config import AUDIO_EXTENSIONS
from ..errors import MusicSearchError
from ..library import walk

log = logging.getLogger(__name__)

FORMATS = ("songdescriber", "musiccaps", "csv")
CSV_NAMES = ("song_describer.csv", "musiccaps-public.csv", "musiccaps.csv")  # looked for in a folder
YTID_LENGTH = 11  # YouTube ids are 11 characters of [A-Za-z0-9_-]
_YTID_TAIL = re.compile(r"[\s_.\-\[(]")  # what may follow a ytid in a clip's file name
GUIDE = "docs/evaluation.md says how to get each set onto disk; nothing is downloaded"


@dataclass(frozen=True)
class Clip:
    """One recording to index. ``start``/``end`` (s) cut a range of ``source``; None: the
    whole file. With ``whole_if_short`` a file no longer than the range is taken as the clip
    itself (MusicCaps clips saved already cut)."""

    key: str
    source: Path
    start: float | None = None
    end: float | None = None
    whole_if_short: bool = False


@dataclass(frozen=True)
class Caption:
    """A description of the clip ``clip`` (a ``Clip.key``)."""

    id: str
    clip: str
    text: str


@dataclass(frozen=True)
class Dataset:
    """A caption set read from ``csv_path``: the clips found on disk, their captions, and the
    keys of the clips whose audio is missing (their captions are left out, and counted)."""

    csv_path: Path
    format: str
    audio: Path
    clips: tuple[Clip, ...]
    captions: tuple[Caption, ...]
    missing: tuple[str, ...] = ()
    missing_captions: int = 0

    def limited(self, n: int | None) -> Dataset:
        """The first ``n`` clips (in the CSV's order) and their captions; None: all."""
        if n is None or n >= len(self.clips):
            return self
        keep = self.clips[:n]
        keys = {c.key for c in keep}
        return replace(self, clips=keep, captions=tuple(c for c in self.captions if c.clip in keys))

    def summary(self) -> str:
        """One line: what was read, and what is missing."""
        line = f"{self.format}: {len(self.captions)} captions of {len(self.clips)} clips ({self.csv_path})"
        if self.missing:
            line += f"; {count(len(self.missing), 'clip')} missing from {self.audio} "
            line += f"({count(self.missing_captions, 'caption')} left out)"
        return line


def count(n: int, noun: str) -> str:
    """``1 clip``, ``2 clips``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def find_csv(path: Path) -> Path:
    """The CSV of a dataset given as the CSV itself or as its folder."""
    path = path.expanduser().absolute()
    if path.is_file():
        return path
    if not path.exists():
        raise MusicSearchError(f"no dataset at {path}: {GUIDE}")
    for name in CSV_NAMES:
        if (path / name).is_file():
            return path / name
    found = sorted(path.glob("*.csv"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise MusicSearchError(f"no CSV of captions in {path}: {GUIDE}")
    raise MusicSearchError(f"{path} holds several CSVs ({', '.join(p.name for p in found[:3])}); name one")


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except UnicodeDecodeError as exc:
        raise MusicSearchError(f"{path} is not UTF-8 text ({exc.reason})") from None
    if not rows:
        raise MusicSearchError(f"{path} holds no rows")
    return [c.strip().lower() for c in rows[0]], rows


def guess_format(header: Sequence[str]) -> str:
    """The format a CSV's first row shows: Song Describer's or MusicCaps' columns, else plain."""
    names = set(header)
    if {"caption_id", "track_id", "caption"} <= names:
        return "songdescriber"
    if {"ytid", "start_s", "end_s", "caption"} <= names:
        return "musiccaps"
    return "csv"


def load_dataset(path: Path | str, format: str | None = None, audio: Path | str | None = None) -> Dataset:
    """Read a dataset (its CSV, or the folder holding it) in ``format`` (None: guessed from
    the CSV's columns). ``audio`` is the folder of its audio files (default: for a published
    set ``audio`` beside the CSV when there is one, else the CSV's folder).

    Raises:
        MusicSearchError: no such dataset or audio folder, a CSV without the columns its
            format needs, or no clip found on disk at all; each in one line.
    """
    csv_path = find_csv(Path(path))
    header, rows = _read_rows(csv_path)
    fmt = format or guess_format(header)
    if fmt not in FORMATS:
        raise MusicSearchError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    root = Path(audio).expanduser().absolute() if audio is not None else _default_audio(csv_path, fmt)
    if not root.is_dir():
        raise MusicSearchError(f"no audio folder at {root}: give the folder of the set's audio files with --audio")
    if fmt == "songdescriber":
        clips, captions, missing = _song_describer(_records(header, rows, csv_path, fmt), root)
    elif fmt == "musiccaps":
        clips, captions, missing = _musiccaps(_records(header, rows, csv_path, fmt), root)
    else:
        clips, captions, missing = _plain(header, rows, root)
    lost = sum(1 for c in captions if c.clip in set(missing))
    found = {c.key for c in clips}
    data = Dataset(
        csv_path=csv_path,
        format=fmt,
        audio=root,
        clips=tuple(clips),
        captions=tuple(c for c in captions if c.clip in found),
        missing=tuple(missing),
        missing_captions=lost,
    )
    if not data.clips:
        raise MusicSearchError(f"none of the {len(missing)} clips of {csv_path} is in {root}: {GUIDE}")
    log.info("%s", data.summary())
    return data


def _default_audio(csv_path: Path, fmt: str) -> Path:
    """A plain CSV's paths are relative to its folder; a published set's audio folder is
    ``audio`` beside its CSV when there is one."""
    beside = csv_path.parent / "audio"
    return beside if fmt != "csv" and beside.is_dir() else csv_path.parent


_NEEDED = {"songdescriber": ("caption_id", "track_id", "caption"), "musiccaps": ("ytid", "start_s", "end_s", "caption")}


def _records(header: list[str], rows: list[list[str]], path: Path, fmt: str) -> list[dict[str, str]]:
    lacking = [c for c in _NEEDED[fmt] if c not in header]
    if lacking:
        raise MusicSearchError(f"{path} lacks the column {lacking[0]!r} of the {fmt} format")
    return [dict(zip(header, (cell.strip() for cell in row))) for row in rows[1:]]


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise MusicSearchError(f"{what} must be a number of seconds, not {text!r}") from None


def _song_describer_file(root: Path, track_id: str, rel: str) -> Path | None:
    """The excerpt of a track: the CSV's ``path`` as given or as its ``.2min.mp3`` excerpt,
    else ``NN/<track_id>.2min.mp3`` (NN: the id's last two digits), in ``root`` or ``root/audio``
    (the published archive unpacks to ``audio/audio/``)."""
    names = []
    if rel:
        names += [rel, str(Path(rel).with_suffix("")) + ".2min.mp3"]
    if track_id.isdigit():
        names.append(f"{int(track_id) % 100:02d}/{track_id}.2min.mp3")
    for base in (root, root / "audio"):
        for name in names:
            if (base / name).is_file():
                return base / name
    return None


def _song_describer(records: list[dict[str, str]], root: Path) -> tuple[list[Clip], list[Caption], list[str]]:
    clips: dict[str, Clip] = {}
    missing: dict[str, None] = {}
    captions: list[Caption] = []
    for r in records:
        track, text = r["track_id"], r["caption"]
        if not track or not text:
            continue
        captions.append(Caption(r["caption_id"] or str(len(captions)), track, text))
        if track in clips or track in missing:
            continue
        source = _song_describer_file(root, track, r.get("path", ""))
        if source is None:
            missing[track] = None
        else:
            clips[track] = Clip(track, source)
    return list(clips.values()), captions, list(missing)


def _by_ytid(files: Iterable[Path], wanted: set[str]) -> dict[str, Path]:
    """Audio files named by ytid: ``<ytid>.ext`` or ``<ytid>`` then a separator and more."""
    found: dict[str, Path] = {}
    for path in files:
        stem = path.stem
        if stem in wanted:
            found.setdefault(stem, path)
        elif len(stem) > YTID_LENGTH and _YTID_TAIL.match(stem[YTID_LENGTH]) and stem[:YTID_LENGTH] in wanted:
            found.setdefault(stem[:YTID_LENGTH], path)
    return found


def _musiccaps(records: list[dict[str, str]], root: Path) -> tuple[list[Clip], list[Caption], list[str]]:
    wanted = {r["ytid"] for r in records if r["ytid"]}
    files = _by_ytid((f.path for f in walk(root, AUDIO_EXTENSIONS)), wanted)
    clips: list[Clip] = []
    captions: list[Caption] = []
    missing: list[str] = []
    seen: set[str] = set()
    for r in records:
        ytid, text = r["ytid"], r["caption"]
        if not ytid or not text or ytid in seen:
            continue
        seen.add(ytid)
        start, end = _number(r["start_s"], f"start_s of {ytid}"), _number(r["end_s"], f"end_s of {ytid}")
        captions.append(Caption(ytid, ytid, text))
        if ytid in files:
            clips.append(Clip(ytid, files[ytid], start, end, whole_if_short=True))
        else:
            missing.append(ytid)
    return clips, captions, missing


def _plain(header: list[str], rows: list[list[str]], root: Path) -> tuple[list[Clip], list[Caption], list[str]]:
    """``path,caption[,start,end]``; the first row is a header when it names path and caption."""
    if "path" in header and "caption" in header:
        cols = {name: header.index(name) for name in ("path", "caption", "start", "end") if name in header}
        body = rows[1:]
    else:
        cols = {"path": 0, "caption": 1, "start": 2, "end": 3}
        body = rows
    clips: dict[str, Clip] = {}
    missing: dict[str, None] = {}
    captions: list[Caption] = []
    for n, row in enumerate(body, 1):
        cell = {k: row[i].strip() if i < len(row) else "" for k, i in cols.items()}
        if not cell["path"] or not cell["caption"]:
            raise MusicSearchError(f"row {n} of the CSV needs a path and a caption: {','.join(row)!r}")
        start = _number(cell["start"], f"start in row {n}") if cell.get("start") else None
        end = _number(cell["end"], f"end in row {n}") if cell.get("end") else None
        if (start is None) != (end is None) or (start is not None and end is not None and end <= start):
            raise MusicSearchError(f"row {n}: give both start and end, the end after the start")
        key = cell["path"] if start is None else f"{cell['path']}@{start:g}-{end:g}"
        captions.append(Caption(str(n), key, cell["caption"]))
        if key in clips or key in missing:
            continue
        source = Path(cell["path"]).expanduser()
        source = source if source.is_absolute() else root / source
        if source.is_file():
            clips[key] = Clip(key, source, start, end)
        else:
            missing[key] = None
    return list(clips.values()), captions, list(missing)
