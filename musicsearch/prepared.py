"""A model prepared for this machine, once per model and shared by every index: the ONNX
graphs of its towers (exported from the model and checked against torch) and the facts that
queries need without loading torch (vector size, logit scale, pad token, how each graph
was checked).

The folder is ``$MUSICSEARCH_CACHE/prepared/<model>-<key>`` (default cache: the user cache
folder from platformdirs, e.g. ``~/.cache/musicsearch``). The key hashes the model id, its
revision and, for a local folder, the names, sizes and mtimes of its files, so a changed
folder is prepared again. Every file lands by an atomic rename and ``facts.json`` is updated
under a file lock, so two processes preparing the same model at once both end up with a
complete, correct folder; temp folders left by a killed export are removed on the next open.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CACHE_ENV = "MUSICSEARCH_CACHE"
FACTS_FILE = "facts.json"
TMP_PREFIX = "tmp-"
STALE_TMP_SECONDS = 3600.0


def cache_root() -> Path:
    """``$MUSICSEARCH_CACHE``, else the user cache folder for musicsearch."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("musicsearch"))


def _fingerprint(model_id: str) -> str:
    folder = Path(model_id)
    if not folder.is_dir():
        return ""
    parts = []
    for p in sorted(folder.iterdir()):
        if p.is_file():
            st = p.stat()
            parts.append(f"{p.name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def model_key(model_id: str, revision: str | None) -> str:
    """A folder name for a model: readable prefix plus a hash of its identity."""
    digest = hashlib.sha256(f"{model_id}\n{revision or ''}\n{_fingerprint(model_id)}".encode()).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model_id).name if Path(model_id).is_dir() else model_id)
    return f"{name[-40:]}-{digest}"


class PreparedModel:
    """The prepared-model folder of one model (created on first write)."""

    def __init__(self, model_id: str, revision: str | None, root: Path | None = None):
        self.model_id = model_id
        self.revision = revision
        self.folder = (root or cache_root()) / "prepared" / model_key(model_id, revision)

    def path(self, name: str) -> Path:
        return self.folder / name

    def has(self, *names: str) -> bool:
        return all((self.folder / n).is_file() for n in names)

    def facts(self) -> dict[str, Any]:
        try:
            data = json.loads((self.folder / FACTS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def ensure(self) -> Path:
        """Create the folder and remove temp folders that a killed export left behind."""
        self.folder.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for p in self.folder.glob(TMP_PREFIX + "*"):
            try:
                if now - p.stat().st_mtime > STALE_TMP_SECONDS:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass
        return self.folder

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A temp folder inside the prepared folder (same file system, so its files can be
        renamed into place atomically); removed afterwards whatever happens."""
        self.ensure()
        tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=self.folder))
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def install(self, staged: Path, *names: str) -> None:
        """Move files from a staging folder into place, each by one atomic rename."""
        for name in names:
            os.replace(staged / name, self.folder / name)

    def save_array(self, name: str, array: np.ndarray) -> None:
        """Write ``array`` as ``name`` (.npy), atomically."""
        with self.staging() as tmp:
            np.save(tmp / name, np.asarray(array), allow_pickle=False)
            self.install(tmp, name)

    def load_array(self, name: str) -> np.ndarray | None:
        """An array saved by ``save_array``, or None when it is missing or unreadable."""
        try:
            return np.asarray(np.load(self.folder / name, allow_pickle=False))
        except (OSError, ValueError):
            return None

    def remove(self, *names: str) -> None:
        for name in names:
            (self.folder / name).unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.ensure()
        with open(self.folder / ".lock", "a+") as f:
            try:
                import fcntl

                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            except ImportError:  # no fcntl (Windows): the rename below is still atomic
                pass
            yield

    def record(self, **facts: Any) -> None:
        """Merge ``facts`` into facts.json (under a lock; written atomically)."""
        with self._locked():
            data = self.facts()
            data.update(facts, model=self.model_id, revision=self.revision)
            fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=".json", dir=self.folder)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2, sort_keys=True)
            os.replace(tmp, self.folder / FACTS_FILE)
