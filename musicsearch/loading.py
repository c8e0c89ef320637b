"""Finding and loading a CLAP checkpoint with transformers: a local folder or a Hub id, the
cache first, a fast one-line error offline, transformers' load reports silenced, and the
logit scale read without loading a tower. Every import of transformers happens inside the
functions, so importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ModelLoadError


def resolve_model(model: str) -> str:
    """A local folder becomes its absolute path (so the index names it unambiguously);
    anything else is taken as a Hub id."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve())
    return model


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub endpoint answers a TCP connection (fails fast when offline, instead
    of the Hub client's ~25 s of retries)."""
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return False
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
        return True
    except OSError:
        return False


def load_pretrained(loader: Any, model: str, revision: str | None, **kwargs: Any) -> Any:
    """``loader.from_pretrained(model)``: a local folder or the cache first, then the Hub."""

    def first_line(exc: BaseException) -> str:
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0]

    if Path(model).is_absolute() and not Path(model).is_dir():  # a Hub id is never absolute
        raise ModelLoadError(
            f"model folder {model} does not exist (moved or deleted?); put it back there, or pass --model "
            "with a folder or Hub id (an index keeps the model it was built with)"
        )
    with _quiet_transformers():
        if Path(model).is_dir():
            try:
                return loader.from_pretrained(model, **kwargs)
            except (OSError, ValueError, ImportError) as exc:
                raise ModelLoadError(f"cannot load model from folder {model}: {first_line(exc)}") from None
        try:
            return loader.from_pretrained(model, revision=revision, local_files_only=True, **kwargs)
        except (OSError, ValueError):
            pass
        if not _hub_reachable():
            raise ModelLoadError(
                f"could not load model {model!r}: it is not cached and the Hub cannot be reached (offline?); "
                "--model also accepts a local folder saved with save_pretrained"
            )
        try:
            return loader.from_pretrained(model, revision=revision, **kwargs)
        except (OSError, ValueError, ImportError) as exc:
            raise ModelLoadError(f"could not load model {model!r}: {first_line(exc)}") from None


def read_logit_scale(model: str, revision: str | None) -> float:
    """exp(logit_scale_a) of a checkpoint: read from its safetensors file without loading a
    tower, else (a sharded or .bin checkpoint) from the whole model, loaded once."""
    from transformers.utils import cached_file

    with _quiet_transformers():
        try:
            path = cached_file(
                model, "model.safetensors", revision=revision, _raise_exceptions_for_missing_entries=False
            )
        except OSError:
            path = None
        if path:
            from safetensors import safe_open

            with safe_open(path, framework="pt") as f:
                if "logit_scale_a" in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                    return float(f.get_tensor("logit_scale_a").float().exp())
    from transformers import ClapModel  # sharded or .bin checkpoints: load it all once

    return float(load_pretrained(ClapModel, model, revision).logit_scale_a.exp())


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence load reports (the unused tower's weights are expected to be 'unexpected')."""
    import logging

    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hub_logger = logging.getLogger("huggingface_hub")
    hub_level = hub_logger.level
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    hub_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()
        hub_logger.setLevel(hub_level)
