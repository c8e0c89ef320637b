"""Index files on disk (musicsearch/vectors/disk.py): an atomic write leaves the old file or the
new one, never a temp file or half a file."""

import faiss
import numpy as np
import pytest

from musicsearch.vectors import build


def test_atomic_save_leaves_no_temp_files(tmp_path, small, monkeypatch):
    target = tmp_path / "tracks-g1.faiss"
    small.save(target)
    assert [p.name for p in tmp_path.iterdir()] == ["tracks-g1.faiss"]
    before = target.read_bytes()

    def broken(index, path):  # a write that dies half way
        with open(path, "wb") as f:
            f.write(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(faiss, "write_index", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        build(np.array([10], np.int64), np.array([[1, 0, 0]], np.float32), 3).save(target)
    assert [p.name for p in tmp_path.iterdir()] == ["tracks-g1.faiss"]
    assert target.read_bytes() == before
