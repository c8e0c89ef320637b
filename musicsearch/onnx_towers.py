"""CLAP towers as ONNX graphs, exported once per model per machine into the model's prepared
folder (musicsearch/prepared.py) and checked against torch before use.

- Text: a query then needs only onnxruntime + tokenizers + faiss (about 0.3 s to import)
  instead of torch + transformers (6-8 s); int8-quantized when it stays close enough to torch.
- Audio (CPU only): onnxruntime ran the full-size audio tower 1.22x faster than torch eager on
  the 2-core development machine, cosine >= 0.9999998 (scripts/bench_index.py measures it).

Exporting is part of a fresh machine's first run, so it is kept lean (scripts/bench_first_run.py):
the weights are traced as graph inputs and the audio weights written once, straight from torch
(the exporter's own serialization held about four copies of them: a 2.4-3 GB peak), the tracer's
forward pass is the torch reference (no separate torch pass), and the text graph is quantized to
int8 from the traced weights in memory, one weight at a time, each freed once quantized, instead
of by onnxruntime's quantizer from an fp32 file (1.6 GB more, and the file written first).
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import tempfile
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelLoadError
from .prepared import PreparedModel

log = logging.getLogger(__name__)

ONNX_FILE = "text-tower.onnx"
# The exported text graph, fp32, without its weights: quantized into ONNX_FILE from the weights
# in memory; written with its weights (FP32_TEXT_FILE.data) and installed as ONNX_FILE only
# when the int8 graph strays from torch.
FP32_TEXT_FILE = "text-tower-fp32.onnx"
AUDIO_ONNX_FILE = "audio-tower.onnx"
AUDIO_INT8_FILE = "audio-tower-int8.onnx"
# An audio session for a run of fewer windows leaves its weights unpacked: packing cost 0.21 s
# of start-up and saved 8 ms a window (0.53 against 0.74 s, 0.123 against 0.115 s a window, the
# full-size tower on the 2-core machine), so it pays from about 26 windows.
PREPACK_FROM_WINDOWS = 26
# Opt-in int8 audio tower (Settings.audio_int8): measured 1.76x faster on the 2-core CPU
# (8.74 vs 4.96 windows/s), min cosine 0.99916 against the fp32 graph.
MIN_COSINE_AUDIO_INT8 = 0.99
TOKENIZER_FILE = "text-tokenizer.json"
TEXT_OPTIMIZED_PREFIX = "text-tower.optimized-ort"  # + onnxruntime's version + ".onnx": see _text_session
CHECK_PROMPTS = (
    "upbeat electronic with a strong bassline",
    "solo piano, slow and sad",
    "warm analog synth pads",
    "heavy metal with distorted guitars",
    "a quiet acoustic folk song with a female singer",
    "orchestral film score with epic drums " * 8,  # longer than 77 tokens: truncation
)
MIN_COSINE = 0.9999
# An int8 (dynamic quantization) text graph is kept when it stays this close to torch: on the
# full-size model it was 4x smaller (126 vs 500 MB) and 3.3x faster (11 vs 37 ms a query; with
# onnxruntime's quantizer, whose MatMul pattern quantize_int8 writes too), min cosine 0.99966 on
# the check prompts (0.99993 with quantize_int8, full-size random-weight model).
MIN_COSINE_INT8 = 0.999
MAX_TOKENS = 77


def _recording(torch: Any, forward: Callable[..., Any], names: Sequence[str]) -> Any:
    """A module around ``forward(inner, *inputs)`` whose weights are inputs too: it is
    called as ``module(*inputs, *weights)`` (the tensors named ``names``, in that order).

    Traced this way, the weights are graph inputs rather than constants, so the exporter
    never copies them into its graph (it held about four copies of the text tower's 500 MB
    while serializing: the 2.4 GB peak of a first run); ``_externalize`` then writes them
    once, straight from torch, as the graph's external data. The module also keeps its last
    output: the tracer runs the model once on real tensors, so that output is the torch
    reference for the check, and no separate torch pass is needed."""

    class Recording(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner
            self.last: np.ndarray | None = None
            self.owners = []  # (module, parameter name) for each of ``names``
            for name in names:
                path, _, leaf = name.rpartition(".")
                self.owners.append((inner.get_submodule(path), leaf))

        def forward(self, *args: Any) -> Any:
            n = len(args) - len(names)
            saved = [(m, leaf, m._parameters[leaf]) for m, leaf in self.owners]
            try:  # the given tensors stand in for the parameters (torch.func refuses to be traced)
                for (m, leaf), tensor in zip(self.owners, args[n:]):
                    m._parameters[leaf] = tensor
                out = forward(self.inner, *args[:n])
            finally:
                for m, leaf, param in saved:
                    m._parameters[leaf] = param
            self.last = out.detach().float().cpu().numpy().copy()
            return out

    return Recording


def _export(
    torch: Any,
    inner: Any,
    forward: Callable[..., Any],
    inputs: dict[str, Any],
    dynamic: dict[str, dict[int, str]],
    path: Path,
) -> tuple[np.ndarray, Any, dict[str, np.ndarray]]:
    """Trace ``forward(inner, *inputs)`` (one output, "embeds") with the weights as graph
    inputs, written by the exporter to ``path`` (a graph without weights).

    The TorchScript tracer (opset 17) runs with its chatter silenced: the checks against torch
    are what count.

    Returns:
        (the torch output the tracer computed: the reference; the graph, whose weights are
        now initializers without values (``_fold_weights``); {initializer name: its values},
        views of the torch weights, to be written by ``_save_external`` or quantized).
    """
    import onnx

    params = {k: v.detach() for k, v in inner.named_parameters()}
    wrapped = _recording(torch, forward, list(params))(inner).eval()
    slots = {f"w{i}": tensor for i, tensor in enumerate(params.values())}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped,
            (*inputs.values(), *slots.values()),
            str(path),
            input_names=[*inputs, *slots],
            output_names=["embeds"],
            dynamic_axes={**dynamic, "embeds": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    reference = wrapped.last
    if reference is None:
        raise RuntimeError("the tracer did not run the model")
    del wrapped
    model = onnx.load(str(path))
    return reference, model, _fold_weights(model, {k: v.float().cpu().numpy() for k, v in slots.items()})


def _fold_weights(model: Any, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Turn the graph inputs named in ``weights`` into initializers (declared, values kept
    aside). A 2-d weight read only through ``Transpose`` (a Linear layer's ``x @ W.T``) takes
    the Transpose's place, transposed, as the exporter's constant folding would have done, so
    that MatMul sees a constant B (what int8 quantization and onnxruntime's fusions look for).

    Returns:
        {initializer name: values} for the weights the graph uses, in order."""
    import onnx

    graph = model.graph
    users: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    dropped: set[int] = set()
    renamed: dict[str, str] = {}
    values: dict[str, np.ndarray] = {}
    for slot, array in weights.items():
        nodes = users.get(slot, [])
        if not nodes:
            continue
        name = slot
        if array.ndim == 2 and all(n.op_type == "Transpose" and _perm(n) in (None, [1, 0]) for n in nodes):
            name, array = nodes[0].output[0], array.T
            for n in nodes:
                dropped.add(id(n))
                renamed[n.output[0]] = name
        values[name] = array
        graph.initializer.append(onnx.TensorProto(name=name, dims=list(array.shape), data_type=onnx.TensorProto.FLOAT))
    kept = [n for n in graph.node if id(n) not in dropped]
    for node in kept:
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
    del graph.node[:]
    graph.node.extend(kept)
    inputs = [i for i in graph.input if i.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    return values


def _save_external(model: Any, values: dict[str, np.ndarray], path: Path) -> None:
    """Save ``model`` to ``path`` with the initializers named in ``values`` written to
    ``path``.data, one tensor at a time (page-aligned, so onnxruntime can map them)."""
    import onnx

    data_name = path.name + ".data"
    inits = {i.name: i for i in model.graph.initializer if i.name in values}
    offset = 0
    with open(path.parent / data_name, "wb") as data:
        for name, array in values.items():
            raw = np.ascontiguousarray(array, dtype=np.float32)
            pad = -offset % 4096
            data.write(b"\0" * pad)
            offset += pad
            data.write(raw.data.cast("B"))  # no bytes copy (the word embeddings are 154 MB)
            init = inits[name]
            del init.external_data[:]
            init.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (("location", data_name), ("offset", str(offset)), ("length", str(raw.nbytes))):
                init.external_data.add(key=key, value=value)
            offset += raw.nbytes
    onnx.save(model, str(path))


class _Consumed(Mapping[str, np.ndarray]):
    """A read-once view of {name: weight}: reading a weight drops it from here, so that a
    tower whose weights live only in this mapping frees each one as soon as it is read
    (``quantize_int8`` reads each weight once). Reading one a second time raises KeyError."""

    def __init__(self, values: dict[str, np.ndarray]):
        self._values = values

    def __getitem__(self, name: str) -> np.ndarray:
        return self._values.pop(name)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._values))

    def __len__(self) -> int:
        return len(self._values)


def collect_if_alive(ref: weakref.ref[Any]) -> None:
    """Collect garbage only when the object ``ref`` points to outlived its last reference (a
    reference cycle): the towers are freed by reference counting, and a full collection costs
    about 0.2 s once torch and transformers are loaded. Then hand the freed heap back to the
    system (``malloc_trim``): glibc keeps it otherwise, and a first run's peak memory counts it."""
    if ref() is not None:
        gc.collect()
    trim_heap()


def trim_heap() -> None:
    """glibc's ``malloc_trim(0)`` where there is one (a few ms), else nothing."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _perm(node: Any) -> list[int] | None:
    for attr in node.attribute:
        if attr.name == "perm":
            return list(attr.ints)
    return None


def _int8(w: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """Symmetric per-tensor int8 (range -127..127, zero point 0), as onnxruntime's dynamic
    quantization does for QInt8 weights (in four passes over ``w`` and one float temporary)."""
    amax = max(float(w.max()), -float(w.min())) if w.size else 0.0
    scale = np.float32(amax / 127.0 if amax > 0 else 1.0)
    scaled = np.divide(w, scale, dtype=np.float32, order="C")
    np.rint(scaled, out=scaled)  # |w| / scale <= 127 by the choice of scale: no clipping needed
    return scaled.astype(np.int8), scale


def quantize_int8(graph_model: Any, values: Mapping[str, np.ndarray], target: Path) -> int:
    """Dynamic int8 quantization of ``graph_model`` (whose initializers named in ``values``
    have their values there: ``_export``) into ``target`` (one file, weights inline). Every
    MatMul whose B is a 2-d float weight becomes DynamicQuantizeLinear + MatMulInteger + Cast
    + Mul (the pattern onnxruntime's ``quantize_dynamic`` writes and fuses at load), and every
    Gather from a 2-d float weight (an embedding table) gathers int8 rows and dequantizes
    them. One weight at a time, from the torch weights in memory: where ``quantize_dynamic``
    held about three times the fp32 graph (1.6 GB for the text tower) and needed it written
    out first, this needs about the int8 graph's size. ``graph_model`` is left as it was.

    Returns:
        The number of weights quantized.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(graph_model)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    float_2d = {n for n in values if len(inits[n].dims) == 2 and inits[n].data_type == TensorProto.FLOAT}
    new_inits: list[Any] = []
    quantized: dict[str, tuple[str, str, str]] = {}  # weight -> (int8 values, scale, zero point)
    activations: dict[str, tuple[str, str, str]] = {}  # tensor -> its DynamicQuantizeLinear outputs
    nodes: list[Any] = []

    def weight(name: str) -> tuple[str, str, str]:
        if name not in quantized:
            q, scale = _int8(values[name])
            names = (name + "_int8", name + "_scale", name + "_zero")
            new_inits.append(numpy_helper.from_array(q, names[0]))
            new_inits.append(numpy_helper.from_array(np.array(scale, np.float32), names[1]))
            new_inits.append(numpy_helper.from_array(np.array(0, np.int8), names[2]))
            quantized[name] = names
        return quantized[name]

    for node in graph.node:
        out = node.output[0] if node.output else ""
        if node.op_type == "MatMul" and node.input[1] in float_2d:
            a = node.input[0]
            if a not in activations:
                activations[a] = (a + "_q", a + "_qscale", a + "_qzero")
                nodes.append(helper.make_node("DynamicQuantizeLinear", [a], list(activations[a])))
            aq, ascale, azero = activations[a]
            bq, bscale, bzero = weight(node.input[1])
            nodes += [
                helper.make_node("MatMulInteger", [aq, bq, azero, bzero], [out + "_i32"]),
                helper.make_node("Cast", [out + "_i32"], [out + "_f32"], to=TensorProto.FLOAT),
                helper.make_node("Mul", [ascale, bscale], [out + "_scale"]),
                helper.make_node("Mul", [out + "_f32", out + "_scale"], [out]),
            ]
        elif node.op_type == "Gather" and node.input[0] in float_2d:
            tq, tscale, tzero = weight(node.input[0])
            gather = helper.make_node("Gather", [tq, node.input[1]], [out + "_int8"])
            gather.attribute.extend(a for a in node.attribute if a.name == "axis")
            nodes += [gather, helper.make_node("DequantizeLinear", [out + "_int8", tscale, tzero], [out])]
        else:
            nodes.append(node)
    used = {name for node in nodes for name in node.input}
    kept = []
    for name, init in inits.items():
        if name in used and name not in quantized:
            if name in values:
                init = numpy_helper.from_array(np.ascontiguousarray(values[name]), name)
            kept.append(init)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    del graph.value_info[:]  # shapes of replaced outputs may no longer hold; onnxruntime infers its own
    onnx.save(model, str(target))
    return len(quantized)


def export_text_tower(take_model: Callable[[], tuple[Any, Any]], prepared: PreparedModel) -> tuple[float, str]:
    """Export a ``ClapTextModelWithProjection`` + L2 normalization (and its tokenizer) to the
    model's prepared folder, quantize it to int8 and check the graph that queries will load
    against torch on ``CHECK_PROMPTS``.

    ``take_model()`` hands over (the tower, its tokenizer) and the caller keeps no reference:
    once traced, the tower's weights live on only in the exporter's arrays, and the int8
    quantization frees each fp32 weight as soon as it is quantized (``_Consumed``), so the
    quantization and the check hold no second copy of them (a first run's peak memory) and
    nothing fp32 is written. The torch reference is the output the tracer computed.

    The int8 graph is kept when it reaches MIN_COSINE_INT8 against torch; else (rare) the
    tower is taken again, exported and written fp32, checked (MIN_COSINE) and kept. Only the
    kept graph stays in the prepared folder (an int8 graph removes the fp32 weights an earlier
    fallback left there).

    Returns:
        (the lowest cosine between the kept graph and torch, "int8" or "fp32").

    Raises:
        ModelLoadError: the export fails or disagrees with torch; nothing is left in the
            prepared folder then.
    """
    import torch

    def forward(inner: Any, input_ids: Any, attention_mask: Any) -> Any:
        out = inner(input_ids=input_ids, attention_mask=attention_mask).text_embeds
        return torch.nn.functional.normalize(out, dim=-1)

    model, tokenizer = take_model()
    freed = weakref.ref(model)
    batch = tokenizer(list(CHECK_PROMPTS), padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
    batch = batch.to(next(model.parameters()).device)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    dynamic = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
    pad_id = tokenizer.pad_token_id
    with prepared.staging() as tmp:
        fp32, graph = tmp / FP32_TEXT_FILE, tmp / ONNX_FILE
        try:
            reference, graph_model, values = _export(torch, model, forward, inputs, dynamic, fp32)
            tokenizer.backend_tokenizer.save(str(tmp / TOKENIZER_FILE))
        except Exception as exc:
            raise ModelLoadError(f"could not export the text tower to ONNX ({type(exc).__name__}: {exc})") from None
        finally:
            del model  # its weights live on in ``values`` only

        def agreement() -> float:
            encoder = OnnxTextEncoder.from_files(tmp, "check", None, reference.shape[1], pad_id=pad_id, logit_scale=1.0)
            return float(np.min(np.sum(encoder.embed_texts(CHECK_PROMPTS) * reference, axis=1)))

        cosine, kind = -1.0, "fp32"
        try:
            quantize_int8(graph_model, _Consumed(values), graph)
            values = {}
            collect_if_alive(freed)  # nothing of the tower is left before the check loads the graph
            cosine, kind = agreement(), "int8"
        except Exception as exc:  # an fp32 graph is checked and kept instead
            log.warning("could not quantize the text graph to int8 (%s: %s); it stays fp32", type(exc).__name__, exc)
        if values:  # quantizing failed part-way: the rest of the weights go too
            values = {}
            collect_if_alive(freed)
        installed = [TOKENIZER_FILE, ONNX_FILE]
        if cosine < MIN_COSINE_INT8:
            if kind == "int8":
                log.warning(
                    "the int8 text graph strays from torch (cosine %.5f < %s); the text graph stays fp32",
                    cosine,
                    MIN_COSINE_INT8,
                )
            model, _ = take_model()  # its fp32 weights were freed while quantizing: once more, written
            try:
                _, graph_model, values = _export(torch, model, forward, inputs, dynamic, fp32)
                _save_external(graph_model, values, fp32)
            except Exception as exc:
                raise ModelLoadError(f"could not export the text tower to ONNX ({type(exc).__name__}: {exc})") from None
            finally:
                del model
            del values
            os.replace(fp32, graph)  # its weights stay in FP32_TEXT_FILE.data, installed beside it
            installed.insert(0, FP32_TEXT_FILE + ".data")
            cosine, kind = agreement(), "fp32"
        del graph_model
        if cosine < MIN_COSINE:
            raise ModelLoadError(
                f"the ONNX text tower disagrees with torch (cosine {cosine:.6f}); queries stay on torch"
            )
        optimized = sorted(tmp.glob(TEXT_OPTIMIZED_PREFIX + "*"), key=lambda p: p.suffix == ".onnx")  # the graph last
        installed += [p.name for p in optimized]  # saved by the check's session
        prepared.install(tmp, *installed)
        if kind == "int8":  # the weights of an fp32 graph installed by an earlier run are no longer used
            prepared.remove(FP32_TEXT_FILE + ".data")
    return cosine, kind


class OnnxTextEncoder:
    """Embeds prompts with the exported text graph: a ``TextEmbedder`` that needs neither
    torch nor transformers."""

    def __init__(self, session: Any, tokenizer: Any, model_id: str, revision: str | None, dim: int, logit_scale: float):
        self._session, self._tokenizer = session, tokenizer
        self.model_id, self.revision, self.dim, self.logit_scale = model_id, revision, dim, logit_scale

    @classmethod
    def from_files(
        cls, folder: Path, model_id: str, revision: str | None, dim: int, pad_id: int, logit_scale: float
    ) -> OnnxTextEncoder:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.enable_padding(pad_id=pad_id)
        return cls(_text_session(folder), tokenizer, model_id, revision, dim, logit_scale)

    @classmethod
    def from_prepared(cls, prepared: PreparedModel) -> OnnxTextEncoder | None:
        """The prepared text graph of a model, or None when it has none (or a damaged one,
        which is logged)."""
        facts = prepared.facts()
        if not (prepared.has(ONNX_FILE, TOKENIZER_FILE) and {"dim", "pad_token_id", "logit_scale"} <= facts.keys()):
            return None
        try:
            return cls.from_files(
                prepared.folder,
                prepared.model_id,
                prepared.revision,
                int(facts["dim"]),
                int(facts["pad_token_id"]),
                float(facts["logit_scale"]),
            )
        except Exception as exc:
            log.warning("the prepared text graph in %s cannot be used (%s); queries run on torch", prepared.folder, exc)
            return None

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        out: np.ndarray = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return out.astype(np.float32)


class OnnxAudioTower:
    """The audio tower under onnxruntime: log-mel features (batch, 1, frames, mels) ->
    unit vectors."""

    def __init__(self, session: Any, int8: bool = False):
        self.session, self.int8 = session, int8

    def __call__(self, feats: Any) -> np.ndarray:
        x = feats.cpu().numpy() if hasattr(feats, "cpu") else np.asarray(feats, np.float32)
        out: np.ndarray = self.session.run(None, {"input_features": x})[0]
        return out.astype(np.float32)


def audio_session(prepared: PreparedModel, int8: bool = False, prepack: bool = True) -> Any | None:
    """A session on the prepared audio graph (checked when it was exported), or None;
    ``prepack``: see ``_session`` and ``PREPACK_FROM_WINDOWS``."""
    path = prepared.path(AUDIO_INT8_FILE if int8 else AUDIO_ONNX_FILE)
    if not path.exists():
        return None
    try:
        return _session(path, prepack)
    except Exception as exc:
        log.warning("the prepared audio graph %s cannot be loaded (%s); exporting it again", path, exc)
        path.unlink(missing_ok=True)
        return None


def _text_session(folder: Path) -> Any:
    """A session on ``folder``'s text graph, from the graph onnxruntime optimized and saved the
    first time (``TEXT_OPTIMIZED_PREFIX``: newer than the graph, by this onnxruntime, its
    weights in a ``.data`` file beside it that onnxruntime maps instead of parsing), loaded
    without optimizing it again: a cold query's session starts several times faster, with the
    same vectors (docs/performance.md). A folder that cannot be written to, or a damaged
    optimized graph, leaves the graph optimized at every start."""
    import onnxruntime as ort

    source, optimized = folder / ONNX_FILE, folder / f"{TEXT_OPTIMIZED_PREFIX}{ort.__version__}.onnx"
    try:
        if optimized.stat().st_mtime_ns >= source.stat().st_mtime_ns:
            return _session(optimized, prepack=False, optimize=False)
    except FileNotFoundError:
        pass
    except Exception as exc:  # damaged: optimized again below
        log.warning("the optimized text graph %s cannot be loaded (%s); optimizing it again", optimized, exc)
    try:
        staged = Path(tempfile.mkdtemp(prefix="tmp-", dir=folder))  # removed by PreparedModel.ensure if left
    except OSError:  # a read-only cache: optimized at every start then
        return _session(source, prepack=False)
    try:
        session = _session(source, prepack=False, save_to=staged / optimized.name)
        for name in (optimized.name + ".data", optimized.name):  # the graph last: it says the pair is whole
            os.replace(staged / name, folder / name)
        for old in folder.glob(TEXT_OPTIMIZED_PREFIX + "*"):  # another onnxruntime's
            if old.name not in (optimized.name, optimized.name + ".data"):
                old.unlink(missing_ok=True)
    except OSError:
        session = _session(source, prepack=False)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return session


def _session(path: Path, prepack: bool = True, optimize: bool = True, save_to: Path | None = None) -> Any:
    """An onnxruntime CPU session. ``prepack`` keeps a pre-packed copy of the weights: for the
    audio tower 145 MB more and 4-5 % faster, for 0.2 s more start-up (``PREPACK_FROM_WINDOWS``);
    the text tower goes without: packing at start-up made a cold ``musicsearch query`` 0.70 s
    instead of 0.65 s (both on the 2-core machine). ``optimize``: False for a graph saved
    already optimized (``save_to``: where to save it, optimized at the extended level, which
    holds no layout specific to this CPU)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    level = ort.GraphOptimizationLevel
    if not optimize:
        options.graph_optimization_level = level.ORT_DISABLE_ALL
    elif save_to is not None:
        options.graph_optimization_level = level.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(save_to)
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", save_to.name + ".data"
        )
    if not prepack:
        options.add_session_config_entry("session.disable_prepacking", "1")
    # Idle threads yield the cores to the decode threads instead of spinning (measured on the
    # 2-core machine).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _check_windows() -> np.ndarray:
    """Noise, a tone and silence: 10-s windows at 48 kHz."""
    rng = np.random.default_rng(0)
    t = np.arange(480_000) / 48_000
    return np.stack(
        [
            (0.2 * rng.standard_normal(480_000)).astype(np.float32),
            (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
            np.zeros(480_000, np.float32),
        ]
    )


def export_audio_tower(
    model: Any, mel: Any, prepared: PreparedModel, keep_session: bool = True, prepack: bool = True
) -> tuple[Any, float]:
    """Export an audio tower (``ClapAudioModelWithProjection``) + L2 normalization to the
    model's prepared folder and check it against ``model`` on generated windows.

    The graph is traced on the first of three check windows (the tracer's forward pass is its
    torch reference) and torch embeds the other two in one eager pass (tracing one window holds
    less memory beside a text export running in another process). The caller should hold no
    other reference to ``model``: it is freed once the graph is written, before the check
    loads the graph (a first run's peak memory). The check runs the three windows as one
    batch and the first one alone against torch, so a batch size baked into the graph is
    caught.

    Returns:
        (an onnxruntime session, the one the check used (weights pre-packed with ``prepack``),
        or None without ``keep_session``; the lowest cosine against torch).

    Raises:
        ModelLoadError: the export fails or disagrees with torch (cosine < MIN_COSINE); no
            graph is left in place then.
    """
    import torch

    def forward(inner: Any, input_features: Any) -> Any:
        return torch.nn.functional.normalize(inner(input_features=input_features).audio_embeds, dim=-1)

    freed = weakref.ref(model)
    feats = np.ascontiguousarray(np.asarray(mel(_check_windows()), np.float32))
    with prepared.staging() as tmp:
        graph = tmp / AUDIO_ONNX_FILE
        try:
            first, graph_model, values = _export(
                torch,
                model,
                forward,
                {"input_features": torch.from_numpy(feats[:1].copy())},
                {"input_features": {0: "batch"}},
                graph,
            )
            with torch.inference_mode():  # the torch reference of the other check windows
                rest = forward(model, torch.from_numpy(feats[1:].copy())).float().numpy()
            reference = np.concatenate([first, rest])
            _save_external(graph_model, values, graph)
            del values
        except Exception as exc:
            raise ModelLoadError(f"could not export the audio tower to ONNX ({type(exc).__name__}: {exc})") from None
        finally:
            del model  # the torch weights go before the graph is loaded for the check
            collect_if_alive(freed)
        session = _session(graph, prepack and keep_session)
        out = np.concatenate(
            [session.run(None, {"input_features": feats})[0], session.run(None, {"input_features": feats[:1]})[0]]
        )
        cosine = float(np.min(np.sum(out * np.concatenate([reference, reference[:1]]), axis=1)))
        if cosine < MIN_COSINE:
            raise ModelLoadError(
                f"the ONNX audio tower disagrees with torch (cosine {cosine:.6f}); indexing stays on torch"
            )
        prepared.install(tmp, AUDIO_ONNX_FILE + ".data", AUDIO_ONNX_FILE)  # the session stays valid
    prepared.record(audio_onnx_cosine=cosine)
    return (session if keep_session else None), cosine


def quantize_audio_tower(prepared: PreparedModel, fp32_session: Any, mel: Any) -> tuple[Any, float]:
    """An int8 (dynamic quantization) copy of the prepared audio graph, checked against the
    fp32 graph on generated windows (once per model; later calls reuse it).

    Returns:
        (an onnxruntime session on the int8 graph, the lowest cosine against fp32).

    Raises:
        ModelLoadError: quantization failed or the cosine fell below MIN_COSINE_AUDIO_INT8
            (no int8 graph is kept; the fp32 graph stays in use).
    """
    cached = prepared.facts().get("audio_int8_cosine")
    if prepared.has(AUDIO_INT8_FILE) and cached is not None:
        return _session(prepared.path(AUDIO_INT8_FILE)), float(cached)
    feats = np.asarray(mel(_check_windows()), np.float32)
    ref = fp32_session.run(None, {"input_features": feats})[0]
    with prepared.staging() as tmp:
        graph = tmp / AUDIO_INT8_FILE
        logging.disable(logging.WARNING)
        try:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(prepared.path(AUDIO_ONNX_FILE)), str(graph), weight_type=QuantType.QInt8)
        except Exception as exc:
            raise ModelLoadError(f"could not quantize the audio tower ({type(exc).__name__}: {exc})") from None
        finally:
            logging.disable(logging.NOTSET)
        session = _session(graph)
        out = session.run(None, {"input_features": feats})[0]
        cosine = float(np.min(np.sum(out * ref, axis=1)))
        if cosine < MIN_COSINE_AUDIO_INT8:
            raise ModelLoadError(f"the int8 audio tower strays from fp32 (cosine {cosine:.5f}); indexing stays in fp32")
        prepared.install(tmp, AUDIO_INT8_FILE)
    prepared.record(audio_int8_cosine=cosine)
    return _session(prepared.path(AUDIO_INT8_FILE)), cosine
