"""Audio and subtitles kept through `gvc encode` and `gvc decode` (issue 16, point 3): a real clip's video
muxed beside a sine in AAC (as a phone records it) and a SubRip track; the packets compared through PyAV's
demuxer, source against output, byte for byte, and their times against the video's."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction

import av
import pytest

from container.matroska import MatroskaReader

GVC = [sys.executable, "-m", "gvc.cli"]
FAST = ["--prior", "analytic", "--quality", "2", "--gop-length", "5", "--steps", "4", "--ode-tail", "1"]
FRAMES = 12  # three GOPs
FPS = Fraction(30000, 1001)
END_MS = FRAMES * 1000 / FPS  # the encoded video's end
SRT = "1\n00:00:00,050 --> 00:00:00,250\nhello\n\n2\n00:00:00,300 --> 00:00:01,500\nworld ✓\n"
MS = 1e-3


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def packets(path, kind):
    """(payload, presentation time in ms) of the first `kind` stream's packets, as PyAV demuxes them."""
    with av.open(str(path)) as c:
        streams = getattr(c.streams, kind)
        if not streams:
            return []
        return [(bytes(p), float(p.pts * p.time_base) * 1000) for p in c.demux(streams[0]) if p.size]


def video_start_ms(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return float(min(p.pts for p in c.demux(s) if p.pts is not None) * s.time_base) * 1000


def same_packets(got, want, tolerance_ms):
    assert [d for d, _ in got] == [d for d, _ in want]  # byte-exact, none lost, none added
    assert max(abs(t - u) for (_, t), (_, u) in zip(got, want)) <= tolerance_ms


@pytest.fixture(scope="module")
def phone(tmp_path_factory, clip, ffmpeg):
    """carphone's video (H.264, copied) beside 2 s of a 440 Hz sine in AAC, in MP4."""
    path = tmp_path_factory.mktemp("audio") / "phone.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=f=440:d=2", "-i",
                    str(clip("carphone_176x144.mp4")), "-map", "1:v", "-map", "0:a", "-c:v", "copy", "-c:a", "aac",
                    "-shortest", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def encoded(phone, tmp_path_factory):
    d = tmp_path_factory.mktemp("enc")
    out, stats = d / "a.mkv", d / "s.json"
    p = run(GVC + ["encode", str(phone), "-o", str(out), "--frames", str(FRAMES), "--stats-json", str(stats), "-q"]
            + FAST)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    return out, json.loads(stats.read_text())


def kept(phone):
    """The source's audio packets that start before the end of the encoded video."""
    return [(d, t) for d, t in packets(phone, "audio") if t < END_MS]


def test_encode_copies_the_audio_packets_untouched(phone, encoded):
    out, stats = encoded
    want = kept(phone)
    assert len(want) >= 15 and len(want) < len(packets(phone, "audio"))  # --frames cut the audio with the video
    assert video_start_ms(phone) == 0
    # Matroska stores milliseconds: each time within half of one of the source's
    same_packets(packets(out, "audio"), want, 0.5)
    assert stats["track_bytes"] > sum(len(d) for d, _ in want)  # not charged to the video's bytes and kbps
    assert stats["bytes"] + stats["track_bytes"] == out.stat().st_size


def test_audio_interleaved_with_the_gop_units(encoded):
    out, _ = encoded
    with MatroskaReader(out) as r:
        delay = {n: t.codec_delay or 0 for n, t in r.tracks.items()}  # presented CodecDelay earlier than stored
        order = [(b.track == r.track_number, b.time_ns - delay.get(b.track, 0)) for b in r.blocks()]
    assert sum(is_unit for is_unit, _ in order) == 3 and len(order) > 18
    for i, (is_unit, t) in enumerate(order):
        if is_unit:  # the audio before a unit's start precedes it in the file, the audio after it follows it
            assert all(u < t for v, u in order[:i] if not v) and all(u >= t for v, u in order[i + 1:] if not v)


@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_decode_keeps_the_audio_aligned(phone, encoded, tmp_path, ext):
    out, _ = encoded
    dec = tmp_path / f"d.{ext}"
    p = run(GVC + ["decode", str(out), "-o", str(dec), "-q"])
    assert p.returncode == 0 and p.stderr == "", p.stderr
    with av.open(str(dec)) as c:
        assert c.streams.video[0].frames == FRAMES or ext == "mkv"
    assert video_start_ms(dec) == 0
    same_packets(packets(dec, "audio"), kept(phone), 0.5)


def test_no_audio_drops_them(phone, encoded, tmp_path):
    out, _ = encoded
    bare = tmp_path / "bare.mkv"
    p = run(GVC + ["encode", str(phone), "-o", str(bare), "--frames", "5", "--no-audio", "-q"] + FAST)
    assert p.returncode == 0, p.stderr
    assert packets(bare, "audio") == [] and len(packets(bare, "video")) == 1
    dec = tmp_path / "d.mkv"
    p = run(GVC + ["decode", str(out), "-o", str(dec), "--no-audio", "-q"])
    assert p.returncode == 0 and packets(dec, "audio") == [] and len(packets(dec, "video")) == FRAMES


def test_outputs_without_room_for_tracks_say_so_once(phone, encoded, tmp_path):
    out, _ = encoded
    p = run(GVC + ["encode", str(phone), "-o", str(tmp_path / "a.gvc"), "--frames", "5"] + FAST)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("gvc: note: 1 audio/subtitle track(s) not copied: a .gvc stream holds video only") == 1
    p = run(GVC + ["decode", str(out), "-o", str(tmp_path / "d.y4m")])
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("gvc: note: 1 audio/subtitle track(s) not written: y4m holds video only") == 1


def test_subtitles_kept_through_encode_and_decode(tmp_path, clip, ffmpeg):
    """A SubRip track (Matroska source) through encode, then decode to .mkv (copied) and .mp4 (mov_text)."""
    (tmp_path / "s.srt").write_text(SRT)
    src, enc = tmp_path / "src.mkv", tmp_path / "a.mkv"
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(clip("carphone_176x144.mp4")), "-i", str(tmp_path / "s.srt"),
                    "-map", "0:v", "-map", "1:s", "-c", "copy", "-t", "2", str(src)], check=True)
    p = run(GVC + ["encode", str(src), "-o", str(enc), "--frames", str(FRAMES), "-q"] + FAST)
    assert p.returncode == 0, p.stderr
    subs = packets(src, "subtitles")
    assert [d for d, _ in subs] == [b"hello", "world ✓".encode()]
    same_packets(packets(enc, "subtitles"), subs, 0)
    for ext in ("mkv", "mp4"):
        dec = tmp_path / f"d.{ext}"
        p = run(GVC + ["decode", str(enc), "-o", str(dec), "-q"])
        assert p.returncode == 0, p.stderr
    texts = []
    for f in (src, tmp_path / "d.mkv", tmp_path / "d.mp4"):  # as ffmpeg converts each back to SubRip
        srt = tmp_path / f"{f.name}.srt"
        subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(f), "-map", "0:s", str(srt)], check=True)
        texts.append(srt.read_text())
    assert texts[0].strip() == SRT.strip() and texts[1] == texts[0] and texts[2] == texts[0]


def test_transcode_recipe_keeps_the_audio_aligned(phone, encoded, tmp_path, ffmpeg):
    """README's GVC -> H.264 recipe: gvc-pipe decode | ffmpeg -copyts -i - -i x.mkv ... -c:a copy."""
    out, _ = encoded
    h264 = tmp_path / "h264.mp4"
    decode = subprocess.Popen([sys.executable, "-m", "gvc.pipe_cli", "decode", str(out)], stdout=subprocess.PIPE)
    p = subprocess.run([ffmpeg, "-v", "error", "-y", "-copyts", "-i", "-", "-i", str(out), "-map", "0:v", "-map", "1:a?",
                        "-c:v", "libx264", "-crf", "18", "-c:a", "copy", str(h264)], stdin=decode.stdout,
                       capture_output=True, text=True)
    assert decode.wait() == 0 and p.returncode == 0, p.stderr
    assert len(packets(h264, "video")) == FRAMES and video_start_ms(h264) == 0
    same_packets(packets(h264, "audio"), kept(phone), 0.5)


def test_gvc_dist_says_once_that_it_leaves_the_tracks_out(phone, encoded, tmp_path):
    """gvc-dist writes video only; its --no-audio help promises what gvc does, so it names what it leaves out."""
    dist = [sys.executable, "-m", "gvc.dist_cli"]
    p = run(dist + ["encode", str(phone), "-o", str(tmp_path / "d.mkv"), "--frames", "5"] + FAST)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count(f"note: 1 audio/subtitle track(s) of {phone} not written: gvc-dist writes video only") == 1
    p = run(dist + ["decode", str(encoded[0]), "-o", str(tmp_path / "d.y4m")])
    assert p.returncode == 0 and p.stderr.count("1 audio/subtitle track(s)") == 1, p.stderr
    p = run(dist + ["encode", str(phone), "-o", str(tmp_path / "e.mkv"), "--frames", "5", "--no-audio"] + FAST)
    assert p.returncode == 0 and "audio" not in p.stderr, p.stderr
