"""Tests of musicsearch/store/selection.py and text_columns.py: the store selects exactly the
rows each filter matches (in SQLite, and in numpy over the filter columns for year and
duration bounds, text substrings, exclusions and track ids: the same ids on generated data
with mixed case, unicode and NULLs), and the columns and their numpy mask, read once per
generation. (How filters
parse: tests/test_filters.py.)"""

from dataclasses import replace

import numpy as np
import pytest

from musicsearch.filters import Filters
from musicsearch.store import FilterColumns, Store


def test_the_mask_runs_numeric_bounds_only_and_unknown_passes_none():
    columns = FilterColumns(0, np.array([np.nan, 1990, 2000, np.nan]), np.array([np.nan, 60.0, np.nan, 200.0]))
    assert columns.mask(Filters(year="1990-", genre="jazz")) is None  # the genre column is not read in
    assert columns.mask(Filters(year="1990-", path="*.mp3")) is None  # a glob: SQLite's job
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
    mask = None if filters is None else store.filter_mask(filters)
    columnar = filters is not None and filters.active and not (filters.path or filters.tags or filters.exclude_paths)
    assert (mask is not None) == columnar  # only a path glob or tags stay in SQLite
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


def test_text_columns_are_read_on_first_use_once_per_generation(db):
    assert db.filter_mask(Filters(year="1990-")) is not None and not db.filter_columns().texts
    assert np.flatnonzero(db.filter_mask(Filters(genre="jazz"))).tolist() == [1, 2]
    columns = db.filter_columns()
    assert set(columns.texts) == {"genre"} and columns.texts["genre"].values[0] == ""
    db.filter_mask(Filters(exclude_artists="x"))
    assert set(columns.texts) == {"genre", "artist", "albumartist"} and db.filter_columns() is columns
    with db.write():
        db.conn.execute("update tracks set genre = 'Rock' where id = 1")
    assert db.filter_columns() is not columns  # a new generation: read again
    assert np.flatnonzero(db.filter_mask(Filters(genre="ROCK"))).tolist() == [1, 3]


VALUES = [
    "Jazz",
    "jazz fusion",
    "JAZZ",
    "Äther",
    "äther",
    "Straße",
    "STRASSE",
    "İstanbul",
    "istanbul",
    "Ünïcode ü",
    "x",
    "",
    " ",
    "Rock & Roll",
    "rock",
    "Drum'n'Bass",
    "50% off",
    "a_b",
    "日本の音楽",
    "Ελληνικά",
    "ελληνικά",
    None,
]
NEEDLES = [
    "jazz",
    "JAZZ",
    "Jaz",
    "äther",
    "ÄTHER",
    "Äther",
    "ther",
    "straße",
    "STRASSE",
    "ss",
    "ß",
    "i",
    "İ",
    "ı",
    "istan",
    "ü",
    "Ü",
    "x",
    " x",
    "rock",
    "&",
    "'",
    "%",
    "_",
    "音",
    "ΕΛΛ",
    "ελλ",
    "nothing here",
    "z",
]


def test_the_numpy_path_gives_the_sql_ids_on_generated_data(tmp_path):
    rng = np.random.default_rng(7)
    store = Store(tmp_path / "gen", create=True)
    rows = []
    for i in range(1, 401):
        if i % 37 == 0:  # gaps in the ids: deleted tracks
            continue
        pick = [VALUES[j] for j in rng.integers(0, len(VALUES), 4)]
        year = None if i % 11 == 0 else int(rng.integers(1960, 2020))
        duration = None if i % 13 == 0 else float(rng.integers(30, 600))
        rows.append((i, f"/m/{i}.flac", *pick, year, duration))
    with store.write():
        store.conn.executemany(
            "insert into tracks (id, path, artist, albumartist, album, genre, year, duration, size, mtime_ns, hash,"
            " title, vector) values (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 'h', 't', x'00')",
            rows,
        )
    cases = [Filters(**{name: n}) for name in ("genre", "artist", "album") for n in NEEDLES]
    cases += [Filters(exclude_artists=n) for n in NEEDLES] + [Filters(exclude_genres=n) for n in NEEDLES]
    for _ in range(150):  # combinations, with year and duration bounds and track ids
        a, b, c = (NEEDLES[j] for j in rng.integers(0, len(NEEDLES), 3))
        lo = int(rng.integers(1960, 2020))
        cases.append(
            Filters(
                genre=a if rng.random() < 0.5 else None,
                artist=b if rng.random() < 0.5 else None,
                album=c if rng.random() < 0.3 else None,
                year=(lo, lo + 15) if rng.random() < 0.5 else None,
                max_duration=300 if rng.random() < 0.3 else None,
                exclude_artists=(c,) if rng.random() < 0.3 else (),
                exclude_genres=(b, a) if rng.random() < 0.3 else (),
                track_ids=tuple(int(t) for t in rng.integers(-5, 420, 60)) if rng.random() < 0.2 else None,
            )
        )
    matched = 0
    for filters in cases:
        mask = store.filter_mask(filters)
        assert (mask is not None) == filters.active, filters
        if mask is None:  # nothing to filter: every track, as SQL
            mask = store.filter_columns().texts["genre"].present()
        sql = sorted(store.filtered_ids(filters).tolist())
        assert np.flatnonzero(mask).tolist() == sql, filters
        matched += bool(sql)
    assert matched > len(cases) // 3  # the cases select something, not only nothing
    store.close()
