"""The decoded frames do not depend on torch's intra-op thread count (docs/method.md §Reproducibility): a stream
decodes to the encoder's reconstruction on 1 and on 2 threads. Before the fix, the default prior's VAE gave
other frames on 1 thread than on 2 in every mode (PyTorch picks the backend of a pointwise convolution by the
thread count), and the analytic prior's latents of an anchor differed (MKL's batched GEMM)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ffmpeg_bridge.video_io import VideoReader
from gvc.config import CodecConfig, DecodeConfig
from gvc.pipeline import decode_stream, encode_stream
from gvc.priors import AnalyticPrior
from gvc.priors.base import one_thread, pin_thread_dependent_convs
from tests.frame_sink import FrameSink

# At 176x144 the default prior's VAE attention convolutions take the thread-dependent path (more than 20480
# input values; at 64x48 they do not); 5 frames and 2 steps keep a decode near a second.
FAST = dict(quality=2, gop_length=5, steps=2, ode_tail=1)


@pytest.fixture
def threads():
    """``threads(n)`` sets torch's intra-op thread count; the caller's is restored after the test."""
    n = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(n)



@pytest.mark.parametrize("mode", ["t2v", "i2v", "flf2v"])
def test_a_stream_decodes_to_the_same_frames_on_one_and_two_threads(tmp_path, clip, threads, mode):
    stream = tmp_path / "s.mkv"
    threads(1)
    with VideoReader(clip("carphone_176x144.mp4"), max_frames=5) as reader:
        encode_stream(reader, stream, CodecConfig(mode=mode, **FAST))
    decoded = {}
    for n in (1, 2):
        threads(n)
        got = FrameSink()
        report = decode_stream(stream, lambda header: got, DecodeConfig())
        assert report.events == []  # the encoder's frame hash holds on this thread count
        decoded[n] = got.frames
    assert len(decoded[1]) == len(decoded[2]) == 5
    assert all(np.array_equal(a, b) for a, b in zip(decoded[1], decoded[2]))


def test_analytic_latents_of_an_anchor_do_not_depend_on_the_thread_count(clip, threads):
    with VideoReader(clip("carphone_176x144.mp4"), max_frames=1) as reader:
        frame = torch.from_numpy(next(iter(reader))).permute(2, 0, 1)[None].float() / 255
    prior, latents = AnalyticPrior(), {}
    for n in (1, 2):
        threads(n)
        latents[n] = (prior.encode(frame), prior.decode(prior.encode(frame)))
    assert all(torch.equal(a, b) for a, b in zip(latents[1], latents[2]))


def test_pinned_pointwise_convolution_rounds_alike_on_any_thread_count(threads):
    torch.manual_seed(0)
    conv2d, conv3d = torch.nn.Conv2d(64, 192, 1), torch.nn.Conv3d(64, 128, (3, 1, 1))
    strided = torch.nn.Conv2d(64, 64, 1, stride=2)
    assert pin_thread_dependent_convs(torch.nn.Sequential(conv2d, conv3d, strided)) == 2
    assert pin_thread_dependent_convs(conv2d) == 1 and len(conv2d._forward_pre_hooks) == 1  # idempotent
    x2, x3 = torch.randn(1, 64, 18, 22), torch.randn(1, 64, 3, 36, 44)
    out = {}
    with torch.no_grad():
        for n in (1, 2):
            threads(n)
            out[n] = (conv2d(x2), conv3d(x3))
            assert torch.get_num_threads() == n  # restored after each call
    assert all(torch.equal(a, b) for a, b in zip(out[1], out[2]))
    threads(2)
    with pytest.raises(RuntimeError):
        conv2d(torch.randn(1, 3, 8, 8))  # wrong channel count: the thread count is still restored
    assert torch.get_num_threads() == 2
    with one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
