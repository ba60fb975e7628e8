"""Every mode end to end through tiny random Wan2.1 models (the diffusers classes, built offline here):
the codec's decoder reproduces the encoder's reconstruction bit for bit, with temporal stride 4 GOPs."""

from fractions import Fraction

import numpy as np
import pytest

from container.bitstream import GopUnit
from ffmpeg_bridge.video_io import VideoReader
from gvc.codec import GopCodec
from gvc.config import CodecConfig
from gvc.gop import plan_gops
from gvc.priors.wan import WanPrior

from wan_tiny import build_tiny_wan  # tests/ is on sys.path (pytest prepend mode)


@pytest.fixture(scope="module")
def frames(clips_dir):
    with VideoReader(clips_dir / "carphone_176x144.mp4", max_frames=9) as r:
        return [f[50:80, 70:100].copy() for f in r]  # 30x30: padded to the 16-pixel grid and cropped back


@pytest.fixture(scope="module")
def priors(tmp_path_factory):
    root = tmp_path_factory.mktemp("wan-codec")
    return {
        "t2v": WanPrior.from_pretrained(build_tiny_wan(root / "t2v", mode="t2v")),
        "i2v": WanPrior.from_pretrained(build_tiny_wan(root / "i2v", mode="i2v", with_text_encoder=False)),
    }


@pytest.mark.parametrize("mode, prior", [("t2v", "t2v"), ("i2v", "i2v"), ("flf2v", "i2v")])
def test_every_mode_decodes_bit_exactly(frames, priors, mode, prior):
    p = priors[prior]
    config = CodecConfig(mode=mode, quality=2, gop_length=5, steps=3, ode_tail=1, prompt="a car" if mode == "t2v" else "")
    h, w = frames[0].shape[:2]
    enc = GopCodec.for_encoding(p, config, width=w, height=h, fps=Fraction(30000, 1001), frame_count=len(frames))
    plans = plan_gops(len(frames), 5, enc.header.gop_overlap, p.geometry)
    dec = GopCodec(p, enc.header)
    total = 0
    for plan in plans:
        res = enc.encode(plan.index, frames[plan.first_frame:plan.first_frame + plan.real_frames])
        got = dec.decode(GopUnit.from_bytes(res.unit.to_bytes()))
        assert len(got) == len(res.frames) and all(np.array_equal(a, b) for a, b in zip(got, res.frames))
        assert got[0].shape == (h, w, 3)
        total += len(got)
    assert total == len(frames)
    assert enc.header.temporal_stride == 4 and enc.header.prior_id.startswith("wan2.1:")
