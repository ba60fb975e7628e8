"""Tail-latent residual coding (gvc/entropy/residual.py): exact round trips, rate vs the reference, limits."""

from __future__ import annotations

import hashlib
import tracemalloc

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from container import bitstream as bs
from gvc.entropy import residual as R
from gvc.entropy.residual import (
    DEFAULT_ROUNDING,
    decode_residual,
    encode_residual,
    quantize_residual,
    reference_residual_bytes,
)
from gvc.errors import BitstreamError, ParameterError


def expected(r: torch.Tensor, step: float, rounding: float = DEFAULT_ROUNDING) -> torch.Tensor:
    rho = round(rounding * 256) / 256
    s32 = np.float32(step)
    return torch.from_numpy(quantize_residual(r, float(s32), rho).astype(np.float32) * s32)


def synthetic(kind: str, seed: int, shape=(16, 36, 44)) -> torch.Tensor:
    g = np.random.default_rng(seed)
    scale = np.exp(g.uniform(-1, 1, size=(shape[0], 1, 1)))  # per-channel scales
    x = g.standard_normal(shape) if kind == "gauss" else g.laplace(size=shape)
    return torch.from_numpy((x * scale).astype(np.float32))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    C=st.integers(1, 4),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    log_scale=st.floats(-4, 4),
    log_ratio=st.floats(-3, 2),
    kind=st.sampled_from(["gauss", "laplace", "sparse"]),
    rounding=st.sampled_from([0.5, DEFAULT_ROUNDING, 1 / 3, 0.25]),
)
def test_round_trip_is_exact(seed, C, h, w, log_scale, log_ratio, kind, rounding):
    g = np.random.default_rng(seed)
    scale = 10.0**log_scale
    x = g.standard_normal((C, h, w)) if kind != "laplace" else g.laplace(size=(C, h, w))
    if kind == "sparse":
        x = x * (g.random((C, h, w)) < 0.1)
    r = torch.from_numpy((x * scale).astype(np.float32))
    step = scale * 10.0**log_ratio
    payload = encode_residual(r, step, rounding=rounding)
    out = decode_residual(payload)
    assert out.dtype == torch.float32 and out.shape == r.shape
    assert torch.equal(out, expected(r, step, rounding))
    rho = round(rounding * 256) / 256
    bound = max(rho, 1 - rho) * float(np.float32(step))
    err = (out.double() - r.double()).abs()
    assert bool((err <= bound * (1 + 1e-6) + r.double().abs() * 1e-6).all())


def _step_matching(r: torch.Tensor, target_mse: float) -> float:
    """Largest float32 step whose reconstruction MSE does not exceed ``target_mse`` (bisection)."""
    lo, hi = 1e-8, float(r.abs().max()) * 4
    for _ in range(60):
        mid = float(np.float32((lo * hi) ** 0.5))
        mse = float(((expected(r, mid) - r) ** 2).mean())
        lo, hi = (mid, hi) if mse <= target_mse else (lo, mid)
    return lo


def _compare(r: torch.Tensor) -> tuple[int, int]:
    ref_bytes, ref_rec = reference_residual_bytes(r)
    ref_mse = float(((ref_rec - r) ** 2).mean())
    step = _step_matching(r, ref_mse)
    payload = encode_residual(r, step)
    rec = decode_residual(payload)
    assert float(((rec - r) ** 2).mean()) <= ref_mse
    return len(payload), ref_bytes


@pytest.mark.parametrize("kind,seed", [("gauss", 0), ("laplace", 1)])
def test_fewer_bytes_than_reference_synthetic(kind, seed):
    ours, ref = _compare(synthetic(kind, seed))
    assert ours < 0.97 * ref  # measured 0.92-0.94


def _frame_residual(path, index: int) -> torch.Tensor:
    """Difference of two consecutive frames' luma, 2x average-pooled, pixel-unshuffled by 4: [16, H/8, W/8],
    cropped to [16, 36, 44] (a latent-frame-like residual: heavy-tailed, spatially clustered)."""
    out = []
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i >= index:
                out.append(f.to_ndarray(format="gray").astype(np.float32) / 255)
            if len(out) == 2:
                break
    d = torch.from_numpy(out[1] - out[0])[None, None]
    d = F.pixel_unshuffle(F.avg_pool2d(d, 2), 4)[0]
    return d[:, :36, :44].contiguous()


@pytest.mark.parametrize("name,index,ratio", [("vtest_768x576.mp4", 10, 0.28), ("megamind_720x528.mp4", 40, 0.64)])
def test_fewer_bytes_than_reference_real(clip, name, index, ratio):
    ours, ref = _compare(_frame_residual(clip(name), index))
    assert ours < (ratio + 0.1) * ref  # measured ratios


def test_model_tables_are_pinned():
    # the integer tables are part of the format: any platform or refactoring change shows up here
    h = hashlib.sha256()
    for bi in range(len(R._SHAPES)):
        for si in (0, 37, 100, 200, 255):
            h.update(R._magnitude_table(bi, si, 102 / 256, 300).astype("<i8").tobytes())
    assert h.hexdigest() == "259fc1cc3b3dbd8a40828bf0fa804ab207e33a2b388e5a4e78e9c67305061624"
    # a table for a smaller K is a prefix of the one for a larger K
    assert np.array_equal(R._magnitude_table(1, 90, 0.4, 10), R._magnitude_table(1, 90, 0.4, 300)[:11])


@pytest.mark.parametrize(
    "payload_hex",
    [
        "010204053dcccccd66da5fc973b934902a1efa3089ca7006d816c9cc4251c32d272a2faa4ef60015030000001e",
        "030204053dcccccd664a6408d981621d6df9194e4ccedf394d71b6907250ffd58d7377f84793c0360a2f00240c001e1916",
    ],
)
def test_golden_payloads_decode(payload_hex):
    out = decode_residual(bytes.fromhex(payload_hex))
    assert out.shape == (2, 4, 5)
    assert hashlib.sha256(out.numpy().tobytes()).hexdigest() == (
        "0d7634072e52a212c30347c08ddfa63b7fea6611be01865ddeccde9ae06b91bc"
    )


def test_zero_and_empty_residuals():
    for shape in [(16, 36, 44), (1, 1, 1), (0, 3, 3), (2, 0, 5)]:
        r = torch.zeros(shape)
        p = encode_residual(r, 0.1)
        assert len(p) <= 12
        assert torch.equal(decode_residual(p), r)


def _header(mode=1, C=16, h=36, w=44, step=0.1, rho=102) -> bytes:
    model = {v: k for k, v in bs.RESIDUAL_MODELS.items()}[mode]
    return bs.ResidualHeaderSyntax.build(dict(model=model, channels=C, height=h, width=w, step=step, rounding=rho))


def test_absurd_sizes_raise_without_allocating():
    tracemalloc.start()
    try:
        for hdr in [_header(C=1 << 20, h=1 << 20, w=1 << 20), _header(C=16, h=1 << 40, w=1),
                    _header(C=1 << 30, h=0, w=0)]:
            with pytest.raises(BitstreamError):
                decode_residual(hdr + b"\x00" * 8)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    # the limit is the caller's
    payload = encode_residual(synthetic("gauss", 3), 0.5)
    with pytest.raises(BitstreamError):
        decode_residual(payload, max_elements=1000)


def test_damaged_payloads_raise():
    payload = encode_residual(synthetic("laplace", 4), 0.2)
    bad = [
        b"",
        payload[:5],
        bytes([9]) + payload[1:],  # unknown mode
        _header(step=float("nan")) + payload[len(_header()):],
        _header(step=0.0) + payload[len(_header()):],
        _header(rho=0) + payload[len(_header()):],
        payload[:-1],  # not whole words
        payload[:-4],  # words missing
        payload + b"\x01\x00\x00\x00",  # words left over
    ]
    for b in bad:
        with pytest.raises(BitstreamError):
            decode_residual(b)


def test_bad_parameters():
    r = synthetic("gauss", 5, (2, 3, 4))
    for step in (0, -1, float("nan"), float("inf"), "x"):
        with pytest.raises(ParameterError):
            encode_residual(r, step)
    with pytest.raises(ParameterError):
        encode_residual(r.numpy(), 0.1)
    with pytest.raises(ParameterError):
        encode_residual(r[0], 0.1)
    with pytest.raises(ParameterError):
        encode_residual(torch.full((1, 2, 2), float("nan")), 0.1)
    with pytest.raises(ParameterError):
        encode_residual(r, 1e-9)  # |q| beyond the coder's range
    with pytest.raises(ParameterError):
        encode_residual(r, 0.1, rounding=0.7)
