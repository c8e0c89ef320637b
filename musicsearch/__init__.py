"""musicsearch: index a music folder with CLAP and search it by text.

from musicsearch import MusicIndex
idx = MusicIndex()  # the default index (the user data folder), or MusicIndex("path")
report = idx.index("~/Music")
hits = idx.search("warm analog synth pads", k=10)
"""

from .api import IndexInfo, MusicIndex
from .classify import Classification
from .config import DEFAULT_MODEL, Settings
from .errors import (
    CollapsedModel,
    DecodeError,
    IndexNotFound,
    ModelLoadError,
    ModelMismatch,
    MusicSearchError,
)
from .events import IndexReport
from .filters import Filters
from .hits import Hit, Segment
from .store import Track

__all__ = [
    "DEFAULT_MODEL",
    "Classification",
    "CollapsedModel",
    "DecodeError",
    "Filters",
    "Hit",
    "IndexInfo",
    "IndexNotFound",
    "IndexReport",
    "ModelLoadError",
    "ModelMismatch",
    "MusicIndex",
    "MusicSearchError",
    "Segment",
    "Settings",
    "Track",
]
__version__ = "0.1.0"
