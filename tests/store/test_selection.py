"""Tests of musicsearch/store/selection.py: the year and duration columns and their numpy mask,
read once per generation. (The SQL of every filter is checked row by row in
tests/test_filters.py.)"""

from dataclasses import replace

import numpy as np

from musicsearch.filters import Filters
from musicsearch.store import FilterColumns


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
