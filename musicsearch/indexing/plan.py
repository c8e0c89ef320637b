"""What a run must do, from the walk and the store: new, changed, touched, moved and removed
files; the writes that need no decoding (moves, new mtimes, removals, failures of unreadable
folders); followed moves; and the lock that keeps one run per index folder."""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import StorageError
from ..events import IndexReport
from ..library import AudioFile, content_hash
from ..store import Store, utc_now


@dataclass
class Plan:
    """What a run must do, from the walk and the store."""

    to_embed: list[AudioFile]
    hashes: dict[str, str]  # hashes already computed while looking for moves
    updates: set[str]
    moves: list[tuple[int, str, AudioFile]]  # (track id, old path, new file)
    touched: list[tuple[int, AudioFile]]  # new mtime, same content: only the identity is updated
    removed: dict[str, int]  # path -> track id
    stale_failures: list[str]
    unchanged: int
    skipped_failed: int
    unreadable: dict[str, str] = field(default_factory=dict)  # path -> reason, from the walk


def plan_run(
    store: Store,
    root: Path,
    files: Sequence[AudioFile],
    retry_failed: bool = False,
    unreadable: dict[str, str] | None = None,
) -> Plan:
    """Compare the files below ``root`` with what the store holds for ``root``.

    Unchanged (same size and mtime) files are skipped; a file with a new mtime but the same
    content hash only gets its mtime updated; changed ones are re-embedded; a new path
    whose content hash equals that of a vanished track is a move; vanished tracks that were
    not moved are removed. A recorded failure is retried only when its file changed or
    ``retry_failed`` is set. ``unreadable`` (path -> reason, from the walk) become
    failures, and known tracks below an unreadable folder are kept, not removed.
    """
    known = store.known_files(root)
    failures = store.known_failures(root)
    on_disk = {str(f.path) for f in files}
    to_embed: list[AudioFile] = []
    new: list[AudioFile] = []
    updates: set[str] = set()
    touched: list[tuple[int, AudioFile]] = []
    hashes: dict[str, str] = {}
    unchanged = skipped = 0
    for f in files:
        p = str(f.path)
        k = known.get(p)
        if k is not None and (k[1], k[2]) == (f.size, f.mtime_ns):
            unchanged += 1
        elif k is None and p in failures and failures[p][:2] == (f.size, f.mtime_ns) and not retry_failed:
            skipped += 1
        elif k is not None:
            if k[1] == f.size:
                h = hashes[p] = content_hash(f.path)
                if h == k[3]:
                    touched.append((k[0], f))
                    unchanged += 1
                    continue
            updates.add(p)
            to_embed.append(f)
        else:
            new.append(f)

    blocked = unreadable or {}
    prefixes = tuple(p.rstrip(os.sep) + os.sep for p in blocked)
    missing = {p: k for p, k in known.items() if p not in on_disk and p not in blocked and not p.startswith(prefixes)}
    by_size: dict[int, list[str]] = defaultdict(list)
    for p, k in missing.items():
        by_size[k[1]].append(p)
    moves: list[tuple[int, str, AudioFile]] = []
    for f in new:
        candidates = by_size.get(f.size)
        if candidates:
            h = hashes[str(f.path)] = content_hash(f.path)
            old = next((p for p in candidates if missing[p][3] == h), None)
            if old is not None:
                candidates.remove(old)
                moves.append((missing.pop(old)[0], old, f))
                continue
        to_embed.append(f)
    return Plan(
        to_embed=to_embed,
        hashes=hashes,
        updates=updates,
        moves=moves,
        touched=touched,
        removed={p: k[0] for p, k in missing.items()},
        stale_failures=[p for p in failures if p not in on_disk and p not in blocked],
        unreadable=dict(blocked),
        unchanged=unchanged,
        skipped_failed=skipped,
    )


def apply_plan(store: Store, plan: Plan) -> list[tuple[str, str]]:
    """Write what needs no decoding (moves, new mtimes, removals, stale failures) in one
    transaction; returns the moves as (old path, new path)."""
    moved: list[tuple[str, str]] = []
    if plan.moves or plan.touched or plan.removed or plan.stale_failures or plan.unreadable:
        now = utc_now()
        with store.write():
            for path, reason in plan.unreadable.items():
                store.put_failure(path, 0, 0, reason, now)
            for track_id, f in plan.touched:
                store.move_track(track_id, str(f.path), f.size, f.mtime_ns)
            for track_id, old, f in plan.moves:
                store.move_track(track_id, str(f.path), f.size, f.mtime_ns)
                moved.append((old, str(f.path)))
            store.remove_tracks(plan.removed.values())
            store.remove_failures(plan.stale_failures)
    return moved


def start_run(
    store: Store,
    root: Path,
    files: Sequence[AudioFile],
    retry_failed: bool = False,
    unreadable: dict[str, str] | None = None,
) -> tuple[Plan, IndexReport]:
    """What every index run (local or on a cluster) does before embedding: plan against the
    store, apply moves and removals, and start the report."""
    plan = plan_run(store, root, files, retry_failed, unreadable)
    report = IndexReport(str(root), unchanged=plan.unchanged, skipped_failed=plan.skipped_failed)
    report.failed = sorted(plan.unreadable.items())
    report.moved = apply_plan(store, plan)
    report.removed = sorted(plan.removed)
    return plan, report


@contextlib.contextmanager
def run_lock(index_dir: Path) -> Iterator[None]:
    """One index run per index folder at a time: a second one is refused in one line."""
    try:
        import fcntl
    except ImportError:  # no fcntl (Windows): SQLite's own locking still keeps the index whole
        yield
        return
    with open(index_dir / ".index-run.lock", "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise StorageError(
                f"another index run ({holder}) is updating {index_dir.absolute()}; wait for it to finish"
            ) from None
        f.truncate(0)
        f.write(f"pid {os.getpid()}")
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)


def follow_moves(
    store: Store, index_dir: Path, moves: Iterable[tuple[Path | str, Path | str]]
) -> list[tuple[str, str]]:
    """``MusicIndex.follow_moves``: a pair (old, new) is followed when its old path is indexed,
    its new path is not, and the new file has the track's size and content hash; nothing is
    decoded or embedded. Returns the pairs followed, as absolute paths."""
    found: list[tuple[int, str, str, os.stat_result]] = []
    with run_lock(index_dir):
        for a, b in moves:
            old, new = str(Path(a).expanduser().absolute()), str(Path(b).expanduser().absolute())
            known = store.known_files(Path(old)).get(old)
            if known is None or store.known_files(Path(new)).get(new) is not None:
                continue
            try:
                st = os.stat(new)
                if st.st_size == known[1] and content_hash(new) == known[3]:
                    found.append((known[0], old, new, st))
            except OSError:
                continue
        if found:
            with store.write():
                for track_id, _, new, st in found:
                    store.move_track(track_id, new, st.st_size, st.st_mtime_ns)
    return [(old, new) for _, old, new, _ in found]
