"""The OpenSubsonic API under ``/rest/`` of ``musicsearch serve``: Subsonic apps browse, search
(``search3`` runs the text query as ``musicsearch query`` does), play and mix the index.

``router`` (the one route and ``mount``), ``auth`` and ``users`` (who may call), ``params`` and
``responses`` (what a call carries and how it is answered), ``catalog`` (songs, albums and
artists from the tags), and a module per group of calls: ``browse``, ``search``, ``media``,
``mixes``, ``playlists``. docs/subsonic.md says what works."""

from .users import UserStore  # the router (FastAPI) is imported by the server only: router.mount

__all__ = ["UserStore"]
