"""musicsearch: index a music folder with CLAP and search it by text.

from musicsearch import MusicIndex
idx = MusicIndex()  # the default index (the user data folder), or MusicIndex("path")
report = idx.index("~/Music")
hits = idx.search("warm analog synth pads", k=10)
"""

from .api import IndexInfo, MusicIndex
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
from .search.classify import Classification
from .search.request import SearchRequest, parse_request
from .search.variety import Variety
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
    "SearchRequest",
    "Segment",
    "Settings",
    "Track",
    "Variety",
    "parse_request",
]
__version__ = "0.1.0"
