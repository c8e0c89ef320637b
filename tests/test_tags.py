import mutagen
import numpy as np
import pytest
import soundfile as sf

from musicsearch.tags import read_tags

EXPECTED = ("Song", "Artist", "Album", "Various", "Jazz", 1997, 3)


def fields(t):
    return (t.title, t.artist, t.album, t.albumartist, t.genre, t.year, t.tracknumber)


def test_tags_read_from_flac(tmp_path, write_audio, tone):
    p = write_audio(tmp_path / "x.flac", tone(440, 2))
    f = mutagen.File(p, easy=True)
    f["title"] = "Song"
    f["artist"] = "Artist"
    f["album"] = "Album"
    f["albumartist"] = "Various"
    f["genre"] = "Jazz"
    f["date"] = "1997-05-01"
    f["tracknumber"] = "3/12"
    f.save()
    t = read_tags(p)
    assert fields(t) == EXPECTED
    assert abs(t.duration - 2.0) < 0.01


def test_title_falls_back_to_file_name(tmp_path, write_audio, tone):
    p = write_audio(tmp_path / "My Track.wav", tone(440, 1))
    t = read_tags(p)
    assert t.title == "My Track" and t.artist is None and t.year is None


def test_garbage_file_still_gets_a_title(tmp_path):
    p = tmp_path / "junk.mp3"
    p.write_bytes(b"\x00" * 100)
    assert read_tags(p).title == "junk"


# --- one generated, tagged file per container -----------------------------------------------


def pyav_write(tone, path, container, codec, seconds=2.0, sr=44_100, frame_size=1024):
    """Encode a tone (from the ``tone`` fixture) with PyAV (formats soundfile cannot write)."""
    import av

    x = tone(440, seconds, sr)
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=sr)
        stream.layout = "mono"
        if codec == "wmav2":
            stream.bit_rate = 128_000
        formats = [f.name for f in stream.codec_context.codec.audio_formats]
        fmt = next((f for f in ("fltp", "flt") if f in formats), formats[0])
        for i in range(0, len(x), frame_size):
            chunk = x[i : i + frame_size][None, :]
            if fmt.startswith("s16"):
                chunk = (chunk * 32767).astype(np.int16)
            elif fmt.startswith("s32"):
                chunk = (chunk * 2**31 * 0.99).astype(np.int32)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format=fmt, layout="mono")
            frame.sample_rate = sr
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def id3_frames(tags):
    from mutagen import id3

    tags.add(id3.TIT2(encoding=3, text="Song"))
    tags.add(id3.TPE1(encoding=3, text="Artist"))
    tags.add(id3.TALB(encoding=3, text="Album"))
    tags.add(id3.TPE2(encoding=3, text="Various"))
    tags.add(id3.TCON(encoding=3, text="(8)"))  # ID3v1 genre number 8: Jazz
    tags.add(id3.TDRC(encoding=3, text="1997-05-01"))
    tags.add(id3.TRCK(encoding=3, text="3/12"))


def vorbis_comments(f):
    f["TITLE"] = "Song"
    f["ARTIST"] = "Artist"
    f["ALBUM"] = "Album"
    f["ALBUMARTIST"] = "Various"
    f["GENRE"] = "Jazz"
    f["DATE"] = "1997"
    f["TRACKNUMBER"] = "3"


def make_mp3(tmp_path, write_audio, tone):
    from mutagen.mp3 import MP3

    p = write_audio(tmp_path / "x.mp3", tone(440, 2))
    f = MP3(p)
    f.add_tags()
    id3_frames(f.tags)
    f.save()
    return p


def make_aiff(tmp_path, write_audio, tone):
    from mutagen.aiff import AIFF

    p = write_audio(tmp_path / "x.aiff", tone(440, 2))
    f = AIFF(p)
    f.add_tags()
    id3_frames(f.tags)
    f.save()
    return p


def make_wav_id3(tmp_path, write_audio, tone):
    from mutagen.wave import WAVE

    p = write_audio(tmp_path / "x.wav", tone(440, 2))
    f = WAVE(p)
    f.add_tags()
    id3_frames(f.tags)
    f.save()
    return p


def make_wav_riff_info(tmp_path, write_audio, tone):
    p = tmp_path / "x.wav"
    with sf.SoundFile(str(p), "w", 48_000, 1) as f:
        f.title, f.artist, f.album, f.genre, f.date, f.tracknumber = "Song", "Artist", "Album", "Jazz", "1997", "3"
        f.write(tone(440, 2))
    return p


def make_ogg(tmp_path, write_audio, tone):
    from mutagen.oggvorbis import OggVorbis

    p = write_audio(tmp_path / "x.ogg", tone(440, 2))
    f = OggVorbis(p)
    vorbis_comments(f)
    f.save()
    return p


def make_opus(tmp_path, write_audio, tone):
    pytest.importorskip("av")
    from mutagen.oggopus import OggOpus

    p = pyav_write(tone, tmp_path / "x.opus", "ogg", "libopus", sr=48_000, frame_size=960)
    f = OggOpus(p)
    vorbis_comments(f)
    f.save()
    return p


def make_m4a(tmp_path, write_audio, tone):
    from mutagen.mp4 import MP4

    p = write_audio(tmp_path / "x.m4a", tone(440, 2))
    f = MP4(p)
    f["\xa9nam"], f["\xa9ART"], f["\xa9alb"], f["aART"] = "Song", "Artist", "Album", "Various"
    f["\xa9gen"] = "Jazz"
    f["\xa9day"] = "1997-05-01T00:00:00Z"
    f["trkn"] = [(3, 12)]
    f.save()
    return p


def make_wma(tmp_path, write_audio, tone):
    pytest.importorskip("av")
    from mutagen.asf import ASF, ASFDWordAttribute

    p = pyav_write(tone, tmp_path / "x.wma", "asf", "wmav2")
    f = ASF(p)
    f["Title"], f["Author"], f["WM/AlbumTitle"], f["WM/AlbumArtist"] = "Song", "Artist", "Album", "Various"
    f["WM/Genre"], f["WM/Year"] = "Jazz", "1997"
    f["WM/TrackNumber"] = [ASFDWordAttribute(3)]
    f.save()
    return p


def make_wavpack(tmp_path, write_audio, tone):
    pytest.importorskip("av")
    from mutagen.wavpack import WavPack

    p = pyav_write(tone, tmp_path / "x.wv", "wv", "wavpack")
    f = WavPack(p)
    if f.tags is None:
        f.add_tags()
    f["Title"], f["Artist"], f["Album"], f["Album Artist"] = "Song", "Artist", "Album", "Various"
    f["Genre"], f["Year"], f["Track"] = "Jazz", "1997", "3/12"
    f.save()
    return p


def make_mp3_apev2(tmp_path, write_audio, tone):
    from mutagen.apev2 import APEv2

    p = write_audio(tmp_path / "x.mp3", tone(440, 2))
    tags = APEv2()
    tags["Title"], tags["Artist"], tags["Album"], tags["Album Artist"] = "Song", "Artist", "Album", "Various"
    tags["Genre"], tags["Year"], tags["Track"] = "Jazz", "1997", "3"
    tags.save(p)
    return p


@pytest.mark.parametrize(
    "make",
    [make_mp3, make_aiff, make_wav_id3, make_ogg, make_opus, make_m4a, make_wma, make_wavpack, make_mp3_apev2],
)
def test_every_tag_format(tmp_path, make, write_audio, tone):
    p = make(tmp_path, write_audio, tone)
    t = read_tags(p)
    assert fields(t) == EXPECTED
    assert t.duration == pytest.approx(2.0, abs=0.1)


def test_wav_riff_info_chunk(tmp_path, write_audio, tone):
    t = read_tags(make_wav_riff_info(tmp_path, write_audio, tone))
    assert fields(t) == ("Song", "Artist", "Album", None, "Jazz", 1997, 3)  # RIFF INFO has no album artist


def test_asf_zero_based_track_and_untagged_wma(tmp_path, tone):
    pytest.importorskip("av")
    from mutagen.asf import ASF, ASFDWordAttribute

    p = pyav_write(tone, tmp_path / "Plain Name.wma", "asf", "wmav2")
    assert fields(read_tags(p)) == ("Plain Name", None, None, None, None, None, None)
    f = ASF(p)
    f["WM/Track"] = [ASFDWordAttribute(4)]  # WM/Track counts from 0
    f.save()
    assert read_tags(p).tracknumber == 5


def test_mp4_numeric_genre():
    from musicsearch.tags import _texts

    assert _texts("gnre", [9]) == ["Jazz"]  # what mutagen returns for an iTunes 'gnre' atom
    assert _texts("gnre", [0]) == []


# Tempo and key tags, one test per format: the value the index stores, in its own notation.


def test_tempo_and_key_from_id3_tbpm_tkey(tmp_path, write_audio, tone):
    from mutagen.id3 import ID3, TBPM, TKEY

    p = write_audio(tmp_path / "x.mp3", tone(440, 1))
    id3 = ID3()
    id3.add(TBPM(encoding=3, text=["124"]))
    id3.add(TKEY(encoding=3, text=["F#m"]))
    id3.save(p)
    t = read_tags(p)
    assert (t.bpm, t.key) == (124.0, "F# minor")


@pytest.mark.parametrize("suffix", [".flac", ".ogg"])
def test_tempo_and_key_from_vorbis_bpm_initialkey(tmp_path, write_audio, tone, suffix):
    p = write_audio(tmp_path / f"x{suffix}", tone(440, 1))
    f = mutagen.File(p)
    f["BPM"] = "127.5"
    f["INITIALKEY"] = "8A"
    f.save()
    t = read_tags(p)
    assert (t.bpm, t.key) == (127.5, "A minor")


def test_tempo_and_key_from_mp4_tmpo_and_freeform_key(tmp_path, write_audio, tone):
    from mutagen.mp4 import MP4FreeForm

    p = write_audio(tmp_path / "x.m4a", tone(440, 1))
    f = mutagen.File(p)
    f["tmpo"] = [98]
    f["----:com.apple.iTunes:initialkey"] = [MP4FreeForm(b"Ebm")]
    f.save()
    t = read_tags(p)
    assert (t.bpm, t.key) == (98.0, "Eb minor")


def test_no_or_unusable_tempo_and_key_tags(tmp_path, write_audio, tone):
    p = write_audio(tmp_path / "x.flac", tone(440, 1))
    assert (read_tags(p).bpm, read_tags(p).key) == (None, None)
    f = mutagen.File(p)
    f["BPM"] = "0"  # written by players for "unknown"
    f["INITIALKEY"] = "o"  # off key
    f.save()
    assert (read_tags(p).bpm, read_tags(p).key) == (None, None)
