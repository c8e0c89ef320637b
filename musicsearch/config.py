"""Explicit, frozen settings with every default in one place. Nothing here is global state:
a Settings value is built once (by the CLI or the caller) and passed down."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "laion/larger_clap_general"
DEFAULT_INDEX_NAME = "default"


def data_dir() -> Path:
    """The user data folder (platformdirs), e.g. ~/.local/share/musicsearch on Linux."""
    import platformdirs

    return Path(platformdirs.user_data_dir("musicsearch"))


def config_dir() -> Path:
    """The user config folder (platformdirs), e.g. ~/.config/musicsearch on Linux: the
    Subsonic users (musicsearch/subsonic/users.py) live there."""
    import platformdirs

    return Path(platformdirs.user_config_dir("musicsearch"))


def indexes_dir() -> Path:
    """Where named indexes live: ``--index jazz`` is ``indexes_dir() / "jazz"``."""
    return data_dir() / "indexes"


def legacy_index_dir() -> Path:
    """Where the one default index lived before indexes had names (data folder's ``index``)."""
    return data_dir() / "index"


def default_index_dir() -> Path:
    """One default index per user, wherever a command runs: the index named ``default``
    (``indexes/default`` under the user data folder), or the index at the older default place
    (``index`` there) when that one holds an index and the new one does not yet."""
    new, old = indexes_dir() / DEFAULT_INDEX_NAME, legacy_index_dir()
    if not new.exists() and (old / "musicsearch.db").exists():
        return old
    return new


def is_index_name(value: str) -> bool:
    """Whether ``value`` (as a user typed it) names an index rather than a folder: a bare name
    with no path separator, not starting with ``.`` or ``~``, and not an existing folder."""
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return (
        bool(value)
        and not any(sep in value for sep in seps)
        and not value.startswith((".", "~"))
        and not Path(value).is_dir()
    )


def index_path(value: str | Path) -> Path:
    """The index folder ``value`` stands for: a bare name (``jazz``, see ``is_index_name``) is
    the index of that name under ``indexes_dir()`` (``default`` is the default index); a string
    that looks like a path, or any ``Path``, is that folder (``~`` expanded)."""
    if isinstance(value, str) and is_index_name(value):
        return default_index_dir() if value == DEFAULT_INDEX_NAME else indexes_dir() / value
    return Path(value).expanduser()


DEFAULT_INDEX_DIR = default_index_dir()
# Window budget when the model runs on a CPU: about a second of CPU per 10 s of audio makes
# whole-track coverage take days for a large library; 6 windows spread evenly keep it practical.
CPU_MAX_WINDOWS = 6
# Windows per model call. On the 2-core CPU, onnxruntime ran batches of 2-4 as fast as 8
# (5.7 vs 5.6 windows/s) with 300-400 MB less peak memory; a GPU wants larger batches.
CPU_BATCH = 4
GPU_BATCH = 32
# Audio tower precision: auto = bf16 on a CUDA GPU that supports it, else fp16 on CUDA, fp32
# elsewhere; half precision is used only after a check against fp32 on the run's first windows.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Bumped whenever decoding, windowing or features change in a way that changes vectors.
PIPELINE_VERSION = "1"

AUDIO_EXTENSIONS = frozenset({"wav", "flac", "ogg", "oga", "opus", "mp3", "m4a", "aac", "alac", "aif", "aiff", "wma"})


def default_workers() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """How to index and search.

    Attributes:
        index_dir: folder holding ``musicsearch.db`` and the derived FAISS files; a bare
            name given as a string (``"jazz"``) is the index of that name (``index_path``).
        model: Hub id or local folder; ``None`` means the index's own model (or the default
            for a new index).
        revision: Hub revision (branch, tag or commit) of ``model``.
        device: ``auto`` (cuda, then mps, then cpu), or any torch device string.
        batch_size: windows per model call (windows of several files share a batch);
            ``None``: ``CPU_BATCH`` on a CPU, ``GPU_BATCH`` elsewhere.
        max_windows: at most this many windows per track, spread evenly; ``None`` means
            automatic: ``CPU_MAX_WINDOWS`` when the model runs on a CPU, whole tracks on a GPU.
        full: cover whole tracks whatever the device (overrides ``max_windows``).
        onnx_audio: on a CPU, run the audio tower under onnxruntime (exported once per index
            and checked against torch; 1.22x faster here).
        audio_int8: with ``onnx_audio``, use an int8 copy of the audio tower (1.76x faster on
            the 2-core CPU; checked to keep cosine >= 0.99 against fp32). Off by default.
        fast_queries: after indexing, export the text tower to ONNX once per index so that
            queries need neither torch nor transformers.
        model_check: refuse models that embed unrelated prompts to the same vector.
        workers: decode worker processes feeding the model (default: the cores this process
            may run on).
        precision: the audio tower's precision on a GPU, one of ``PRECISIONS``.
    """

    index_dir: Path = DEFAULT_INDEX_DIR
    model: str | None = None
    revision: str | None = None
    device: str = "auto"
    batch_size: int | None = None
    max_windows: int | None = None
    full: bool = False
    onnx_audio: bool = True
    audio_int8: bool = False
    fast_queries: bool = True
    model_check: bool = True
    workers: int = field(default_factory=default_workers)
    precision: str = "auto"
    extensions: frozenset[str] = field(default=AUDIO_EXTENSIONS)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index_dir", index_path(self.index_dir))
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.max_windows is not None and self.max_windows < 1:
            raise ValueError("max_windows must be at least 1")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")

    def window_budget(self, device: str | None) -> int | None:
        """Windows per track for a model on ``device`` (None: whole tracks)."""
        if self.full:
            return None
        if self.max_windows is not None:
            return self.max_windows
        return CPU_MAX_WINDOWS if device == "cpu" else None

    def batch_for(self, device: str | None) -> int:
        """Windows per model call for a model on ``device``."""
        if self.batch_size is not None:
            return self.batch_size
        return GPU_BATCH if device is not None and device.startswith(("cuda", "mps")) else CPU_BATCH

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Settings whose defaults come from MUSICSEARCH_INDEX (a folder or an index name) and
        MUSICSEARCH_NO_MODEL_CHECK; keyword arguments that are not None override them."""
        base = cls(
            index_dir=index_path(os.environ.get("MUSICSEARCH_INDEX") or DEFAULT_INDEX_DIR),
            model_check=not _env_flag("MUSICSEARCH_NO_MODEL_CHECK"),
        )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})
