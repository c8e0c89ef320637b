"""Tests of musicsearch/store/selection.py: the store selects exactly the rows each filter
matches (in SQLite, and in numpy over the filter columns for year and duration bounds), and
the year and duration columns and their numpy mask, read once per generation. (How filters
parse: tests/test_filters.py.)"""

from dataclasses import replace

import numpy as np
import pytest

from musicsearch.filters import Filters
from musicsearch.store import FilterColumns, Store


def test_the_mask_runs_numeric_bounds_only_and_unknown_passes_none():
    columns = FilterColumns(0, np.array([np.nan, 1990, 2000, np.nan]), np.array([np.nan, 60.0, np.nan, 200.0]))
    assert columns.mask(Filters(year="1990-", genre="jazz")) is None  # a text filter: SQLite's job
    assert np.flatnonzero(columns.mask(Filters(year="1995-2005"))).tolist() == [2]
    assert np.flatnonzero(columns.mask(Filters(min_duration=30))).tolist() == [1, 3]
    assert np.flatnonzero(columns.mask(Filters(max_duration=100, year=(1900, 2100)))).tolist() == [1]
    assert columns.mask(Filters()) is None  # no bound at all: nothing for numpy to do


def test_columns_are_read_once_per_generation(store, rec):
    with store.write():
        a = store.put_track(replace(rec("/a.wav", [[1, 0]]), tags={"title": "a", "year": 1999}), "now")
    first = store.filter_columns()
    assert first is not None and first.generation == store.generation
    assert first.year[a] == 1999 and first.duration[a] == 10.0 and np.isnan(first.year[0])
    assert store.filter_columns() is first  # the same generation: not read again
    with store.write():
        b = store.put_track(replace(rec("/b.wav", [[0, 1]]), tags={"title": "b", "year": 2001}), "now")
    second = store.filter_columns()
    assert second is not first and second.year[b] == 2001


def test_filtered_ids_among_and_count_capped(store, rec):
    with store.write():
        ids = [
            store.put_track(replace(rec(f"/{y}.wav", [[1, 0]]), tags={"title": "t", "year": y}), "now")
            for y in (1990, 1995, 2000)
        ]
    assert store.filtered_ids(None).tolist() == ids
    assert store.filtered_ids(Filters(year="1991-")).tolist() == ids[1:]
    assert store.filtered_ids(Filters(year="1991-"), among=[ids[2], ids[0], 99]).tolist() == [ids[2]]
    assert store.count_filtered(Filters(year="-1999"), 100) == 2 and store.count_filtered(None, 2) == 2


# -- the store's selection on a real index ----------------------------------

ROWS = [
    # id, path, artist, albumartist, album, genre, year, duration
    (1, "/m/Jazz/a.flac", "Ann Lee", None, "Blue Nights", "Jazz", 1995, 180.0),
    (2, "/m/Jazz/b.flac", "Bob", "Ann Lee", "Blue Nights", "jazz", 1999, 240.5),
    (3, "/m/Rock/c.mp3", "Cat", None, "Loud", "Rock", 2008, 179.9),
    (4, "/m/Rock/d.mp3", "Dan", None, None, None, None, 3723.0),
    (5, "/m/Classical/e.ogg", "ANN", None, "Piano Works", "Classical", 1990, 95.0),
]
TAGS = [(1, "piano"), (1, "calm"), (2, "calm"), (5, "Piano")]


@pytest.fixture
def db(tmp_path):
    store = Store(tmp_path / "idx", create=True)
    with store.write():
        store.conn.executemany(
            "insert into tracks (id, path, artist, albumartist, album, genre, year, duration, size, mtime_ns, hash,"
            " title, vector) values (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 'h', 't', x'00')",
            ROWS,
        )
        store.conn.executemany("insert into track_tags values (?, 'v', ?, 1.0)", TAGS)
    yield store
    store.close()


def matching(store, filters):
    ids = store.filtered_ids(filters).tolist()
    assert sorted(store.filtered_ids(filters, among=[5, 4, 3, 2, 1, 99]).tolist()) == sorted(ids)
    assert store.count_filtered(filters, 100) == len(ids) and store.count_filtered(filters, 1) == min(len(ids), 1)
    columns = store.filter_columns()
    mask = None if columns is None or filters is None else columns.mask(filters)
    assert (mask is not None) == (filters is not None and filters.numeric_only)
    if mask is not None:  # the numpy path agrees with SQLite
        assert np.flatnonzero(mask).tolist() == sorted(ids)
    return sorted(ids)


@pytest.mark.parametrize(
    ("filters", "ids"),
    [
        (Filters(), [1, 2, 3, 4, 5]),
        (Filters(artist="ann"), [1, 2, 5]),  # albumartist counts, any case
        (Filters(album="blue"), [1, 2]),
        (Filters(genre="JAZZ"), [1, 2]),
        (Filters(year=2008), [3]),
        (Filters(year="2008"), [3]),
        (Filters(year="1990-1999"), [1, 2, 5]),
        (Filters(year="1996-"), [2, 3]),
        (Filters(year="-1995"), [1, 5]),
        (Filters(year=(1995, 1999)), [1, 2]),
        (Filters(min_duration="3:00"), [1, 2, 4]),
        (Filters(min_duration=180), [1, 2, 4]),
        (Filters(max_duration="3:00"), [1, 3, 5]),
        (Filters(max_duration="1:35"), [5]),
        (Filters(min_duration="1:02:03"), [4]),
        (Filters(min_duration="179.9", max_duration="4:00.5"), [1, 2, 3]),
        (Filters(path="*/Rock/*"), [3, 4]),
        (Filters(path="*.flac"), [1, 2]),
        (Filters(tags="piano"), [1, 5]),
        (Filters(tags=("piano", "calm")), [1]),
        (Filters(artist="ann", year="1990-1996", max_duration=100), [5]),
        (Filters(artist="nobody"), []),
        (Filters(exclude_artists="ann"), [3, 4]),  # albumartist counts, any case
        (Filters(exclude_artists=("ann", "cat")), [4]),
        (Filters(exclude_genres="JAZZ"), [3, 4, 5]),  # no genre: not excluded
        (Filters(exclude_paths=("*/Rock/*", "*.ogg")), [1, 2]),
        (Filters(genre="jazz", exclude_artists="bob"), [1]),
        (Filters(track_ids=(2, 3, 4)), [2, 3, 4]),
        (Filters(track_ids=(2, 3, 4), year="1995-"), [2, 3]),
        (Filters(track_ids=()), []),
        (Filters(track_ids=(2, 3)).restricted_to([3, 4]), [3]),
    ],
)
def test_the_store_selects_exactly_the_matching_rows(db, filters, ids):
    assert matching(db, filters) == ids


def test_parsed_strings_equal_values_and_select_the_same(db):
    parsed, values = Filters(year="1990-1999", min_duration="3:00"), Filters(year=(1990, 1999), min_duration=180.0)
    assert parsed == values and matching(db, parsed) == matching(db, values) == [1, 2]
    assert not Filters().active and matching(db, Filters()) == matching(db, None) == [1, 2, 3, 4, 5]
    assert Filters(track_ids=()).active and not Filters(track_ids=()).numeric_only


def test_windows_of_the_matching_tracks(db):
    with db.write():
        db.conn.executemany(
            "insert into windows (id, track_id, idx, start, [end], vector) values (?, ?, 0, 0, 10, x'00')",
            [(10, 1), (11, 1), (12, 3), (13, 5)],
        )
    assert sorted(db.filtered_ids(Filters(genre="jazz"), windows=True).tolist()) == [10, 11]
    assert db.filtered_ids(None, among=[3, 5], windows=True).tolist() == [12, 13]
