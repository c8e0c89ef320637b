"""Reads of tracks, failures, warnings, tags and window spans (no vectors)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .connection import Connection
from .records import TRACK_FIELDS, Track


class TrackReads(Connection):
    """The store's reads of track metadata."""

    def _under(self, table: str, columns: str, root: Path) -> dict[str, tuple]:
        """path -> the other ``columns`` of the rows of ``table`` at or below ``root``."""
        prefix = str(root).rstrip(os.sep) + os.sep
        rows = self.conn.execute(
            f"select path, {columns} from {table} where path = ? or substr(path, 1, ?) = ?",
            [str(root), len(prefix), prefix],
        )
        return {r[0]: tuple(r[1:]) for r in rows}

    def known_files(self, root: Path) -> dict[str, tuple[int, int, int, str]]:
        """path -> (id, size, mtime_ns, hash) of the tracks at or below ``root``."""
        return self._under("tracks", "id, size, mtime_ns, hash", root)

    def hashes_of(self, paths: Iterable[str]) -> dict[str, str]:
        """path -> content hash of those of ``paths`` that are indexed."""
        wanted = list(paths)
        out: dict[str, str] = {}
        for i in range(0, len(wanted), 10_000):
            part = wanted[i : i + 10_000]
            rows = self.conn.execute(
                f"select path, hash from tracks where path in ({', '.join('?' * len(part))})", part
            )
            out.update(dict(rows.fetchall()))
        return out

    def unanalysed_under(self, root: Path) -> list[tuple[int, str]]:
        """(id, path) of the tracks at or below ``root`` without tempo and key analysis."""
        prefix = str(root).rstrip(os.sep) + os.sep
        rows = self.conn.execute(
            "select id, path from tracks where analysed is null and (path = ? or substr(path, 1, ?) = ?) order by id",
            [str(root), len(prefix), prefix],
        )
        return [(r[0], r[1]) for r in rows]

    def musical_counts(self) -> dict[str, int]:
        """How many tracks have a tempo and a key, how many of those came from the files' tags,
        and how many tracks are not analysed yet."""
        row = self.conn.execute(
            "select count(bpm), count(case when bpm_source = 'tag' then 1 end), count(key),"
            " count(case when key_source = 'tag' then 1 end), count(*) - count(analysed) from tracks"
        ).fetchone()
        return dict(zip(("bpm", "bpm_tags", "key", "key_tags", "unanalysed"), (int(v) for v in row)))

    def known_failures(self, root: Path) -> dict[str, tuple[int, int, str]]:
        """path -> (size, mtime_ns, reason) of recorded failures at or below ``root``."""
        return self._under("failures", "size, mtime_ns, reason", root)

    def failures(self) -> list[tuple[str, str]]:
        return self.conn.execute("select path, reason from failures order by path").fetchall()

    def warnings(self) -> list[tuple[str, str]]:
        """(path, warning) of the tracks indexed with a warning."""
        return self.conn.execute("select path, warning from tracks where warning is not null order by path").fetchall()

    def counts(self) -> dict[str, int]:
        q = self.conn.execute
        return {
            "tracks": q("select count(*) from tracks").fetchone()[0],
            "windows": q("select count(*) from windows").fetchone()[0],
            "failures": q("select count(*) from failures").fetchone()[0],
        }

    def tracks_under(self, root: Path) -> dict[str, Track]:
        """The tracks at or below ``root`` (a file or a folder), by absolute path."""
        known = self.known_files(root)
        tracks = self.tracks(row[0] for row in known.values())
        return {p: tracks[row[0]] for p, row in known.items() if row[0] in tracks}

    def tracks(self, ids: Iterable[int]) -> dict[int, Track]:
        ids = list(ids)
        if not ids:
            return {}
        cols = ", ".join(f"[{c}]" for c in TRACK_FIELDS)
        marks = ", ".join("?" * len(ids))
        rows = self.conn.execute(f"select {cols} from tracks where id in ({marks})", ids)
        return {r[0]: Track(*r) for r in rows}

    def windows_by_id(self, window_ids: Iterable[int]) -> dict[int, tuple[int, float, float]]:
        """window id -> (track id, start, end)."""
        ids = list(window_ids)
        if not ids:
            return {}
        rows = self.conn.execute(
            f"select id, track_id, start, [end] from windows where id in ({', '.join('?' * len(ids))})", ids
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def find_tracks(self, text: str, limit: int = 5) -> list[Track]:
        """Tracks whose path is ``text``, else whose path or title contains it (case-insensitive);
        an exact title match wins over substring matches."""
        cols = ", ".join(f"[{c}]" for c in TRACK_FIELDS)
        q = self.conn.execute
        for sql, params in (
            (f"select {cols} from tracks where path = ?", [text]),
            (f"select {cols} from tracks where lower(title) = lower(?) order by path limit ?", [text, limit + 1]),
            (
                f"select {cols} from tracks where instr(lower(path), lower(?)) > 0 or instr(lower(title), lower(?)) > 0"
                " order by path limit ?",
                [text, text, limit + 1],
            ),
        ):
            rows = q(sql, params).fetchall()
            if rows:
                return [Track(*r) for r in rows]
        return []

    def tags_of(self, track_ids: Iterable[int]) -> dict[int, list[tuple[str, str, float]]]:
        """track id -> [(vocab, label, score)], best first."""
        ids = list(track_ids)
        out: dict[int, list[tuple[str, str, float]]] = {i: [] for i in ids}
        if ids:
            for tid, vocab, label, score in self.conn.execute(
                f"select track_id, vocab, label, score from track_tags where track_id in ({', '.join('?' * len(ids))})"
                " order by track_id, score desc",
                ids,
            ):
                out[tid].append((vocab, label, score))
        return out

    def untagged_ids(self) -> list[int]:
        return [
            r[0]
            for r in self.conn.execute(
                "select id from tracks where id not in (select track_id from track_tags) order by id"
            )
        ]

    def catalog_rows(self) -> list[tuple]:
        """(id, path, size, title, artist, album, albumartist, genre, year, tracknumber,
        duration, indexed_at, bpm) of every track, by id: what the Subsonic views group."""
        sql = (
            "select id, path, size, title, artist, album, albumartist, genre, year, tracknumber, duration,"
            " indexed_at, bpm from tracks order by id"
        )
        return self.conn.execute(sql).fetchall()

    def change_stamp(self) -> tuple[int, int]:
        """A value that changes whenever the database does: SQLite's ``data_version`` (commits
        by other connections, e.g. the watcher's) and this connection's own ``total_changes``."""
        return int(self.conn.execute("pragma data_version").fetchone()[0]), self.conn.total_changes
