"""Tests of musicsearch/randmodel.py: the random CLAP folders it writes load back through
transformers with the promised architecture and preprocessing, built again from the same seed
they are the same, ``sharpen`` scales the audio tower only, and the full-size architecture
has laion/larger_clap_general's 193,913,882 parameters (counted on the meta device: no weights
are allocated, so the 776 MB model is never built here; tests/test_full_size.py builds it)."""

import json

import numpy as np
import pytest
import torch
from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor

from musicsearch.randmodel import (
    FULL,
    HUB_PREPROCESSING,
    SIZES,
    TINY,
    Sharpening,
    build_random_clap,
    build_tokenizer,
    sharpen,
)


def config_of(spec: dict) -> ClapConfig:
    return ClapConfig(
        text_config=dict(spec["text"]), audio_config=dict(spec["audio"]), projection_dim=spec["projection_dim"]
    )


def weights(folder) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in ClapModel.from_pretrained(folder).state_dict().items()}


def test_the_full_size_architecture_has_the_hubs_parameter_count():
    with torch.device("meta"):
        model = ClapModel(config_of(FULL))
    assert sum(p.numel() for p in model.parameters()) == 193_913_882
    assert (model.config.projection_dim, model.config.text_config.vocab_size) == (512, 50265)
    assert model.config.audio_config.depths == [2, 2, 12, 2]


def test_the_tiny_folder_loads_back_with_its_promised_config(tiny_model):
    model = ClapModel.from_pretrained(tiny_model)
    text, audio = model.config.text_config, model.config.audio_config
    assert model.config.projection_dim == 16 and not model.training  # saved in eval mode
    assert [getattr(text, k) for k in TINY["text"]] == list(TINY["text"].values())
    assert text.vocab_size == 400  # the tokenizer trained here: its own size, not RoBERTa's
    assert [getattr(audio, k) for k in TINY["audio"]] == list(TINY["audio"].values())
    assert sum(p.numel() for p in model.parameters()) == 112_964
    # the input geometry of the real model: 64 mel bins, 1001 frames of 10 ms (10 s at 48 kHz)
    processor = ClapProcessor.from_pretrained(tiny_model)
    fe = processor.feature_extractor
    assert {k: getattr(fe, k) for k in HUB_PREPROCESSING} == HUB_PREPROCESSING
    features = processor(audio=[np.zeros(48_000 * 10, np.float32)], sampling_rate=48_000, return_tensors="pt")
    assert tuple(features["input_features"].shape) == (1, 1, 1001, 64)
    tokens = processor(text=["solo piano, slow and sad"], return_tensors="pt")
    out = model.get_text_features(**tokens)
    assert tuple(getattr(out, "pooler_output", out).shape) == (1, 16)


def test_the_preprocessing_is_the_hubs():
    assert HUB_PREPROCESSING == {
        "feature_size": 64,
        "sampling_rate": 48_000,
        "hop_length": 480,
        "max_length_s": 10,
        "fft_window_size": 1024,
        "padding_value": 0.0,
        "return_attention_mask": False,
        "frequency_min": 50,
        "frequency_max": 14_000,
        "top_db": None,
        "truncation": "rand_trunc",
        "padding": "repeatpad",
    }
    fe = ClapFeatureExtractor(**HUB_PREPROCESSING)
    assert (fe.nb_max_samples, fe.nb_frequency_bins) == (480_000, 513)


def test_the_same_seed_builds_the_same_model_and_another_seed_another(tiny_model, tmp_path):
    again = build_random_clap(tmp_path / "again", "tiny", seed=0)
    assert again == tmp_path / "again"
    first, second = weights(tiny_model), weights(again)
    assert first.keys() == second.keys() and all(np.array_equal(first[k], second[k]) for k in first)
    assert json.loads((again / "config.json").read_text()) == json.loads((tiny_model / "config.json").read_text())
    other = weights(build_random_clap(tmp_path / "other", "tiny", seed=1))
    changed = [k for k in first if not np.array_equal(first[k], other[k])]
    assert "audio_projection.linear1.weight" in changed and "text_projection.linear1.weight" in changed


def test_an_unknown_size_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError) as err:
        build_random_clap(tmp_path / "m", "huge")
    assert str(err.value) == "unknown size 'huge'; one of tiny, small, full"
    assert not (tmp_path / "m").exists()


def test_the_tokenizer_is_byte_level_bpe_with_robertas_special_tokens():
    tok = build_tokenizer(50265)
    assert len(tok) == 400  # capped: a few prompts give no more
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 4]) == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    ids = tok("warm analog synth pads")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and tok.decode(ids, skip_special_tokens=True) == "warm analog synth pads"
    assert len(build_tokenizer(300)) == 300  # (the byte alphabet and the specials are 261 at least)


def test_sharpen_scales_the_audio_weights_and_sets_the_input_norm():
    torch.manual_seed(0)
    model = ClapModel(config_of(TINY)).eval()
    with torch.no_grad():  # the position bias tables start at zero: make a scaling of them show
        for name, param in model.named_parameters():
            if "relative_position" in name:
                param.fill_(0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sharpen(model, Sharpening(gain=3.0, mel_mean_db=-20.0, mel_std_db=10.0))
    after = model.state_dict()
    scaled, kept = set(), set()
    for name, _ in model.named_parameters():
        if torch.equal(after[name], before[name]):
            kept.add(name)
        else:
            assert torch.allclose(after[name], 3.0 * before[name]), name
            scaled.add(name)
    audio = {n for n, p in model.named_parameters() if n.startswith(("audio_model.", "audio_projection."))}
    assert scaled == {n for n in audio if after[n].ndim >= 2 and "relative_position" not in n}
    assert any("relative_position" in n for n in audio & kept) and any(n.startswith("text_") for n in kept)
    norm = model.audio_model.audio_encoder.batch_norm
    assert norm.running_mean.tolist() == [-20.0] * 64 and norm.running_var.tolist() == [100.0] * 64


def test_only_small_is_sharpened_and_it_keeps_that_when_saved(tmp_path):
    assert {size: sharpening for size, (_, sharpening) in SIZES.items()} == {
        "tiny": None,
        "small": Sharpening(gain=15.0, mel_mean_db=-20.0, mel_std_db=10.0),
        "full": None,
    }
    small = ClapModel.from_pretrained(build_random_clap(tmp_path / "small", "small", seed=0))
    norm = small.audio_model.audio_encoder.batch_norm
    assert norm.running_mean.tolist() == [-20.0] * 64 and norm.running_var.tolist() == [100.0] * 64
    assert (small.config.projection_dim, small.config.audio_config.hidden_size) == (32, 128)
