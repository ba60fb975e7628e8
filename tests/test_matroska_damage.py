"""Hostile and damaged Matroska input: crafted files with valid structure but hostile fields (tags, sizes,
element counts) and files cut anywhere. The reader must refuse or skip quickly with a one-line
BitstreamError, and a truncated file keeps every complete block."""

from __future__ import annotations

import io
import random
import time
from fractions import Fraction

import pytest

from container import ebml
from container import matroska as mk
from container.ebml import encode_id, master, string
from container.matroska import MatroskaReader, MatroskaWriter, MkvPacket, parse_frame_rate
from gvc.errors import BitstreamError
from test_matroska import NonSeekable  # a write-only sink that refuses to seek, like a pipe
from tests.frame_sink import FrameSink

SEQ_HEADER = bytes(range(256))[:173]
FIVE_MILLION_VOIDS = b"\xec\x80" * 5_000_000  # 10 MB of empty Void elements
TIME_BOUND_S = 5.0  # generous: each refusal below takes milliseconds


class PipeReader(io.RawIOBase):
    """A read-only source that refuses to seek, like a pipe."""

    def __init__(self, data: bytes):
        self._src = io.BytesIO(data)

    def readable(self):
        return True

    def seekable(self):
        return False

    def readinto(self, b):
        chunk = self._src.read(min(len(b), 4096))  # short reads, as a pipe gives
        b[:len(chunk)] = chunk
        return len(chunk)


def packets_of(n: int, seed: int = 1) -> list[MkvPacket]:
    rng = random.Random(seed)
    out, pts = [], 0
    for i in range(n):
        dur = rng.randint(1, 40)
        out.append(MkvPacket(rng.randbytes(rng.randint(1, 3000)), pts, dur, i == 0 or rng.random() < 0.5))
        pts += dur
    return out


def mkv_bytes(packets, *, live: bool, **kw) -> bytes:
    sink = NonSeekable() if live else io.BytesIO()
    with MatroskaWriter(sink, width=64, height=48, fps=Fraction(25), codec_private=SEQ_HEADER, **kw) as w:
        for p in packets:
            w.write(p)
    return bytes(sink.buf) if live else sink.getvalue()


def read_until_error(data: bytes, pipe: bool = False) -> tuple[list[MkvPacket], BitstreamError | None]:
    got = []
    try:
        with MatroskaReader(PipeReader(data) if pipe else io.BytesIO(data)) as r:
            for p in r.packets():
                got.append(p)
    except BitstreamError as e:
        return got, e
    return got, None


def refused_quickly(data: bytes, match: str, pipe: bool = False) -> float:
    t0 = time.perf_counter()
    got, err = read_until_error(data, pipe)
    elapsed = time.perf_counter() - t0
    assert err is not None, f"not refused in {elapsed:.1f} s"
    assert err.args[0].count("\n") == 0 and match in str(err), str(err)  # ... with one line naming the problem
    assert elapsed < TIME_BOUND_S, elapsed
    return elapsed


def block_ends(data: bytes) -> list[int]:
    """File offsets where each block element (BlockGroup) ends, from an independent walk of the layout."""
    ends = []
    pos = data.index(encode_id(mk.SEGMENT))
    _, _, hlen = ebml.read_header(data, pos, len(data))
    pos += hlen
    while pos < len(data):
        el_id, size, hlen = ebml.read_header(data, pos, len(data))
        if el_id != mk.CLUSTER:
            pos += hlen + size
            continue
        pos += hlen
        stop = len(data) if size is None else pos + size
        while pos < stop:
            cid, csize, chlen = ebml.read_header(data, pos, len(data))
            if cid == mk.CLUSTER:
                break
            pos += chlen + csize
            if cid == mk.BLOCK_GROUP:
                ends.append(pos)
    return ends


# --------------------------------------------------------------------------------------------- hostile tags
def test_frame_rate_tag_is_parsed_strictly():
    assert parse_frame_rate("30000/1001") == Fraction(30000, 1001)
    assert parse_frame_rate("25") == 25 and parse_frame_rate("29.97") == Fraction(2997, 100)
    for bad in ("1e99999999", "1" * 10, "30000/0", "0", "-25", "25/1/1", "nan", "inf", "1000", "", "0x19"):
        assert parse_frame_rate(bad) is None, bad


def test_hostile_frame_rate_tag_is_ignored_with_a_warning():
    data = mkv_bytes(packets_of(3), live=False, tags={"GVC_FRAME_RATX": "1e99999999"})
    data = data.replace(b"GVC_FRAME_RATX", b"GVC_FRAME_RATE")  # same length: a valid file, hostile tag
    t0 = time.perf_counter()
    with MatroskaReader(io.BytesIO(data)) as r:
        assert r.fps == 25  # from DefaultDuration
        assert len(r.warnings) == 1 and "GVC_FRAME_RATE" in r.warnings[0] and "ignored" in r.warnings[0]
        assert list(r.packets()) == packets_of(3)
    assert time.perf_counter() - t0 < TIME_BOUND_S


def test_frame_rate_tag_is_written_only_when_default_duration_cannot_carry_it():
    for fps, tagged in ((Fraction(30000, 1001), False), (Fraction(25), False), (Fraction(100000, 3001), True)):
        sink = io.BytesIO()
        MatroskaWriter(sink, width=8, height=8, fps=fps, codec_private=b"x").close()
        assert (b"GVC_FRAME_RATE" in sink.getvalue()) == tagged
        with MatroskaReader(io.BytesIO(sink.getvalue()), fourcc=None) as r:
            assert r.fps == fps and r.tags == {}


# --------------------------------------------------------------------------------------------- size caps
def _head_and_tracks(codec_private: bytes) -> bytes:
    """EBML header + unknown-size Segment + Info + Tracks, as the writer makes them for a pipe."""
    sink = NonSeekable()
    MatroskaWriter(sink, width=64, height=48, fps=Fraction(25), codec_private=codec_private).close()
    return bytes(sink.buf)


def test_codec_private_and_metadata_have_tight_caps():
    refused_quickly(_head_and_tracks(bytes(mk.MAX_CODEC_PRIVATE + 1)), "CodecPrivate of 16385 bytes is over the limit")
    refused_quickly(_head_and_tracks(bytes(300_000)), "Tracks element of 300")
    # Tags over their cap are skipped, with a warning; the stream still reads.
    big_tags = master(mk.TAGS, master(mk.TAG, master(mk.TARGETS), master(
        mk.SIMPLE_TAG, string(mk.TAG_NAME, "X"), string(mk.TAG_STRING, "y" * 300_000))))
    data = _head_and_tracks(SEQ_HEADER) + big_tags
    with MatroskaReader(io.BytesIO(data)) as r:
        assert r.tags == {} and "Tags element" in r.warnings[0] and "skipped" in r.warnings[0]


def test_oversized_block_is_refused_before_it_is_read():
    data = mkv_bytes([MkvPacket(b"\0" * 5000, 0, 1, True)], live=True)
    with MatroskaReader(io.BytesIO(data), max_block_bytes=4096) as r:
        with pytest.raises(BitstreamError, match="BlockGroup of 50.. bytes .* over the limit of 4096"):
            list(r.packets())


# --------------------------------------------------------------------------------------------- element budgets
def _live_with_block() -> tuple[bytes, int]:
    """A live file with one block; and the offset just after that block (inside its unknown-size Cluster)."""
    data = mkv_bytes([MkvPacket(b"unit", 0, 5, True)], live=True)
    return data, len(data)


@pytest.mark.parametrize("pipe", [False, True])
@pytest.mark.parametrize("where", ["before_segment", "before_first_cluster", "inside_cluster",
                                   "empty_clusters", "undeclared_track_blocks"])
def test_millions_of_filler_elements_are_refused_fast(where, pipe):
    data, after_block = _live_with_block()
    head = _head_and_tracks(SEQ_HEADER)
    seg = data.index(encode_id(mk.SEGMENT))
    if where == "before_segment":
        crafted = data[:seg] + FIVE_MILLION_VOIDS + data[seg:]
        match = "more than 4096 elements before the Segment"
    elif where == "before_first_cluster":
        crafted = head + FIVE_MILLION_VOIDS + data[len(head):]
        match = "more than 4096 elements before the first Cluster"
    elif where == "inside_cluster":
        crafted = data[:after_block] + FIVE_MILLION_VOIDS
        match = "more than 4096 elements in a row without a block"
    elif where == "empty_clusters":  # 2 million sized, empty Clusters of 5 bytes
        crafted = data + (encode_id(mk.CLUSTER) + b"\x80") * 2_000_000
        match = "more than 4096 elements in a row without a block"
    else:  # 1.6 million 6-byte SimpleBlocks of track 9, which Tracks does not declare
        crafted = data + b"\xa3\x84\x89\x00\x00\x80" * 1_600_000
        match = "more than 4096 elements in a row without a block"
    refused_quickly(crafted, match, pipe)


def test_block_group_with_millions_of_children_is_refused_fast():
    data = _head_and_tracks(SEQ_HEADER)
    block = ebml.element(mk.BLOCK, b"\x81\x00\x00\x00unit")
    group = encode_id(mk.BLOCK_GROUP) + ebml.encode_size(len(block) + len(FIVE_MILLION_VOIDS)) + block
    cluster = master(mk.CLUSTER, ebml.uint(mk.TIMESTAMP, 0), group + FIVE_MILLION_VOIDS)
    refused_quickly(data + cluster, "BlockGroup at byte")


def test_laced_blocks_are_refused_with_one_line():
    data = _head_and_tracks(SEQ_HEADER)
    laced = ebml.element(mk.SIMPLE_BLOCK, b"\x81\x00\x00\x82" + b"\x01" + b"\x02" + b"ab")  # Xiph lacing
    refused_quickly(data + master(mk.CLUSTER, ebml.uint(mk.TIMESTAMP, 0), laced), "laced Matroska blocks")


# --------------------------------------------------------------------------------------------- truncation
@pytest.fixture(scope="module")
def layouts():
    packets = packets_of(8, seed=3)
    return packets, {"seekable": mkv_bytes(packets, live=False), "live": mkv_bytes(packets, live=True)}


@pytest.mark.parametrize("pipe", [False, True])
@pytest.mark.parametrize("layout", ["seekable", "live"])
def test_truncated_file_keeps_every_complete_block(layouts, layout, pipe):
    packets, files = layouts
    data = files[layout]
    ends = block_ends(data)
    assert len(ends) == len(packets)
    first_cluster = data.index(encode_id(mk.CLUSTER))
    cuts = set(range(0, len(data), 97)) | {e + d for e in ends for d in (-1, 0, 1)} | {first_cluster, len(data) - 1}
    for cut in sorted(c for c in cuts if 0 <= c < len(data)):
        got, err = read_until_error(data[:cut], pipe)
        complete = sum(e <= cut for e in ends)
        if cut < first_cluster:
            assert err is not None and ("truncated" in str(err) or "no EBML header" in str(err) or
                                        "no Tracks" in str(err)), (cut, err)
            continue
        assert got == packets[:complete], (cut, len(got), complete)
        clean_end = layout == "live" and (cut in ends or cut == first_cluster)
        if clean_end:
            assert err is None, (cut, err)
        else:
            assert err is not None and str(err).startswith("truncated Matroska file"), (cut, err)


def test_interrupted_writer_leaves_a_readable_live_layout():
    """A seekable writer that never reaches close() (killed) leaves the unknown-size Segment, every
    finished block on disk, and Void elements where the SeekHead and Duration were to go."""
    sink = io.BytesIO()
    packets = packets_of(5, seed=9)
    w = MatroskaWriter(sink, width=64, height=48, fps=Fraction(25), codec_private=SEQ_HEADER)
    for p in packets:
        w.write(p)
    got, err = read_until_error(sink.getvalue())  # no close(): as a killed process leaves it
    assert got == packets and err is None


# --------------------------------------------------------------------------------------------- real streams
FAST = ["--quality", "2", "--gop-length", "5", "--steps", "4", "--ode-tail", "1", "--prior", "analytic", "-q"]



def decode(path):
    from gvc.pipeline import decode_stream

    out = FrameSink()
    report = decode_stream(str(path), lambda h: out)
    return out.frames, report.as_dict()


@pytest.fixture(scope="module")
def four_gops(tmp_path_factory, clip, ffmpeg):
    """A 17-frame I2V stream of 4 GOPs as seekable .mkv (from the CLI), live .mkv and .gvc (the same units
    through StreamWriter, as a pipe and as a file get them)."""
    import subprocess
    import sys

    from container.io import StreamReader, StreamWriter

    d = tmp_path_factory.mktemp("gops")
    y4m = d / "c17.y4m"
    subprocess.run([ffmpeg, "-v", "error", "-i", str(clip("carphone_176x144.mp4")), "-frames:v", "17",
                    "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", str(y4m)], check=True)
    seekable = d / "s.mkv"
    p = subprocess.run([sys.executable, "-m", "gvc.cli", "encode", str(y4m), "-o", str(seekable)] + FAST,
                       capture_output=True)
    assert p.returncode == 0, p.stderr.decode()
    with StreamReader(str(seekable)) as r:
        header, units = r.header, list(r.units())
    with MatroskaReader(seekable) as r:
        times = [(p.pts, p.duration) for p in r.packets()]
    assert len(units) == 4
    live_sink = NonSeekable()
    with StreamWriter(live_sink, header, fmt="mkv") as w:
        for u, t in zip(units, times):
            w.write(u, *t)
    (d / "l.mkv").write_bytes(bytes(live_sink.buf))
    with StreamWriter(str(d / "s.gvc"), header, fmt="gvc") as w:
        for u, t in zip(units, times):
            w.write(u, *t)
    unit_ends = []
    pos = len(header.to_bytes())
    for u in units:
        pos += len(u.to_bytes())
        unit_ends.append(pos)
    return {"seekable": seekable, "live": d / "l.mkv", "gvc": d / "s.gvc", "units": units, "times": times, "unit_ends": unit_ends,
            "full": decode(seekable)[0], "dir": d}


@pytest.mark.parametrize("layout", ["seekable", "live"])
def test_cut_multi_gop_mkv_keeps_every_complete_gop(four_gops, layout):
    """Cut at every GOP boundary and in the middle of every GOP: every complete GOP decodes to the frames of
    the whole file, the rest is concealed and reported, exactly as for the .gvc cut at the same GOP."""
    data = four_gops[layout].read_bytes()
    gvc = four_gops["gvc"].read_bytes()
    ends, gvc_ends, units, full = block_ends(data), four_gops["unit_ends"], four_gops["units"], four_gops["full"]
    assert len(ends) == 4 and len(full) == 17
    starts = [e - len(u.to_bytes()) for e, u in zip(ends, units)]
    gvc_starts = [e - len(u.to_bytes()) for e, u in zip(gvc_ends, units)]
    d = four_gops["dir"]
    for k in range(4):
        for where, cut, gvc_cut in (("boundary", ends[k], gvc_ends[k]),
                                    ("mid-GOP", (starts[k] + ends[k]) // 2, (gvc_starts[k] + gvc_ends[k]) // 2)):
            complete = k + 1 if where == "boundary" else k
            (d / "cut.mkv").write_bytes(data[:cut])
            (d / "cut.gvc").write_bytes(gvc[:gvc_cut])
            frames, result = decode(d / "cut.mkv")
            ref_frames, ref = decode(d / "cut.gvc")
            label = (layout, where, k)
            assert len(frames) == len(ref_frames) == 17, label  # concealed up to the header's frame count
            assert all((a == b).all() for a, b in zip(frames, ref_frames)), label
            kept = units[complete].first_frame if complete < 4 else 17
            assert all((a == b).all() for a, b in zip(frames[:kept], full[:kept])), label
            missing = [p for p in result["problems"] if "missing" in p]
            assert missing == [p for p in ref["problems"] if "missing" in p] and len(missing) == 4 - complete, label
            damaged = [p for p in result["problems"] if p.startswith("damaged unit")]
            truncation_seen = where == "mid-GOP" or layout == "seekable"  # the Cues are cut too
            assert len(damaged) == int(truncation_seen), (label, result["problems"])
            assert all("truncated Matroska file" in p for p in damaged), damaged


def test_cli_reports_a_cut_mkv_as_damage_and_keeps_the_output(four_gops, tmp_path):
    import subprocess
    import sys

    data = four_gops["seekable"].read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[:block_ends(data)[2] + 10])  # GOPs 0-2 complete, GOP 3 cut
    p = subprocess.run([sys.executable, "-m", "gvc.cli", "decode", str(cut), "-o", str(tmp_path / "o.y4m"), "-q"],
                       capture_output=True)
    err = p.stderr.decode()
    assert p.returncode == 2 and "Traceback" not in err, err
    assert "truncated Matroska file" in err and "GOP 3 missing at end of stream" in err, err
    assert err.strip().splitlines()[-1].startswith("gvc: error: damaged stream")
    assert (tmp_path / "o.y4m").stat().st_size > 0


def test_gvc_info_warns_about_a_hostile_frame_rate_tag(four_gops, tmp_path):
    import json
    import subprocess
    import sys

    from container.io import StreamReader, StreamWriter

    path = tmp_path / "tag.mkv"
    with StreamReader(str(four_gops["seekable"])) as r, \
            StreamWriter(str(path), r.header, tags={"GVC_FRAME_RATX": "1e99999999"}, tag_level="full") as w:
        for u, t in zip(r.units(), four_gops["times"]):
            w.write(u, *t)
    path.write_bytes(path.read_bytes().replace(b"GVC_FRAME_RATX", b"GVC_FRAME_RATE"))
    p = subprocess.run([sys.executable, "-m", "gvc.cli", "info", str(path), "--json"], capture_output=True, timeout=120)
    err = p.stderr.decode()
    assert p.returncode == 0 and "Traceback" not in err, err
    assert "gvc: warning: Matroska tag GVC_FRAME_RATE='1e99999999' is not a frame rate" in err, err
    info = json.loads(p.stdout)
    assert len(info["gops"]) == 4 and info["header"]["fps"] == "30000/1001" and len(info["warnings"]) == 1


# --------------------------------------------------------------------------------------------- write errors
@pytest.mark.skipif(not __import__("os").path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("fmt", ["mkv", "gvc"])
def test_full_disk_is_a_one_line_error_at_once(four_gops, fmt):
    """A write error surfaces at the write that failed, not at close (the muxer used to swallow it)."""
    from container.io import StreamReader, StreamWriter
    from gvc.errors import InputError

    with StreamReader(str(four_gops["seekable"])) as r:
        header = r.header
    with pytest.raises(InputError, match="^cannot write the output: No space left on device$"):
        StreamWriter("/dev/full", header, fmt=fmt)
