import numpy as np
import pytest
from transformers import ClapFeatureExtractor

from musicsearch.audio import repeatpad
from musicsearch.features import LogMel, MelSpec, NumpyLogMel
from musicsearch.randmodel import HUB_PREPROCESSING

W = 480_000
# Both implementations against ClapFeatureExtractor, in dB: measured 3.8e-6 (float32 rounding
# of the output); numpy against torch: measured 0.0.
TOL_REFERENCE = 1e-4
TOL_NUMPY_TORCH = 1e-5


@pytest.fixture(scope="module")
def fe():
    return ClapFeatureExtractor(**HUB_PREPROCESSING)


CASES = {  # each built from the tone and noise fixtures
    "noise": lambda tone, noise: noise(10, amp=0.3),
    "loud noise": lambda tone, noise: noise(10, amp=1.0, seed=5),
    "tone 440": lambda tone, noise: tone(440, 10, amp=0.5),
    "quiet tone 3k": lambda tone, noise: tone(3000, 10, amp=1e-3),
    "silence": lambda tone, noise: np.zeros(W, np.float32),
    "short clip": lambda tone, noise: tone(1000, 0.6),
    "short noise": lambda tone, noise: noise(3.3, seed=9),
}


def _torch_mel(spec, x):
    return LogMel(spec)(x).numpy()


IMPLEMENTATIONS = {"torch": _torch_mel, "numpy": lambda spec, x: NumpyLogMel(spec)(x)}


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", CASES)
def test_log_mel_equals_clap_feature_extractor(fe, name, impl, tone, noise):
    x = CASES[name](tone, noise)
    ref = fe(x, sampling_rate=48_000, return_tensors="np")["input_features"][0, 0]
    window = x if len(x) == W else repeatpad(x, W)
    ours = IMPLEMENTATIONS[impl](MelSpec.from_feature_extractor(fe), window[None])[0, 0]
    assert ours.shape == ref.shape == (1001, 64)
    assert ours.dtype == np.float32
    assert np.abs(ours - ref).max() < TOL_REFERENCE


@pytest.mark.parametrize("name", CASES)
def test_numpy_equals_torch(fe, name, tone, noise):
    x = CASES[name](tone, noise)
    window = x if len(x) == W else repeatpad(x, W)
    spec = MelSpec.from_feature_extractor(fe)
    assert np.abs(NumpyLogMel(spec)(window) - LogMel(spec)(window).numpy()).max() <= TOL_NUMPY_TORCH


def test_numpy_reused_buffers_are_per_thread_and_survive_pickling(fe, noise):
    """The float64 buffers are reused per thread: threads running at once, a pickled copy (as a
    decode worker gets it) and windows of another length give what a fresh instance gives."""
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    spec = MelSpec.from_feature_extractor(fe)
    windows = [noise(10, amp=0.3, seed=s) for s in range(6)]
    expected = [NumpyLogMel(spec)(w) for w in windows]
    shared = NumpyLogMel(spec)
    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(shared, windows * 3))
    for i, g in enumerate(got):
        np.testing.assert_array_equal(g, expected[i % 6])
    copy = pickle.loads(pickle.dumps(shared))
    np.testing.assert_array_equal(copy(windows[0]), expected[0])
    short = noise(4, seed=7)
    assert copy(short).shape == (1, 1, 401, 64)  # another frame count: buffers of its own size
    np.testing.assert_array_equal(copy(short), NumpyLogMel(spec)(short))
    np.testing.assert_array_equal(copy(windows[1]), expected[1])


class _SymmetricHann(NumpyLogMel):
    """A plausible slip: numpy's symmetric Hann instead of the periodic one."""

    def __init__(self, spec):
        super().__init__(spec)
        self.hann = np.hanning(spec.n_fft)


def test_the_tolerance_sees_a_symmetric_window_and_a_small_bias(fe, tone):
    x = tone(440, 10, amp=0.5)
    ref = fe(x, sampling_rate=48_000, return_tensors="np")["input_features"][0, 0]
    spec = MelSpec.from_feature_extractor(fe)
    good = NumpyLogMel(spec)(x)[0, 0]
    assert np.abs(good - ref).max() < TOL_REFERENCE  # quiet on the right one
    assert np.abs(_SymmetricHann(spec)(x)[0, 0] - ref).max() > 100 * TOL_REFERENCE  # measured 1.3 dB
    assert np.abs((good + 2 * TOL_REFERENCE) - ref).max() > TOL_REFERENCE  # a 0.0002 dB bias fails it


def test_numpy_log_mel_imports_no_torch(fe, tmp_path):
    import subprocess
    import sys

    spec = MelSpec.from_feature_extractor(fe)
    np.save(tmp_path / "filters.npy", spec.mel_filters)
    code = (
        "import sys, numpy as np\n"
        "from musicsearch.features import MelSpec, NumpyLogMel\n"
        f"spec = MelSpec.from_values({spec.values()!r}, np.load({str(tmp_path / 'filters.npy')!r}))\n"
        "out = NumpyLogMel(spec)(np.zeros((2, 480000), np.float32))\n"
        "assert out.shape == (2, 1, 1001, 64), out.shape\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_values_round_trip_and_refuse_a_filterbank_that_does_not_fit(fe):
    spec = MelSpec.from_feature_extractor(fe)
    back = MelSpec.from_values(spec.values(), spec.mel_filters)
    assert back.values() == spec.values()
    np.testing.assert_array_equal(back.mel_filters, spec.mel_filters)
    with pytest.raises(ValueError, match="does not fit"):
        MelSpec.from_values(spec.values(), spec.mel_filters[:100])
    with pytest.raises(ValueError, match="incomplete"):
        MelSpec.from_values({"n_fft": 1024}, spec.mel_filters)


def test_batched_equals_one_by_one(fe, noise):
    mel = LogMel(MelSpec.from_feature_extractor(fe))
    batch = np.stack([noise(10, seed=i) for i in range(3)])
    together = mel(batch).numpy()
    for i in range(3):
        np.testing.assert_allclose(together[i], mel(batch[i]).numpy()[0], atol=1e-5)


def test_fusion_extractor_refused():
    with pytest.raises(ValueError, match="fusion"):
        MelSpec.from_feature_extractor(ClapFeatureExtractor())
