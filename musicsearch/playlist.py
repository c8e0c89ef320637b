"""Extended M3U8 playlists of hits, for any player."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .search import Hit


def m3u_text(hits: Sequence[Hit]) -> str:
    """``#EXTM3U`` then, per hit, ``#EXTINF:<seconds>,<artist> - <title>`` and its absolute path."""
    lines = ["#EXTM3U"]
    for h in hits:
        t = h.track
        name = f"{t.artist} - {t.title}" if t.artist else t.title
        seconds = int(round(t.duration)) if t.duration else -1
        lines += [f"#EXTINF:{seconds},{' '.join(name.split())}", str(Path(t.path).absolute())]
    return "\n".join(lines) + "\n"


def write_m3u(hits: Sequence[Hit], path: Path | str) -> Path:
    """Write the playlist as UTF-8 (atomically: a temp file renamed into place)."""
    path = Path(path).expanduser()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(m3u_text(hits), encoding="utf-8")
    os.replace(tmp, path)
    return path
