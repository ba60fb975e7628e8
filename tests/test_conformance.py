"""Conformance streams (tests/conformance/, written by tools/make_conformance.py): each decodes to the recorded
MD5 on the platform that made it, and to >= 50 dB PSNR of the recorded frames anywhere; the per-GOP frame
hashes inside every stream match."""

from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path

import pytest

from ffmpeg_bridge.video_io import VideoReader
from gvc.cli import main
from gvc.metrics import psnr
from tools.make_conformance import FRAMES, STREAMS, platform_tag, reference_of

CONFORMANCE = Path(__file__).parent / "conformance"


def frames_of(y4m: bytes):
    with VideoReader(io.BytesIO(y4m)) as r:
        return list(r)


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_conformance_stream_decodes_as_recorded(tmp_path, capsys, name):
    stream = CONFORMANCE / f"{name}.{STREAMS[name][1]}"
    assert stream.stat().st_size < 20_000
    md5, recorded_on = (CONFORMANCE / f"{name}.md5").read_text().splitlines()
    reference = gzip.decompress((CONFORMANCE / f"{reference_of(name)}.y4m.gz").read_bytes())
    assert hashlib.md5(reference).hexdigest() == md5.split()[0]  # the stored frames are the recorded ones
    out = tmp_path / "d.y4m"
    assert main(["decode", str(stream), "-o", str(out), "-q"]) == 0
    assert "mismatch" not in capsys.readouterr().err  # the encoder's per-GOP frame hashes hold
    decoded = out.read_bytes()
    if recorded_on == f"# platform: {platform_tag()}":
        assert hashlib.md5(decoded).hexdigest() == md5.split()[0]
    got, want = frames_of(decoded), frames_of(reference)
    assert len(got) == len(want) == FRAMES
    assert min(psnr(a, b) for a, b in zip(got, want)) >= 50
