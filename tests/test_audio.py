import numpy as np
import pytest
import soundfile as sf

from musicsearch.audio import SAMPLE_RATE, iter_windows, plan_starts, repeatpad
from musicsearch.errors import DecodeError

W = 480_000


def test_plan_starts_full_coverage_end_aligned():
    assert plan_starts(W, W) == [0]
    assert plan_starts(W - 1, W) == [0]
    assert plan_starts(2 * W, W) == [0, W]
    assert plan_starts(25 * SAMPLE_RATE, W) == [0, W, 15 * SAMPLE_RATE]


def test_plan_starts_max_windows_spread_evenly():
    total = 100 * SAMPLE_RATE  # 10 full windows
    assert plan_starts(total, W, 3) == [0, 45 * SAMPLE_RATE, 90 * SAMPLE_RATE]
    assert plan_starts(total, W, 1) == [45 * SAMPLE_RATE]
    assert plan_starts(total, W, 50) == plan_starts(total, W)


def test_repeatpad_matches_clap():
    x = np.arange(1, 4, dtype=np.float32)
    assert repeatpad(x, 10).tolist() == [1, 2, 3, 1, 2, 3, 1, 2, 3, 0]


def test_windows_of_a_long_track(tmp_path, noise, write_audio):
    x = noise(25)
    p = write_audio(tmp_path / "n.wav", x)
    ws = list(iter_windows(p))
    assert [(w.start, w.end) for w in ws] == [(0, 10), (10, 20), (15, 25)]
    assert all(w.samples.dtype == np.float32 and len(w.samples) == W for w in ws)
    ref = sf.read(p, dtype="float32")[0]
    np.testing.assert_array_equal(ws[2].samples, ref[15 * SAMPLE_RATE :])
    np.testing.assert_array_equal(ws[1].samples, ref[W : 2 * W])


def test_exact_window_and_short_track(tmp_path, write_audio, tone, noise):
    ws = list(iter_windows(write_audio(tmp_path / "ten.wav", noise(10))))
    assert [(w.start, w.end) for w in ws] == [(0, 10)]
    p = write_audio(tmp_path / "three.wav", tone(1000, 3))
    short = sf.read(p, dtype="float32")[0]
    (w,) = list(iter_windows(p))
    assert (w.start, w.end) == (0, 3)
    np.testing.assert_array_equal(w.samples, repeatpad(short, W))


def test_streaming_matches_whole_decode_on_a_long_file(tmp_path, noise, write_audio):
    x = noise(95, seed=3)
    p = write_audio(tmp_path / "long.flac", x)
    ref = sf.read(p, dtype="float32")[0]
    ws = list(iter_windows(p))
    assert [w.start for w in ws] == [0, 10, 20, 30, 40, 50, 60, 70, 80, 85]
    for w in ws:
        s = int(w.start * SAMPLE_RATE)
        np.testing.assert_array_equal(w.samples, ref[s : s + W])


@pytest.mark.parametrize("ext", ["flac", "ogg"])  # ogg: PyAV first, in ~1,000-sample frames
def test_long_file_is_decoded_in_bounded_memory(tmp_path, ext, write_audio, noise):
    import tracemalloc

    p = write_audio(tmp_path / f"long.{ext}", noise(300, 44_100, seed=2), 44_100)  # 55 MB at 48 kHz float32
    tracemalloc.start()
    try:
        n = 0
        for w in iter_windows(p):
            n += 1
            del w
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 30
    assert peak < 12 * 2**20  # a few windows and blocks, not the track


def test_max_windows(tmp_path, write_audio, noise):
    p = write_audio(tmp_path / "n.wav", noise(100))
    assert [w.start for w in iter_windows(p, max_windows=3)] == [0, 45, 90]
    assert [w.start for w in iter_windows(p, max_windows=1)] == [45]
    assert len(list(iter_windows(p, max_windows=100))) == 10


@pytest.mark.parametrize("ext, sr", [("wav", 48_000), ("flac", 44_100), ("ogg", 44_100), ("wav", 22_050)])
def test_seeked_windows_match_the_streamed_ones(tmp_path, ext, sr, write_audio, noise):
    p = write_audio(tmp_path / f"n.{ext}", noise(100, sr, seed=4), sr)
    full = {w.start: w for w in iter_windows(p)}
    sparse = list(iter_windows(p, max_windows=3))
    assert [w.start for w in sparse] == [0, 45, 90]
    for w in sparse:
        ref = full.get(w.start)
        if ref is None:  # 45 s is not a full-coverage start: compare with a slice of the decode
            ref_samples = np.concatenate([full[40].samples, full[50].samples])[5 * SAMPLE_RATE : 15 * SAMPLE_RATE]
        else:
            ref_samples = ref.samples
        tol = 1e-6 if sr == SAMPLE_RATE and ext == "wav" else 2e-3  # resampler edges, lossy codec
        assert np.abs(w.samples - ref_samples).max() < tol
        assert np.corrcoef(w.samples, ref_samples)[0, 1] > 0.9999


@pytest.mark.parametrize("sr", [22_050, 44_100, 96_000])
def test_resampled_to_48k(tmp_path, sr, write_audio, tone):
    p = write_audio(tmp_path / f"t{sr}.wav", tone(1000, 12, sr), sr)
    ws = list(iter_windows(p))
    assert [(w.start, w.end) for w in ws] == [(0, 10), (2, 12)]
    spec = np.abs(np.fft.rfft(ws[0].samples))
    assert abs(np.argmax(spec) * SAMPLE_RATE / W - 1000) < 1  # still a 1 kHz tone


def test_stereo_is_averaged_to_mono(tmp_path, write_audio, tone):
    left, right = tone(500, 2), tone(700, 2, amp=0.1)
    p = write_audio(tmp_path / "st.wav", np.stack([left, right], axis=1))
    (w,) = list(iter_windows(p))
    n = len(left)
    np.testing.assert_allclose(w.samples[:n], (left + right) / 2, atol=1e-4)


def test_six_channels_are_averaged_to_mono(tmp_path, write_audio, tone):
    chans = [tone(200 + 150 * c, 3, amp=0.05 * (c + 1)) for c in range(6)]
    p = write_audio(tmp_path / "surround.wav", np.stack(chans, axis=1))
    (w,) = list(iter_windows(p))
    np.testing.assert_allclose(w.samples[: len(chans[0])], np.mean(chans, axis=0), atol=1e-4)


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3", "m4a", "aiff"])
def test_formats_decode(tmp_path, ext, write_audio, tone):
    p = write_audio(tmp_path / f"x.{ext}", tone(1000, 12, 44_100, channels=2), 44_100)
    ws = list(iter_windows(p))
    assert len(ws) == 2
    assert ws[-1].end == pytest.approx(12, abs=0.1)  # codecs may add a little padding
    spec = np.abs(np.fft.rfft(ws[0].samples))
    assert abs(np.argmax(spec) * SAMPLE_RATE / W - 1000) < 2


def test_decode_failures_are_one_line_reasons(tmp_path, write_audio, tone):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"this is not audio " * 20)
    good = write_audio(tmp_path / "good.wav", tone(440, 3))
    truncated = tmp_path / "trunc.wav"
    truncated.write_bytes(good.read_bytes()[:30])
    nosamples = write_audio(tmp_path / "nosamples.wav", np.zeros(0, np.float32))
    for path, words in [
        (empty, "empty file"),
        (junk, "not audio"),
        (truncated, "not audio"),
        (nosamples, "no audio samples"),
        (tmp_path / "missing.wav", "cannot read"),
    ]:
        with pytest.raises(DecodeError) as err:
            list(iter_windows(path))
        assert words in err.value.reason
        assert "\n" not in str(err.value)


def test_file_without_audio_stream(tmp_path):
    av = pytest.importorskip("av")
    p = tmp_path / "video.m4a"
    with av.open(str(p), "w", format="mp4") as out:
        s = out.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for _ in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            for packet in s.encode(frame):
                out.mux(packet)
        for packet in s.encode(None):
            out.mux(packet)
    with pytest.raises(DecodeError, match="no audio stream"):
        list(iter_windows(p))


# --- a second decoder for every soundfile failure -------------------------------------------


def write_opus(path, data, sr=SAMPLE_RATE):
    """A real Opus file: PyAV's libopus encoder in an Ogg container (mono, 20-ms frames)."""
    import av

    with av.open(str(path), "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=sr)
        stream.layout = "mono"
        for i in range(0, len(data), 960):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(data[None, i : i + 960]), format="flt", layout="mono"
            )
            frame.sample_rate = sr
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def seek_fails_from(monkeypatch, frame):
    """libsndfile 1.2.2's Opus seek bug, forced: any seek to ``frame`` or later fails."""
    real_seek = sf.SoundFile.seek

    def seek(self, frames, whence=0):
        if frames >= frame:
            raise sf.LibsndfileError(3)  # "Supported file format but file is malformed."
        return real_seek(self, frames, whence)

    monkeypatch.setattr(sf.SoundFile, "seek", seek)


def test_opus_with_a_failing_seek_is_decoded_by_pyav(tmp_path, monkeypatch, noise):
    pytest.importorskip("av")
    x = noise(75, seed=5)
    p = write_opus(tmp_path / "t.opus", x)
    streamed = list(iter_windows(p))  # soundfile from the start: the reference
    assert [w.start for w in streamed][-1] == 65

    sf_alone_ok = True
    try:
        with sf.SoundFile(str(p)) as f:
            for pos in range(0, f.frames - 48_000, 50_000):
                f.seek(pos)
                f.read(100)
    except sf.LibsndfileError:
        sf_alone_ok = False
    if sf_alone_ok:  # this libsndfile seeks fine: force the failure the issue saw
        seek_fails_from(monkeypatch, 1_000_000)
        with sf.SoundFile(str(p)) as f, pytest.raises(sf.LibsndfileError):
            f.seek(1_000_000)

    ws = list(iter_windows(p, 10.0, 6))  # the CPU default budget
    assert [w.index for w in ws] == [0, 1, 2, 3, 4, 5]
    assert [w.start for w in ws] == [0, 13, 26, 39, 52, 65]
    assert [w.end for w in ws] == [10, 23, 36, 49, 62, 75]
    full = np.concatenate([streamed[i].samples for i in range(7)] + [streamed[7].samples[-5 * SAMPLE_RATE :]])
    assert len(full) == 75 * SAMPLE_RATE
    for w in ws:
        assert len(w.samples) == W and np.sqrt(np.mean(w.samples**2)) > 0.1  # not silent
        s = int(w.start * SAMPLE_RATE)
        assert np.abs(w.samples - full[s : s + W]).max() < 1e-3


def test_both_decoders_named_when_both_fail(tmp_path, monkeypatch, noise):
    pytest.importorskip("av")
    import musicsearch.audio as audio

    p = write_opus(tmp_path / "t.opus", noise(75, seed=5))
    seek_fails_from(monkeypatch, 1_000_000)

    def no_pyav(path):
        raise audio._Failed("not audio, or a format FFmpeg cannot read (forced)")

    monkeypatch.setattr(audio, "_pyav_source", no_pyav)
    got = []
    with pytest.raises(DecodeError) as err:
        for w in iter_windows(p, 10.0, 6):
            got.append(w.start)
    assert got == [0]  # yielded before the failing seek (soundfile seeks after each read too)
    assert err.value.reason == (
        "soundfile: decoding failed at 12.9 s (Supported file format but file is malformed); "
        "PyAV: not audio, or a format FFmpeg cannot read (forced)"
    )


def test_read_failure_part_way_switches_decoder_without_repeating_windows(tmp_path, monkeypatch, noise, write_audio):
    pytest.importorskip("av")
    x = noise(35, seed=6)
    p = write_audio(tmp_path / "n.flac", x)
    ref = sf.read(p, dtype="float32")[0]
    real_blocks = sf.SoundFile.blocks

    def blocks(self, *args, **kwargs):
        read = 0
        for b in real_blocks(self, *args, **kwargs):
            if read > 22 * SAMPLE_RATE:
                raise sf.LibsndfileError(3)
            read += len(b)
            yield b

    monkeypatch.setattr(sf.SoundFile, "blocks", blocks)
    ws = list(iter_windows(p))
    assert [(w.index, w.start) for w in ws] == [(0, 0), (1, 10), (2, 20), (3, 25)]
    for w in ws:
        s = int(w.start * SAMPLE_RATE)
        np.testing.assert_allclose(w.samples, ref[s : s + W], atol=1e-6)


# --- Vorbis streamed whole: PyAV first, libsndfile second --------------------------------------


def soundfile_windows(p, max_windows=None):
    """The windows soundfile alone makes of ``p`` (PyAV made unable to open anything)."""
    import musicsearch.audio as audio

    real = audio._pyav_source
    audio._pyav_source = lambda path: (_ for _ in ()).throw(audio._Failed("off"))
    try:
        return list(iter_windows(p, 10.0, max_windows))
    finally:
        audio._pyav_source = real


def count_calls(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_pyav_drops_samples_before_time_zero(tmp_path, monkeypatch, write_audio, noise):
    """Some encoders' Vorbis files start with a frame before time 0 (pts -128): FFmpeg hands
    those samples out, libsndfile does not. PyAV's source drops them, so both decoders agree."""
    from fractions import Fraction

    av = pytest.importorskip("av")
    import musicsearch.audio as audio

    p = write_audio(tmp_path / "n.ogg", noise(12, 44_100, seed=8), 44_100)
    ref = np.concatenate(list(audio._soundfile_source(p).blocks))
    plain = np.concatenate(list(audio._pyav_source(p).blocks))
    assert len(plain) == len(ref) and np.abs(plain - ref).max() < 1e-6
    real_open = av.open

    class EarlyStart:
        """The real container, with a 128-sample frame at pts -128 before its first frame."""

        def __init__(self, container):
            self.container = container

        def __getattr__(self, name):
            return getattr(self.container, name)

        def decode(self, stream):
            early = av.AudioFrame.from_ndarray(np.full((1, 128), 0.5, np.float32), format="fltp", layout="mono")
            early.sample_rate, early.pts, early.time_base = 44_100, -128, Fraction(1, 44_100)
            yield early
            yield from self.container.decode(stream)

    monkeypatch.setattr(av, "open", lambda path: EarlyStart(real_open(path)))
    got = np.concatenate(list(audio._pyav_source(p).blocks))
    assert len(got) == len(ref)
    assert np.abs(got - ref).max() < 1e-6


def test_vorbis_streamed_whole_is_decoded_by_pyav_first(tmp_path, monkeypatch, write_audio, noise):
    pytest.importorskip("av")
    import musicsearch.audio as audio

    p = write_audio(tmp_path / "n.ogg", noise(35, 44_100, seed=9), 44_100)
    ref = soundfile_windows(p)
    pyav = count_calls(monkeypatch, audio, "_pyav_source")
    sf_blocks = count_calls(monkeypatch, audio, "_soundfile_blocks")
    ws = list(iter_windows(p))
    assert (len(pyav), len(sf_blocks)) == (1, 0)
    assert [w.start for w in ws] == [w.start for w in ref] == [0, 10, 20, 25]
    for w, r in zip(ws, ref, strict=True):
        assert np.abs(w.samples - r.samples).max() < 1e-5

    pyav.clear()
    sparse = list(iter_windows(p, 10.0, 2))  # a window budget: libsndfile seeks, PyAV is not needed
    assert (len(pyav), [w.start for w in sparse]) == (0, [0, 25])
    flac = write_audio(tmp_path / "n.flac", noise(35, 44_100, seed=9), 44_100)
    list(iter_windows(flac))
    assert len(pyav) == 0  # other formats: libsndfile first, as before


def test_vorbis_pyav_failing_part_way_hands_over_to_soundfile(tmp_path, monkeypatch, write_audio, noise):
    pytest.importorskip("av")
    import musicsearch.audio as audio

    p = write_audio(tmp_path / "n.ogg", noise(35, 44_100, seed=10), 44_100)
    ref = soundfile_windows(p)
    real = audio._pyav_source

    def failing(path):
        source = real(path)

        def blocks():
            read = 0
            for b in source.blocks:
                if read > 22 * 44_100:
                    raise audio._Failed("decoding failed (forced)")
                read += len(b)
                yield b

        return audio.Source(source.sample_rate, source.frames, blocks())

    monkeypatch.setattr(audio, "_pyav_source", failing)
    ws = list(iter_windows(p))
    assert [(w.index, w.start) for w in ws] == [(0, 0), (1, 10), (2, 20), (3, 25)]
    for w, r in zip(ws, ref, strict=True):
        assert np.abs(w.samples - r.samples).max() < 1e-5

    def no_soundfile(f):
        raise audio._Failed("decoding failed (forced too)")
        yield  # a generator, like the real one

    monkeypatch.setattr(audio, "_soundfile_blocks", no_soundfile)
    pyav = count_calls(monkeypatch, audio, "_pyav_source")
    got = []
    with pytest.raises(DecodeError) as err:
        for w in iter_windows(p):
            got.append(w.start)
    assert got == [0, 10]  # PyAV's windows before its failure, each once
    assert err.value.reason == "soundfile: decoding failed (forced too); PyAV: decoding failed (forced)"
    assert len(pyav) == 1  # PyAV is not tried a second time


def test_junk_names_both_decoders(tmp_path):
    junk = tmp_path / "junk.flac"
    junk.write_bytes(b"this is not audio " * 20)
    with pytest.raises(DecodeError) as err:
        list(iter_windows(junk, 10.0, 6))
    assert err.value.reason.startswith("soundfile: Format not recognised; PyAV: ")


# --- truncated files ------------------------------------------------------------------------


def ogg_page_ends(data: bytes) -> list[int]:
    ends, at = [], 0
    while at < len(data):
        assert data[at : at + 4] == b"OggS"
        n = data[at + 26]
        at += 27 + n + sum(data[at + 27 : at + 27 + n])
        ends.append(at)
    return ends


def test_truncated_ogg_gets_a_warning(tmp_path, write_audio, noise):
    from musicsearch.audio import truncation_warning

    p = write_audio(tmp_path / "full.ogg", noise(60, 44_100, seed=7), 44_100)
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(p.read_bytes()[:20_000])
    decoded = sf.info(str(cut)).duration  # what the decoder gets from the first 20 KB
    assert 0.5 < decoded < 3
    assert truncation_warning(cut, decoded) == (
        f"decoded {decoded:.1f} s, and the file ends part-way through an Ogg page (truncated?)"
    )
    assert truncation_warning(p, 60.0) is None
    assert truncation_warning(str(p), sf.info(str(p)).duration) is None

    data = p.read_bytes()  # cut on a page boundary: complete pages, but no end-of-stream page
    at_page = tmp_path / "page.ogg"
    at_page.write_bytes(data[: ogg_page_ends(data)[10]])
    assert (
        truncation_warning(at_page, 2.0) == "decoded 2.0 s, and its last Ogg page does not end the stream (truncated?)"
    )


@pytest.mark.parametrize("ext", ["flac", "wav", "aiff"])
def test_truncated_file_with_a_declared_length(tmp_path, ext, write_audio, noise):
    from musicsearch.audio import truncation_warning

    p = write_audio(tmp_path / f"full.{ext}", noise(60, 44_100, seed=8), 44_100)
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(p.read_bytes()[: p.stat().st_size // 3])
    assert truncation_warning(cut, 20.0) == "decoded 20.0 s of the 60.0 s its header declares (truncated?)"
    assert truncation_warning(p, 60.0) is None
    assert truncation_warning(p, 54.5) is None  # more than 90 % of it
    assert truncation_warning(p, 53.5) == "decoded 53.5 s of the 60.0 s its header declares (truncated?)"


def test_truncation_unknown_length_is_none(tmp_path):
    from musicsearch.audio import truncation_warning

    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"this is not audio " * 20)
    assert truncation_warning(junk, 1.0) is None
    assert truncation_warning(tmp_path / "missing.ogg", 1.0) is None
