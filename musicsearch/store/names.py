"""Names in queries: the FTS5 index ``tracks_fts`` over each track's names (migration 5)."""

from __future__ import annotations

from collections.abc import Sequence

from .connection import Connection

NAME_FIELDS = ("title", "artist", "album", "albumartist", "genre", "file")  # the columns of tracks_fts


class Names(Connection):
    """The store's reads of the name index."""

    def has_name_index(self) -> bool:
        """Whether the FTS5 index of names ``tracks_fts`` (migration 5) is there."""
        return self.conn.execute("select 1 from sqlite_master where name = 'tracks_fts'").fetchone() is not None

    def name_matches(self, words: Sequence[str], fields: Sequence[str], limit: int) -> list[tuple]:
        """Rows ``(track id, *fields)`` of the tracks one of whose ``fields`` (columns of
        ``tracks_fts``) holds the phrase ``words``, by track id, at most ``limit``.

        Raises:
            sqlite3.OperationalError: no ``tracks_fts`` (an index from before migration 5
                opened read-only).
        """
        unknown = set(fields) - set(NAME_FIELDS)
        if unknown:
            raise ValueError(f"the name fields are {NAME_FIELDS}, not {sorted(unknown)}")
        match = "{" + " ".join(fields) + "} : " + '"' + " ".join(w.replace('"', '""') for w in words) + '"'
        sql = f"select rowid, {', '.join(fields)} from tracks_fts where tracks_fts match ? order by rowid limit ?"
        return self.conn.execute(sql, [match, int(limit)]).fetchall()
