"""The store's writes: tracks with their windows, moves, removals, failures and tags (call them
inside ``with store.write():``)."""

from __future__ import annotations

from collections.abc import Iterable

from .blobs import to_blob, track_vector
from .connection import Connection
from .records import MUSICAL_FIELDS, Musical, TrackRecord


class Writes(Connection):
    """The store's writes (call inside ``with store.write():``)."""

    def put_track(self, rec: TrackRecord, now: str) -> int:
        """Insert or replace the track at ``rec.path`` (keeping its id) and its windows."""
        row = self.conn.execute("select id from tracks where path = ?", [rec.path]).fetchone()
        values = {
            "path": rec.path,
            "size": rec.size,
            "mtime_ns": rec.mtime_ns,
            "hash": rec.hash,
            "duration": rec.duration,
            "n_windows": len(rec.vectors),
            "vector": to_blob(track_vector(rec.vectors)),
            "indexed_at": now,
            "warning": rec.warning,
            **rec.tags,
            **(rec.musical or Musical()).values(),
        }
        if row:
            track_id = row[0]
            self.conn.execute("delete from windows where track_id = ?", [track_id])
            self.conn.execute("delete from track_tags where track_id = ?", [track_id])
            self.db.table("tracks").update(track_id, values)
        else:
            track_id = self.db.table("tracks").insert(values).last_pk
        self.db.table("windows").insert_all(
            {"track_id": track_id, "idx": i, "start": s, "end": e, "vector": to_blob(v, self._window_dtype)}
            for i, (s, e, v) in enumerate(zip(rec.starts, rec.ends, rec.vectors))
        )
        self.conn.execute("delete from failures where path = ?", [rec.path])
        return track_id

    def add_tracks(self, recs: Iterable[TrackRecord], now: str) -> int:
        """Insert new tracks (no track at their paths) and their windows in bulk; returns how
        many. Use ``put_track`` to replace one."""
        tcols = ["path", "size", "mtime_ns", "hash", "duration", "n_windows", "vector", "indexed_at", "warning"]
        tcols += MUSICAL_FIELDS
        tcols += ["title", "artist", "album", "albumartist", "genre", "year", "tracknumber"]
        sql = f"insert into tracks ({', '.join(f'[{c}]' for c in tcols)}) values ({', '.join('?' * len(tcols))})"
        windows: list[tuple] = []
        n = 0
        for rec in recs:
            tags = rec.tags
            cur = self.conn.execute(
                sql,
                [rec.path, rec.size, rec.mtime_ns, rec.hash, rec.duration, len(rec.vectors)]
                + [to_blob(track_vector(rec.vectors)), now, rec.warning]
                + list((rec.musical or Musical()).values().values())
                + [tags.get(c) for c in tcols[9 + len(MUSICAL_FIELDS) :]],
            )
            tid = cur.lastrowid
            windows.extend(
                (tid, i, s, e, to_blob(v, self._window_dtype))
                for i, (s, e, v) in enumerate(zip(rec.starts, rec.ends, rec.vectors))
            )
            n += 1
        self.conn.executemany(
            "insert into windows (track_id, idx, start, [end], vector) values (?, ?, ?, ?, ?)", windows
        )
        return n

    def set_musical(self, track_id: int, musical: Musical) -> None:
        """Store a track's tempo, key and energy (the analysis of a track indexed before it)."""
        self.db.table("tracks").update(track_id, musical.values())

    def set_file(self, track_id: int, size: int, mtime_ns: int, hash: str) -> None:
        """A track's file changed but not its audio (tags written into it): its new size,
        time and content hash, so that the next index run does not embed it again."""
        self.db.table("tracks").update(track_id, {"size": size, "mtime_ns": mtime_ns, "hash": hash})

    def move_track(self, track_id: int, path: str, size: int, mtime_ns: int) -> None:
        self.db.table("tracks").update(track_id, {"path": path, "size": size, "mtime_ns": mtime_ns})

    def remove_tracks(self, track_ids: Iterable[int]) -> None:
        ids = [int(t) for t in track_ids]
        for i in range(0, len(ids), 5000):  # a statement per table per 5,000 tracks, not per track
            part = ids[i : i + 5000]
            marks = ", ".join("?" * len(part))
            self.conn.execute(f"delete from windows where track_id in ({marks})", part)
            self.conn.execute(f"delete from track_tags where track_id in ({marks})", part)
            self.conn.execute(f"delete from tracks where id in ({marks})", part)

    def put_failure(self, path: str, size: int, mtime_ns: int, reason: str, now: str) -> None:
        for table in ("windows", "track_tags"):
            self.conn.execute(f"delete from {table} where track_id in (select id from tracks where path = ?)", [path])
        self.conn.execute("delete from tracks where path = ?", [path])
        self.db.table("failures").upsert(
            {"path": path, "size": size, "mtime_ns": mtime_ns, "reason": reason, "failed_at": now}, pk="path"
        )

    def set_tags(self, track_id: int, tags: Iterable[tuple[str, str, float]]) -> None:
        """Replace a track's tags with (vocab, label, score) rows."""
        self.conn.execute("delete from track_tags where track_id = ?", [track_id])
        self.db.table("track_tags").insert_all(
            {"track_id": track_id, "vocab": v, "label": lab, "score": sc} for v, lab, sc in tags
        )

    def remove_failures(self, paths: Iterable[str]) -> None:
        for p in paths:
            self.conn.execute("delete from failures where path = ?", [p])
