"""Playlists: the users' own (``subsonic-playlists.json`` in the index folder, beside the saved
searches' ``playlists.json``), and the saved searches (``musicsearch playlist save``) shown as
read-only playlists whose songs are the search run again whenever the index has changed, so
they follow every index run as their M3U8 files do."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..errors import MusicSearchError
from ..hits import Hit
from ..saved import SavedSearch, SavedSearches
from ..store import utc_now
from .catalog import Catalog, Song, name_id
from .responses import GENERIC, NOT_AUTHORIZED, NOT_FOUND, SubsonicError
from .state import Call, Handler

FILE_NAME = "subsonic-playlists.json"
FORMAT = 1
MAX_PLAYLISTS = 1000
MAX_SONGS = 5000
MAX_NAME = 200

_lock = threading.Lock()


@dataclass(frozen=True)
class Playlist:
    id: str
    name: str
    owner: str
    songs: tuple[int, ...] = ()
    comment: str = ""
    public: bool = False
    created: str = field(default_factory=utc_now)
    changed: str = field(default_factory=utc_now)


class PlaylistFile:
    """The users' playlists of one index folder."""

    def __init__(self, index_dir: Path) -> None:
        self.path = Path(index_dir) / FILE_NAME

    def load(self) -> dict[str, Playlist]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {
                str(p["id"]): Playlist(**{**p, "songs": tuple(int(i) for i in p.get("songs", ()))})
                for p in data.get("playlists", [])
            }
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SubsonicError(GENERIC, f"{FILE_NAME} in the index folder is damaged ({exc})") from None

    def write(self, playlists: dict[str, Playlist]) -> None:
        if not self.path.parent.is_dir():
            raise SubsonicError(GENERIC, "the index holds nothing yet; build it with: musicsearch index FOLDER")
        payload = {"format": FORMAT, "playlists": [{**asdict(p), "songs": list(p.songs)} for p in playlists.values()]}
        tmp = self.path.with_name(f".{FILE_NAME}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(payload, f, ensure_ascii=False, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def _saved(call: Call) -> dict[str, SavedSearch]:
    """The saved searches by their playlist id."""
    try:
        searches = SavedSearches(call.library.index.path).load()
    except MusicSearchError as exc:
        raise SubsonicError(GENERIC, str(exc)) from None
    return {name_id("ss", name): s for name, s in searches.items()}


def _saved_songs(call: Call, catalog: Catalog, search: SavedSearch) -> list[Song]:
    """The songs a saved search finds now (run again only after the index changed)."""
    key = (call.library.stamp, json.dumps(search.to_json(), sort_keys=True))
    if key not in call.library.saved:
        hits: list[Hit] = call.library.run(lambda idx: idx.search(search.to_request()), [])
        call.library.saved.clear()  # one state of the index at a time
        call.library.saved[key] = [h.track.id for h in hits]
    return [catalog.songs[i] for i in call.library.saved[key] if i in catalog.songs]


def _entry(p: Playlist, songs: list[Song], with_songs: bool) -> dict:
    out = {
        "id": p.id,
        "name": p.name,
        "comment": p.comment,
        "owner": p.owner,
        "public": p.public,
        "songCount": len(songs),
        "duration": int(round(sum(s.duration or 0 for s in songs))),
        "created": p.created,
        "changed": p.changed,
        "coverArt": songs[0].album_id if songs else None,
    }
    if with_songs:
        out["entry"] = [s.child() for s in songs]
    return {k: v for k, v in out.items() if v is not None}


def _as_playlist(call: Call, pid: str, search: SavedSearch) -> Playlist:
    return Playlist(pid, search.name, call.user, comment=f"saved search: {' + '.join(search.text)}")


def _visible(call: Call) -> dict[str, Playlist]:
    mine = PlaylistFile(call.library.index.path).load()
    return {i: p for i, p in mine.items() if p.owner == call.user or p.public}


def get_playlists(call: Call) -> dict:
    catalog = call.library.catalog()
    out = [_entry(p, [catalog.songs[i] for i in p.songs if i in catalog.songs], False) for p in _visible(call).values()]
    for pid, search in _saved(call).items():
        out.append(_entry(_as_playlist(call, pid, search), _saved_songs(call, catalog, search), False))
    return {"playlists": {"playlist": out}}


def _one(call: Call, pid: str, catalog: Catalog) -> tuple[Playlist, list[Song]]:
    saved = _saved(call)
    if pid in saved:
        return _as_playlist(call, pid, saved[pid]), _saved_songs(call, catalog, saved[pid])
    found = _visible(call).get(pid)
    if found is None:
        raise SubsonicError(NOT_FOUND, f"playlist not found: {pid[:40]}")
    return found, [catalog.songs[i] for i in found.songs if i in catalog.songs]


def get_playlist(call: Call) -> dict:
    catalog = call.library.catalog()
    playlist, songs = _one(call, call.params.required("id"), catalog)
    return {"playlist": _entry(playlist, songs, True)}


def _song_ids(catalog: Catalog, raw: list[str]) -> tuple[int, ...]:
    return tuple(catalog.song(r).id for r in raw)


def _owned(call: Call, playlists: dict[str, Playlist], pid: str) -> Playlist:
    if pid in _saved(call):
        raise SubsonicError(NOT_AUTHORIZED, "a saved search: change it with musicsearch playlist save")
    found = playlists.get(pid)
    if found is None or (found.owner != call.user and not found.public):
        raise SubsonicError(NOT_FOUND, f"playlist not found: {pid[:40]}")
    if found.owner != call.user:
        raise SubsonicError(NOT_AUTHORIZED, "only its owner may change a playlist")
    return found


def _name(raw: str) -> str:
    if len(raw) > MAX_NAME or not raw.strip():
        raise SubsonicError(GENERIC, f"a playlist name has 1 to {MAX_NAME} characters")
    return raw.strip()


def create_playlist(call: Call) -> dict:
    catalog = call.library.catalog()
    songs = _song_ids(catalog, call.params.all("songId"))
    if len(songs) > MAX_SONGS:
        raise SubsonicError(GENERIC, f"a playlist holds at most {MAX_SONGS} songs")
    store = PlaylistFile(call.library.index.path)
    with _lock:
        playlists = store.load()
        pid = call.params.text("playlistId")
        if pid:
            playlist = replace(_owned(call, playlists, pid), songs=songs, changed=utc_now())
        else:
            if len(playlists) >= MAX_PLAYLISTS:
                raise SubsonicError(GENERIC, f"at most {MAX_PLAYLISTS} playlists")
            number = 1 + max((int(i[3:]) for i in playlists if i[3:].isdigit()), default=0)
            playlist = Playlist(f"pl-{number}", _name(call.params.required("name")), call.user, songs)
        playlists[playlist.id] = playlist
        store.write(playlists)
    return {"playlist": _entry(playlist, [catalog.songs[i] for i in songs], True)}


def update_playlist(call: Call) -> dict:
    catalog = call.library.catalog()
    add = _song_ids(catalog, call.params.all("songIdToAdd"))
    remove = {_index(raw) for raw in call.params.all("songIndexToRemove")}
    store = PlaylistFile(call.library.index.path)
    with _lock:
        playlists = store.load()
        playlist = _owned(call, playlists, call.params.required("playlistId"))
        songs = tuple(s for i, s in enumerate(playlist.songs) if i not in remove) + add
        if len(songs) > MAX_SONGS:
            raise SubsonicError(GENERIC, f"a playlist holds at most {MAX_SONGS} songs")
        name = call.params.text("name")
        playlists[playlist.id] = replace(
            playlist,
            name=_name(name) if name is not None else playlist.name,
            comment=call.params.text("comment", playlist.comment) or "",
            public=call.params.flag("public", playlist.public),
            songs=songs,
            changed=utc_now(),
        )
        store.write(playlists)
    return {}


def _index(raw: str) -> int:
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise SubsonicError(GENERIC, f"songIndexToRemove must be a position, not {raw[:20]!r}")
    return int(text)


def delete_playlist(call: Call) -> dict:
    store = PlaylistFile(call.library.index.path)
    with _lock:
        playlists = store.load()
        playlist = _owned(call, playlists, call.params.required("id"))
        del playlists[playlist.id]
        store.write(playlists)
    return {}


HANDLERS: dict[str, Handler] = {
    "getPlaylists": get_playlists,
    "getPlaylist": get_playlist,
    "createPlaylist": create_playlist,
    "updatePlaylist": update_playlist,
    "deletePlaylist": delete_playlist,
}
