"""Extended M3U8 playlists of hits, for any player: absolute paths of this machine, paths
relative to the playlist's folder (``relative``), or with the library root rewritten to where a
player sees it (``path_map``, e.g. Navidrome with the library mounted at ``/music``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from .errors import MusicSearchError
from .hits import Hit

log = logging.getLogger(__name__)

PathMap = Sequence[tuple[str, str]]


def parse_path_map(specs: Sequence[str] | None) -> list[tuple[str, str]]:
    """``FROM=TO`` strings -> (FROM, TO) pairs, longest FROM first. FROM is a folder of this
    machine (made absolute); TO is the same folder as the player sees it (kept as given).

    Raises:
        MusicSearchError: a spec without ``=`` or with an empty side.
    """
    pairs: list[tuple[str, str]] = []
    for spec in specs or ():
        src, sep, dst = spec.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise MusicSearchError(f"bad --path-map {spec!r}: expected FROM=TO, e.g. /home/me/Music=/music")
        src_abs = str(Path(src.strip()).expanduser().absolute())
        dst = dst.strip()
        pairs.append((src_abs.rstrip("/") or "/", dst.rstrip("/") or "/"))
    return sorted(pairs, key=lambda p: len(p[0]), reverse=True)


def map_path(path: str, path_map: PathMap) -> str | None:
    """``path`` with the first matching FROM folder (whole path components) replaced by its
    TO; None when no FROM holds it."""
    for src, dst in path_map:
        if path == src:
            return dst
        prefix = src if src.endswith("/") else src + "/"
        if path.startswith(prefix):
            rest = path[len(prefix) :]
            return (dst if dst.endswith("/") else dst + "/") + rest
    return None


def playlist_entry(track_path: str, *, base: Path | None = None, path_map: PathMap = ()) -> str:
    """How one track is written: relative to ``base`` (a folder) when given, else mapped by
    ``path_map`` when a FROM holds it, else the absolute path (with a WARNING when a map was
    given but none applies: the player may not find that file)."""
    absolute = str(Path(track_path).absolute())
    if base is not None:
        return Path(os.path.relpath(absolute, base.absolute())).as_posix()
    if path_map:
        mapped = map_path(absolute, path_map)
        if mapped is not None:
            return mapped
        log.warning("%s is under no --path-map folder; written with its own absolute path", absolute)
    return absolute


def m3u_text(hits: Sequence[Hit], *, base: Path | None = None, path_map: PathMap = ()) -> str:
    """``#EXTM3U`` then, per hit, ``#EXTINF:<seconds>,<artist> - <title>`` and its path (see
    ``playlist_entry``)."""
    lines = ["#EXTM3U"]
    for h in hits:
        t = h.track
        name = f"{t.artist} - {t.title}" if t.artist else t.title
        seconds = int(round(t.duration)) if t.duration else -1
        entry = playlist_entry(t.path, base=base, path_map=path_map)
        lines += [f"#EXTINF:{seconds},{' '.join(name.split())}", entry]
    return "\n".join(lines) + "\n"


def write_m3u(hits: Sequence[Hit], path: Path | str, *, relative: bool = False, path_map: Sequence[str] = ()) -> Path:
    """Write the playlist as UTF-8 (atomically: a temp file renamed into place).

    Args:
        relative: paths relative to the playlist's folder (players resolve them from there).
        path_map: ``FROM=TO`` strings rewriting the library root (``parse_path_map``).

    Raises:
        MusicSearchError: both ``relative`` and ``path_map``, a bad map, or a ``path`` that is a
            folder or lies in no folder (``check_m3u_path``); the temp file never stays behind.
    """
    pairs = parse_path_map(path_map)
    if relative and pairs:
        raise MusicSearchError("--relative and --path-map exclude each other: relative paths need no map")
    path = check_m3u_path(path)
    text = m3u_text(hits, base=path.parent if relative else None, path_map=pairs)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:  # nothing left behind when the write or the rename fails
        tmp.unlink(missing_ok=True)
    return path


def check_m3u_path(path: Path | str, option: str = "--m3u") -> Path:
    """The playlist file ``path`` names, made absolute, once it is known that it can be written
    there: not a folder, and in a folder that exists. Callers check before any search runs.

    Raises:
        MusicSearchError: ``path`` is a folder, or its folder does not exist (one line, naming
            ``option``).
    """
    given = str(path)
    absolute = Path(path).expanduser().absolute()
    if absolute.is_dir():
        example = Path(given) / "playlist.m3u8"
        raise MusicSearchError(f"{option}: {given!r} is a folder; give a file name such as {str(example)!r}")
    if not absolute.parent.is_dir():
        raise MusicSearchError(f"{option}: cannot write the playlist {absolute}: no folder {absolute.parent}")
    return absolute
