import numpy as np
import pytest
from conftest import noise, tone
from transformers import ClapFeatureExtractor

from musicsearch.audio import repeatpad
from musicsearch.features import LogMel, MelSpec
from musicsearch.randmodel import HUB_PREPROCESSING

W = 480_000


@pytest.fixture(scope="module")
def fe():
    return ClapFeatureExtractor(**HUB_PREPROCESSING)


CASES = {
    "noise": lambda: noise(10, amp=0.3),
    "loud noise": lambda: noise(10, amp=1.0, seed=5),
    "tone 440": lambda: tone(440, 10, amp=0.5),
    "quiet tone 3k": lambda: tone(3000, 10, amp=1e-3),
    "silence": lambda: np.zeros(W, np.float32),
    "short clip": lambda: tone(1000, 0.6),
    "short noise": lambda: noise(3.3, seed=9),
}


@pytest.mark.parametrize("name", CASES)
def test_log_mel_equals_clap_feature_extractor(fe, name):
    x = CASES[name]()
    ref = fe(x, sampling_rate=48_000, return_tensors="np")["input_features"][0, 0]
    window = x if len(x) == W else repeatpad(x, W)
    ours = LogMel(MelSpec.from_feature_extractor(fe))(window[None]).numpy()[0, 0]
    assert ours.shape == ref.shape == (1001, 64)
    assert np.abs(ours - ref).max() < 1e-3


def test_batched_equals_one_by_one(fe):
    mel = LogMel(MelSpec.from_feature_extractor(fe))
    batch = np.stack([noise(10, seed=i) for i in range(3)])
    together = mel(batch).numpy()
    for i in range(3):
        np.testing.assert_allclose(together[i], mel(batch[i]).numpy()[0], atol=1e-5)


def test_fusion_extractor_refused():
    with pytest.raises(ValueError, match="fusion"):
        MelSpec.from_feature_extractor(ClapFeatureExtractor())
