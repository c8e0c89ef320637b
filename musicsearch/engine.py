"""The engine that runs a model, chosen here and only here: whether CLAP's audio tower runs
on torch or on its prepared ONNX graph (fp32 or int8), when its text tower is exported for
fast queries, how a cluster node builds the run's model, what a run reports about its
precision, and how the collapse guard scores a model. Every other module sees only the
``Embedder`` / ``TextEmbedder`` contract of ``embed.py``; any embedder that is not CLAP
(tests' fakes, a user's own) runs as it is.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from .clap import ClapEmbedder
from .config import DEFAULT_MODEL, Settings
from .embed import COLLAPSE_THRESHOLD, PROBE_PROMPTS, Embedder, TextEmbedder, mean_pairwise_cosine
from .errors import CollapsedModel, ModelLoadError
from .events import Listener, Phase, quiet

log = logging.getLogger(__name__)


def _clap(model: TextEmbedder) -> ClapEmbedder | None:
    """The model as CLAP, or None for any other embedder: the one place that asks."""
    return model if isinstance(model, ClapEmbedder) else None


def check_not_collapsed(model: TextEmbedder) -> float:
    """Embed the probe prompts and refuse a model that gives them all the same vector (for
    CLAP, the score recorded in its prepared folder, so a prepared machine loads no tower).

    Returns:
        The mean pairwise cosine of the probe prompts.

    Raises:
        CollapsedModel: the mean pairwise cosine is above ``COLLAPSE_THRESHOLD``.
    """
    clap = _clap(model)
    score = clap.probe_score() if clap is not None else mean_pairwise_cosine(model.embed_texts(list(PROBE_PROMPTS)))
    if score > COLLAPSE_THRESHOLD:
        raise CollapsedModel(
            f"model {model.model_id} produces the same vector for any text (mean cosine "
            f"{score:.4f} between unrelated prompts), as the Hub's laion/larger_clap_music does; "
            f"use --model {DEFAULT_MODEL}, or --no-model-check to use it anyway"
        )
    return score


def prepare_audio(
    embedder: Embedder, settings: Settings, on_event: Listener = quiet, windows: int | None = None
) -> list[str]:
    """Pick the audio engine for a run (of about ``windows`` windows): on a CPU, the model's
    prepared ONNX graph (Settings.onnx_audio; exported and checked once per model per machine,
    said as a phase). A first run exports it before embedding, whatever its size, and embeds
    with it: the export happens once per machine anyway (``prepare_queries`` would do it after
    the run), and the export's check session is the one that embeds, so a small first run no
    longer pays for the torch tower too. Returns notes for the report; a failed export leaves
    torch in use, with a WARNING."""
    clap = _clap(embedder)
    if clap is None or clap.device != "cpu":
        return []
    # An index run (``windows`` given) on a CPU: the text tower is prepared in a child process
    # beside the audio export and the embedding, and ``prepare_queries`` waits for it.
    if windows is not None and settings.fast_queries:
        clap.start_text_preparation()
    if not settings.onnx_audio:
        return []
    int8 = settings.audio_int8
    if not clap.audio_prepared(int8):
        on_event(Phase("Preparing the audio model for this machine (once per model)"))
    try:
        cosine = clap.use_onnx_audio(int8=int8, windows=windows)
    except ModelLoadError as exc:
        log.warning("%s", exc)
        return [str(exc)]
    if cosine is None:
        return []
    what = f"int8 copy, cosine {cosine:.5f} vs fp32" if int8 else f"cosine {cosine:.7f} vs torch"
    return [f"audio tower on onnxruntime ({what})"]


def prepare_queries(embedder: Embedder, settings: Settings, on_event: Listener = quiet) -> list[str]:
    """Once per model per machine, after a run: export the audio tower (on a CPU, with
    Settings.onnx_audio) and the text tower (Settings.fast_queries) to ONNX, each checked
    against torch, so that later runs and queries here need neither torch nor transformers."""
    clap = _clap(embedder)
    if clap is None:
        return []
    audio = settings.onnx_audio and clap.device == "cpu" and not clap.audio_prepared()
    text = settings.fast_queries and (clap.text_preparing() or not clap.text_prepared())
    if not (audio or text):
        return []
    on_event(Phase("Preparing the model for this machine (once per model)"))
    clap.release_audio()  # the run is over: keep a first run's peak memory down
    notes = []
    try:
        cosine = clap.export_audio_graph() if audio else None
        if cosine is not None:
            notes.append(f"exported the audio tower to ONNX for later runs (cosine {cosine:.7f} vs torch)")
    except ModelLoadError as exc:
        log.warning("%s", exc)
        notes.append(str(exc))
    if text:
        try:
            cosine, kind = clap.prepare_text_onnx()
            notes.append(f"exported the text tower to ONNX ({kind}) for fast queries (cosine {cosine:.7f} vs torch)")
        except ModelLoadError as exc:
            log.warning("%s", exc)
            notes.append(str(exc))
    return notes


def run_notes(embedder: Embedder) -> list[str]:
    """What the run's report should say about the model's engine (e.g. a half precision
    refused after its check), taken once."""
    clap = _clap(embedder)
    return clap.take_notes() if clap is not None else []


def _rebuild_clap(model: str, revision: str | None, settings: Settings, load: bool) -> Embedder:
    """A ClapEmbedder as a cluster actor makes it (``load``: the audio tower too, ONNX on a
    CPU as a local run picks it); without ``load``, the light copy whose ``prepare`` decode
    tasks run."""
    embedder = ClapEmbedder(model, revision, settings.device, settings.precision)
    if load:
        for note in prepare_audio(embedder, settings):
            log.info("%s", note)
        embedder.audio_tower()
    return embedder


def _same(embedder: Embedder, load: bool) -> Embedder:
    return embedder


def node_factory(embedder: Embedder, settings: Settings) -> Callable[[bool], Embedder]:
    """How a cluster node builds the run's model (called with ``load``): CLAP is rebuilt
    from its id and the settings (its device picked on the node); any other embedder is
    shipped as it is."""
    clap = _clap(embedder)
    if clap is not None:
        return functools.partial(_rebuild_clap, clap.model_id, clap.revision, settings)
    return functools.partial(_same, embedder)
