"""Finding and loading a CLAP checkpoint with transformers: a local folder or a Hub id, the
cache first, a fast one-line error offline that names the way out, transformers' load reports
silenced, and the logit scale read without loading a tower; and ``fetch_model``, which puts a
model in a folder on a connected machine, for one that is not. Every import of transformers
and huggingface_hub happens inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ModelLoadError

log = logging.getLogger(__name__)

MODEL_FOLDER = "~/clap"
"""The folder the offline message suggests: the same path on both machines, wherever a
command runs (``--model`` and ``Settings(model=...)`` expand ``~``)."""
CLI_PASS = "pass --model {folder} (Python: Settings(model={folder!r}))"
"""How a user of the command or the library passes a model folder; other front ends say theirs
through ``ModelUnavailable.way_out`` (beets: its ``model:`` key)."""


class ModelUnavailable(ModelLoadError):
    """The model is not cached here and the Hub cannot be reached: the message names the
    command that fetches it into a folder on a connected machine, and how to pass the folder."""

    def __init__(self, model: str, revision: str | None = None):
        self.model, self.revision = model, revision
        super().__init__(self.way_out(CLI_PASS))

    def way_out(self, how_to_pass: str) -> str:
        """The one-line message, with ``how_to_pass`` (a template with ``{folder}``) saying how
        the front end at hand takes a model folder."""
        revision = f" --revision {self.revision}" if self.revision else ""
        return (
            f"could not load model {self.model!r}: it is not cached and the Hub cannot be reached (offline?); "
            f"on a machine with a network run 'musicsearch model fetch {self.model}{revision} --to {MODEL_FOLDER}', "
            f"copy that folder to {MODEL_FOLDER} here and {how_to_pass.format(folder=MODEL_FOLDER)}"
        )


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
            raise ModelUnavailable(model, revision)
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


# fetching a model into a folder ---------------------------------------------------------------

_WEIGHTS = (("model.safetensors", "model-"), ("pytorch_model.bin", "pytorch_model-"))
"""Weight files by preference: safetensors (one file or shards with their index), else .bin."""


def _wanted(files: list[str]) -> list[str]:
    """The files of a checkpoint that ``from_pretrained`` of a model and its processor read:
    the top-level JSON and text files (config, processor, tokenizer) and one set of weights."""
    top = [f for f in files if "/" not in f]
    chosen = [f for f in top if f.endswith((".json", ".txt")) and not f.startswith("pytorch_model")]
    for single, shard in _WEIGHTS:
        ext = single.rsplit(".", 1)[1]
        weights = [f for f in top if f == single or (f.startswith(shard) and f.endswith("." + ext))]
        if weights:
            index = f"{single}.index.json"
            return sorted(set(chosen + weights + ([index] if index in top else [])))
    return sorted(chosen)


def _check_folder(folder: Path, source: str) -> None:
    """Refuse a fetched folder that the loading code could not use."""
    from transformers import ClapConfig, ClapProcessor

    names = {p.name for p in folder.iterdir()}
    if not any(n.endswith((".safetensors", ".bin")) for n in names):
        raise ModelLoadError(f"{source} has no model weights (model.safetensors or pytorch_model.bin)")
    with _quiet_transformers():
        try:
            ClapConfig.from_pretrained(folder)
            ClapProcessor.from_pretrained(folder)
        except (OSError, ValueError, TypeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelLoadError(f"{source} is not a CLAP model with its processor: {first}") from None


def _download(model: str, revision: str | None, into: Path) -> None:
    """The model's files from the Hub into ``into`` (no copy in the Hub cache)."""
    from huggingface_hub import HfApi, snapshot_download

    try:  # the Hub client raises OSError, httpx and ValueError kinds alike: each is one line here
        files = _wanted(HfApi().list_repo_files(model, revision=revision))
        if not files:
            raise ModelLoadError(f"{model!r} on the Hub holds no model files")
        snapshot_download(model, revision=revision, local_dir=into, allow_patterns=files)
    except ModelLoadError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelLoadError(f"could not fetch model {model!r} from the Hub: {first}") from None
    shutil.rmtree(into / ".cache", ignore_errors=True)  # the client's download bookkeeping


def fetch_model(model: str, to: Path | str, revision: str | None = None) -> Path:
    """Put ``model`` (a Hub id, or a model folder) into the new folder ``to``, as a folder
    that ``--model`` / ``Settings(model=...)`` load on a machine with no network: the config,
    processor and tokenizer files and one set of weights, checked before the folder appears
    (it appears whole or not at all).

    Returns:
        ``to``, absolute.

    Raises:
        ModelLoadError: ``to`` is not empty, the Hub cannot be reached or has no such model,
            or what was fetched is not a CLAP model with its processor.
    """
    target = Path(to).expanduser().absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ModelLoadError(f"{target} already exists and is not an empty folder; give --to a new folder")
    source = Path(model).expanduser()
    if not source.is_dir() and not _hub_reachable():
        raise ModelLoadError(
            f"cannot fetch {model!r}: the Hub cannot be reached from this machine (offline?); run this "
            "command on a machine with a network, then copy the folder here and pass it with --model"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)  # what a killed fetch left
    try:
        partial.mkdir()
        if source.is_dir():
            for name in _wanted([p.name for p in source.iterdir() if p.is_file()]):
                shutil.copy2(source / name, partial / name)
            _check_folder(partial, f"folder {source}")
        else:
            _download(model, revision, partial)
            _check_folder(partial, f"model {model!r}")
        if target.exists():
            target.rmdir()
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    log.info("fetched %s into %s", model, target)
    return target
