"""Audio and subtitle tracks carried beside the GVC video in Matroska, packet for packet: demuxed from a
real file with PyAV (ffmpeg_bridge.tracks), written by our muxer, read back by our demuxer, by PyAV and by
the ffmpeg binary."""

from __future__ import annotations

import random
import subprocess
from fractions import Fraction

import av
import pytest

from container.matroska import COPYABLE_CODECS, MatroskaReader, MatroskaWriter, MkvPacket, copied_track
from ffmpeg_bridge.tracks import TrackCopier
from test_matroska import NonSeekable

SEQ_HEADER = bytes(range(100))
FPS = Fraction(30000, 1001)
SRT = "1\n00:00:00,100 --> 00:00:00,900\nhello\n\n2\n00:00:01,000 --> 00:00:01,500\nworld ✓\n"


@pytest.fixture(scope="module")
def source(tmp_path_factory, clip, ffmpeg):
    """A real clip's video with a 2 s AAC sine and a SubRip track, as a phone or an editor would mux them."""
    d = tmp_path_factory.mktemp("tracks")
    (d / "s.srt").write_text(SRT)
    src = d / "src.mkv"
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(clip("carphone_176x144.mp4")), "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=48000:duration=2", "-i", str(d / "s.srt"), "-map", "0:v",
                    "-map", "1:a", "-map", "2:s", "-t", "2", "-c:v", "libx264", "-c:a", "aac", "-b:a", "32k",
                    "-c:s", "srt", "-metadata:s:a", "language=fra", str(src)], check=True)
    return src


def source_packets(path, kind):
    with av.open(str(path)) as c:
        s = getattr(c.streams, kind)[0]
        return [(bytes(p), round(p.pts * p.time_base * 1000)) for p in c.demux(s) if p.size]


def mux(src, sink):
    """GVC units (one per 16 frames) and the source's audio/subtitle packets, interleaved by time."""
    rng = random.Random(4)
    video = [MkvPacket(rng.randbytes(rng.randint(50, 400)), 16 * i, 16, i % 2 == 0) for i in range(4)]
    with TrackCopier(src, COPYABLE_CODECS) as copier:
        tracks = [copied_track(t) for t in copier.tracks]
        assert [t.codec_id for t in tracks] == ["A_AAC", "S_TEXT/UTF8"] and copier.skipped == []
        with MatroskaWriter(sink, width=176, height=144, fps=FPS, codec_private=SEQ_HEADER, tracks=tracks) as w:
            events = [(Fraction(p.pts * 1000) / FPS * 10**6, 0, p) for p in video]
            events += [(b.time_ns, 1, b) for b in copier.packets()]
            for _, kind, item in sorted(events, key=lambda e: (e[0], e[1])):
                if kind == 0:
                    w.write(item)
                else:
                    t = w.tracks[item.track]  # stored from the CodecDelay on (container.matroska.copied_track)
                    w.write_block(t.number, item.data, item.time_ns + (t.codec_delay or 0), item.duration_ns,
                                  item.keyframe)
    return video


@pytest.mark.parametrize("seekable", [True, False])
def test_audio_and_subtitle_packets_survive_byte_exact(source, tmp_path, ffmpeg, seekable):
    out = tmp_path / "av.mkv"
    if seekable:
        video = mux(source, str(out))
    else:
        pipe = NonSeekable()
        video = mux(source, pipe)
        out.write_bytes(bytes(pipe.buf))
    audio, subs = source_packets(source, "audio"), source_packets(source, "subtitles")
    assert len(audio) > 50 and len(subs) == 2

    with MatroskaReader(out) as r:  # our demuxer
        assert list(r.packets()) == video
        tracks = sorted(r.tracks.values(), key=lambda t: t.number)
        assert [(t.codec_id, t.language) for t in tracks] == [("A_AAC", "fra"), ("S_TEXT/UTF8", None)]
        assert tracks[0].sampling_frequency == 48000 and tracks[0].channels == 1
        blocks = list(r.blocks())
        # blocks keep Matroska's stored times; FFmpeg presents audio CodecDelay (the AAC priming) earlier
        delay_ms = round(tracks[0].codec_delay / 10**6)
        assert delay_ms == 21  # 1024 samples at 48 kHz, as in the source
        got_audio = [(b.data, b.time_ns // 10**6 - delay_ms) for b in blocks if b.track == tracks[0].number]
        got_subs = [(b.data, b.time_ns // 10**6, b.duration_ns) for b in blocks if b.track == tracks[1].number]
    assert got_audio == audio
    assert [(d, t) for d, t, _ in got_subs] == subs and [d for _, _, d in got_subs] == [800_000_000, 500_000_000]
    assert source_packets(out, "audio") == audio and source_packets(out, "subtitles") == subs  # PyAV agrees

    info = subprocess.run([ffmpeg, "-hide_banner", "-i", str(out)], capture_output=True, text=True).stderr
    streams = [line for line in info.splitlines() if "Stream #" in line]
    assert len(streams) == 3 and "GVC1" in streams[0] and "aac" in streams[1] and "subrip" in streams[2], info
    # ffmpeg decodes the audio, and converts the subtitles back to SubRip, as they are
    dec = subprocess.run([ffmpeg, "-v", "error", "-i", str(out), "-map", "0:a", "-f", "null", "-"],
                         capture_output=True, text=True)
    assert dec.returncode == 0 and dec.stderr == "", dec.stderr
    srts = []
    for f in (source, out):
        srt = tmp_path / f"{f.stem}.srt"
        subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(f), "-map", "0:s", str(srt)], check=True)
        srts.append(srt.read_text())
    assert srts[1] == srts[0] and "world ✓" in srts[1]  # (ffmpeg shifts both by the AAC priming's -21 ms)
