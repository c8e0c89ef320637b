"""musicsearch for beets: search the library by describing the music.

Enable with ``plugins: musicsearch`` in beets' config::

    musicsearch:
        index: null          # a folder or an index name; default: musicsearch's default index
        model: null          # default: the index's model, or laion/larger_clap_general
        device: auto
        max_windows: null    # default: 6 per track on a CPU, whole tracks on a GPU
        workers: null        # decode worker processes (default: the cores available)
        auto: no             # index imported, moved and removed items as beets goes
        write_tags: yes      # store the top labels as ms_genre, ms_mood, ms_instrument,
                             # and tempo and key as ms_bpm (a number) and ms_key ("A minor")

Commands: ``beet musicsearch "warm synth pads" [QUERY]`` prints the library items that best
match the text (only items matching the beets QUERY; ``-f`` formats as in ``beet ls``, with
``$ms_score`` available), ``beet musicsearch-index [QUERY]`` indexes the items' folders."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from beets import ui
from beets.dbcore import types
from beets.plugins import BeetsPlugin

if TYPE_CHECKING:  # musicsearch (numpy, FAISS...) is imported when a command runs, not by every beet
    from musicsearch.api import MusicIndex
    from musicsearch.config import Settings
    from musicsearch.hits import Hit
    from musicsearch.search.request import SearchRequest

VOCABS = ("genre", "mood", "instrument")


def musical_attributes(track: Any) -> dict[str, Any]:
    """A track's tempo and key as flexible attributes (``ms_bpm`` to one decimal, ``ms_key``
    as "A minor"), those it has."""
    out: dict[str, Any] = {}
    if track.bpm is not None:
        out["ms_bpm"] = round(float(track.bpm), 1)
    if track.key is not None:
        out["ms_key"] = track.key
    return out


def user_error(exc: Exception) -> ui.UserError:
    """A musicsearch error as beets shows it; a model missing offline names beets' ``model:`` key."""
    from musicsearch.loading import ModelUnavailable

    text = (
        exc.way_out("set 'model: {folder}' under 'musicsearch:' in beets' config")
        if isinstance(exc, ModelUnavailable)
        else str(exc)
    )
    return ui.UserError(f"musicsearch: {text}")


def item_path(item: Any) -> str:
    """An item's absolute path as text (beets keeps paths as bytes)."""
    p = item.path
    return os.path.abspath(os.fsdecode(p) if isinstance(p, bytes) else str(p))


def glob_escape(text: str) -> str:
    """``text`` matched literally by SQLite's GLOB."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def existing_folder(path: str) -> str:
    """The folder of ``path`` (a file, maybe gone), raised to the nearest one that exists."""
    folder = os.path.dirname(path)
    while folder and not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    return folder


def covering_folders(folders: Iterable[str]) -> list[str]:
    """The folders not inside another one of them, sorted."""
    out: list[str] = []
    for f in sorted(set(folders)):
        if not any(f == o or f.startswith(o.rstrip(os.sep) + os.sep) for o in out):
            out.append(f)
    return out


def best_labels(tags: Sequence[tuple[str, str, float]]) -> dict[str, str]:
    """vocabulary -> its best label, from (vocab, label, score) rows."""
    best: dict[str, tuple[str, float]] = {}
    for vocab, label, score in tags:
        if vocab in VOCABS and (vocab not in best or score > best[vocab][1]):
            best[vocab] = (label, score)
    return {v: label for v, (label, _) in best.items()}


def restricted_search(idx: MusicIndex, request: SearchRequest, allowed: set[str]) -> list[Hit]:
    """The ``request.k`` best hits whose path is in ``allowed``: searches a prefix of the
    ranking (inside the allowed paths' common folder) and widens it until k allowed hits come
    or the whole index was ranked."""
    total = idx.info().tracks
    if not allowed or total == 0:
        return []
    k = request.k
    common = os.path.commonpath(list(allowed)) if len(allowed) > 1 else os.path.dirname(next(iter(allowed)))
    if common != os.sep:
        inside = glob_escape(common.rstrip(os.sep)) + os.sep + "*"
        request = replace(request, filters=replace(request.filters, path=inside))
    n = min(total, max(4 * k, 50))
    while True:
        hits = idx.search(replace(request, k=n))
        kept = [h for h in hits if h.track.path in allowed]
        if len(kept) >= k or n >= total or len(hits) < n:
            return kept[:k]
        n = min(total, n * 4)


class MusicSearchPlugin(BeetsPlugin):
    """``beet musicsearch`` and ``beet musicsearch-index``; with ``auto: yes``, imported,
    moved and removed items reach the index when the beets command ends."""

    item_types: ClassVar[dict[str, Any]] = {"ms_bpm": types.FLOAT}  # so that 'ms_bpm:120..128' is a numeric range

    def __init__(self, name: str = "musicsearch"):
        super().__init__(name)
        self.config.add(
            {
                "index": None,
                "model": None,
                "device": "auto",
                "max_windows": None,
                "workers": None,
                "auto": False,
                "write_tags": True,
            }
        )
        self._touched: dict[str, Any] = {}  # path -> item, or None for a removed item
        self._moves: list[tuple[str, str]] = []
        if self.config["auto"].get(bool):
            self.register_listener("item_imported", self._imported)
            self.register_listener("album_imported", self._album_imported)
            self.register_listener("item_removed", self._removed)
            self.register_listener("item_moved", self._moved)
            self.register_listener("cli_exit", self._flush)

    # set-up --------------------------------------------------------------------

    def settings(self) -> Settings:
        from musicsearch.config import Settings, index_path

        index = self.config["index"].get()
        max_windows = self.config["max_windows"].get()
        workers = self.config["workers"].get()
        return Settings.from_env(
            workers=int(workers) if workers else None,
            index_dir=index_path(str(index)) if index else None,
            model=self.config["model"].get() or None,
            device=str(self.config["device"].get() or "auto"),
            max_windows=int(max_windows) if max_windows else None,
        )

    def open(self) -> MusicIndex:
        from musicsearch.api import MusicIndex

        return MusicIndex(settings=self.settings())

    def commands(self) -> list[ui.Subcommand]:
        search = ui.Subcommand("musicsearch", help="find library items by describing their sound")
        search.parser.usage += ' "TEXT" [QUERY]'
        search.parser.add_option("-k", "--top", dest="k", type="int", default=10, help="number of results")
        search.parser.add_option(
            "-n", "--not", dest="negative", action="append", default=[], help="steer away from this prompt"
        )
        search.parser.add_option("--by", dest="by", default="track", help="rank by 'track' or best 'window'")
        search.parser.add_option("--min-score", dest="min_score", type="float", help="drop weaker hits")
        search.parser.add_format_option(target="item")
        search.func = self._search_command
        index = ui.Subcommand("musicsearch-index", help="index the audio of library items for musicsearch")
        index.parser.usage += " [QUERY]"
        index.func = self._index_command
        return [search, index]

    # commands ------------------------------------------------------------------

    def _search_command(self, lib: Any, opts: Any, args: list[str]) -> None:
        from musicsearch.errors import MusicSearchError
        from musicsearch.search.request import parse_request

        if not args:
            raise ui.UserError('usage: beet musicsearch "TEXT" [QUERY]')
        text, query = args[0], args[1:]
        items = {item_path(i): i for i in lib.items(query)}
        try:
            fields = {"q": [text], "k": opts.k, "not": opts.negative, "by": opts.by, "min_score": opts.min_score}
            request = parse_request(fields)
            with self.open() as idx:
                hits = restricted_search(idx, request, set(items))
        except MusicSearchError as exc:
            raise user_error(exc) from exc
        for h in hits:
            item = items[h.track.path]
            item["ms_score"] = f"{h.score:.3f}"  # for -f '$ms_score'; never stored
            ui.print_(format(item))

    def _index_command(self, lib: Any, opts: Any, args: list[str]) -> None:
        items = list(lib.items(args))
        if not items:
            ui.print_("No items match.")
            return
        folders = covering_folders(existing_folder(item_path(i)) for i in items)
        self._index(lib, folders, items, verbose=True)

    # the work --------------------------------------------------------------------

    def _index(self, lib: Any, folders: Sequence[str], items: Sequence[Any], verbose: bool = False) -> None:
        from musicsearch.errors import MusicSearchError

        try:
            with self.open() as idx:
                for folder in folders:
                    report = idx.index(folder)
                    line = (
                        f"musicsearch: {folder}: {len(report.added)} added, {len(report.updated)} updated, "
                        f"{len(report.moved)} moved, {len(report.removed)} removed, {len(report.failed)} failed"
                    )
                    if verbose:
                        ui.print_(line)
                    else:
                        self._log.info("{}", line)
                    for path, reason in report.failed:
                        self._log.warning("musicsearch could not index {}: {}", path, reason)
                if items and self.config["write_tags"].get(bool):
                    self._write_tags(lib, idx, folders, items)
        except MusicSearchError as exc:
            raise user_error(exc) from exc

    def _write_tags(self, lib: Any, idx: MusicIndex, folders: Sequence[str], items: Sequence[Any]) -> None:
        """Tag untagged tracks, then store each item's best labels, tempo and key as flexible
        attributes."""
        idx.tag()
        tracks = {}
        for folder in folders:
            tracks.update(idx.tracks_under(folder))
        with lib.transaction():
            for item in items:
                track = tracks.get(item_path(item))
                found = idx.track(track.id) if track is not None else None
                if found is None:
                    continue
                labels = best_labels(found[1])
                changed = False
                wanted = {f"ms_{vocab}": labels[vocab] for vocab in VOCABS if vocab in labels}
                for name, value in (wanted | musical_attributes(track)).items():
                    if item.get(name) != value:
                        item[name] = value
                        changed = True
                if changed:
                    item.store()

    # events (auto: yes) ------------------------------------------------------------

    def _imported(self, lib: Any, item: Any) -> None:
        self._touched[item_path(item)] = item

    def _album_imported(self, lib: Any, album: Any) -> None:
        for item in album.items():
            self._touched[item_path(item)] = item

    def _removed(self, item: Any) -> None:
        self._touched[item_path(item)] = None

    def _moved(self, item: Any, source: bytes, destination: bytes) -> None:
        self._moves.append((os.path.abspath(os.fsdecode(source)), os.path.abspath(os.fsdecode(destination))))

    def _flush(self, lib: Any) -> None:
        """At the end of the beets command: moves are recorded as moves (nothing embedded),
        then one index run per folder touched (imports, removals, moves not followed), then
        the new items' labels."""
        from musicsearch.errors import MusicSearchError

        if not self._touched and not self._moves:
            return
        moves, touched = self._moves, self._touched
        self._touched, self._moves = {}, []
        try:
            with self.open() as idx:
                followed = set(idx.follow_moves(moves)) if moves else set()
        except MusicSearchError as exc:
            raise user_error(exc) from exc
        if followed:
            self._log.info("musicsearch followed {} moved files", len(followed))
        folders = [existing_folder(p) for p in touched]
        for move in moves:
            if move not in followed:
                folders += [existing_folder(move[0]), existing_folder(move[1])]
        items = [i for i in touched.values() if i is not None]
        self._index(lib, covering_folders(f for f in folders if f), items)
