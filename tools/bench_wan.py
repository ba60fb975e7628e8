"""Speed of the CLI path on a Wan2.1-T2V-1.3B-sized prior with random weights (issue 15's "done when").

    python -m tools.bench_wan --wan-config 1.3b [--device cuda] [--dtype auto] [--json benchmarks/wan_1.3b_h200.json]

Builds random weights with Wan2.1-T2V-1.3B's configuration (1.42 B transformer parameters, the default
AutoencoderKLWan, no text encoder: the null prompt embedding) in the Diffusers layout under ``--work`` (never
committed), plus the same transformer with 36 input channels (the I2V/FLF2V layout, no CLIP) for FLF2V. Then,
for T2V and FLF2V, it encodes a synthetic 1280x720, 33-frame clip (one GOP) and decodes the stream through
``gvc.pipeline.encode_stream`` / ``decode_stream`` (what ``gvc encode`` / ``gvc decode`` run after opening the
video files), and times each run end to end (prior loading included) with a stage breakdown: model load, weight
hashing (the digest cache is cold on the first encode of a folder, then warm), VAE encode/decode, the
transformer forwards, the codebook search and atom regeneration, anchor coding.

On a machine without PyAV (the GPU machines here) the anchor image codec cannot run: anchors are then carried
raw (an in-process stand-in, marked ``anchors_raw`` in the JSON) and the anchor-coding time measured on a
machine with PyAV is not included; everything else is the real path. The stream is decoded with frame-hash
verification: ``decode_matches_encoder`` says whether the decoder reproduced the encoder's frames bit for bit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import types
from collections import defaultdict
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

# Wan-AI/Wan2.1-T2V-1.3B-Diffusers transformer/config.json (diffusers 0.42 names)
WAN_CONFIGS = {
    "1.3b": dict(patch_size=[1, 2, 2], num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
                 text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
                 qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=None, added_kv_proj_dim=None, rope_max_seq_len=1024),
    # a seconds-long smoke test of this tool on a CPU
    "tiny": dict(patch_size=[1, 2, 2], num_attention_heads=2, attention_head_dim=16, in_channels=16, out_channels=16,
                 text_dim=32, freq_dim=32, ffn_dim=64, num_layers=1, cross_attn_norm=True,
                 qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=None, added_kv_proj_dim=None, rope_max_seq_len=1024),
}


def build_random_wan(root: Path, config: str, *, i2v_layout: bool, device, seed: int = 0, vae_from: Path | None = None) -> Path:
    """A Diffusers-layout folder with random weights of the given configuration (fp32 safetensors, like the hub's)."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    cfg = dict(WAN_CONFIGS[config])
    if i2v_layout:
        cfg["in_channels"] = 36
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    with torch.device(device):
        t = WanTransformer3DModel(**cfg)
    t.to("cpu").save_pretrained(root / "transformer", safe_serialization=True, max_shard_size="20GB")
    del t
    if vae_from is not None:
        os.symlink(vae_from.resolve(), root / "vae")
    else:
        with torch.device(device):
            vae = AutoencoderKLWan()
        vae.to("cpu").save_pretrained(root / "vae", safe_serialization=True)
    if i2v_layout:
        (root / "gvc_prior.json").write_text(json.dumps({"name": f"wan{config}-rand-i2v", "conditioning": ["first", "last"]}))
    return root


def synthetic_clip(frames: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """Moving gradients with texture: uint8 [H, W, 3] frames."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    tex = rng.integers(0, 40, (height, width, 1), dtype=np.int16)
    out = []
    for f in range(frames):
        r = 128 + 100 * np.sin((xx + 6 * f) / 97.0)
        g = 128 + 100 * np.cos((yy - 4 * f) / 61.0)
        b = 128 + 90 * np.sin((xx + yy + 9 * f) / 143.0)
        img = np.stack([r, g, b], axis=-1).astype(np.int16) + tex - 20
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


class _Reader:
    """The part of ffmpeg_bridge.video_io.VideoReader that encode_stream uses."""

    def __init__(self, frames, fps=Fraction(16)):
        h, w = frames[0].shape[:2]
        self.info = types.SimpleNamespace(width=w, height=h, fps=fps, frames=len(frames), pix_fmt="rgb24")
        self._frames = frames

    def __iter__(self):
        return iter(self._frames)


class _NullWriter:
    def __init__(self):
        self.frames = 0

    def write(self, frame):
        self.frames += 1

    def close(self):
        pass


class StageTimer:
    """Wall seconds (CUDA synchronised at both ends) and process CPU seconds per stage, by patching the functions
    that do each stage."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu_seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._patches: list[tuple[object, str, object]] = []

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def wrap(self, owner, attr: str, stage: str):
        fn = getattr(owner, attr)
        timer = self

        def timed(*a, **k):
            timer._sync()
            t, c = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                timer._sync()
                timer.seconds[stage] += time.perf_counter() - t
                timer.cpu_seconds[stage] += time.process_time() - c
                timer.calls[stage] += 1

        self._patches.append((owner, attr, fn))
        setattr(owner, attr, timed)

    def reset(self):
        self.seconds.clear()
        self.cpu_seconds.clear()
        self.calls.clear()

    def restore(self):
        for owner, attr, fn in reversed(self._patches):
            setattr(owner, attr, fn)
        self._patches.clear()


def _install_raw_anchors() -> bool:
    """Without PyAV: a stub ``av`` module so gvc imports, and anchors carried raw (see the module doc)."""
    try:
        import av  # noqa: F401

        return False
    except ImportError:
        pass
    stub = types.ModuleType("av")
    stub.VideoFrame = stub.CodecContext = stub.Packet = object
    stub.error = types.SimpleNamespace(FFmpegError=RuntimeError)
    sys.modules["av"] = stub
    sys.modules["av.error"] = stub.error
    from gvc import anchors

    from container import bitstream as bs

    def encode_anchor(rgb, *a, **k):  # raw RGB inside a well-formed anchor payload (codec id of png)
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        h, w = rgb.shape[:2]
        raw = h.to_bytes(4, "little") + w.to_bytes(4, "little") + rgb.tobytes()
        return 4, anchors._payload("rgb", False, 0, 0, raw)

    def decode_anchor(cid, payload, *a, **k):
        data = bytes(bs.AnchorPictureSyntax.parse(payload).data)
        h, w = int.from_bytes(data[:4], "little"), int.from_bytes(data[4:8], "little")
        return np.frombuffer(data[8:], np.uint8).reshape(h, w, 3).copy()

    anchors.encode_anchor, anchors.decode_anchor = encode_anchor, decode_anchor
    return True


def _instrument(timer: StageTimer) -> None:
    from gvc import anchors, codebook, codec, pipeline
    from gvc.priors import wan

    timer.wrap(pipeline, "load_prior", "load_prior")
    timer.wrap(wan, "hash_folder_files", "weights_sha256")
    timer.wrap(wan.WanPrior, "encode", "vae_encode")
    timer.wrap(wan.WanPrior, "decode", "vae_decode")
    timer.wrap(wan.WanPrior, "condition", "condition (anchor VAE encode)")
    timer.wrap(wan.WanPrior, "velocity", "transformer")
    timer.wrap(codebook.CodebookSearch, "topm", "codebook_search")
    timer.wrap(codec, "combine", "atom_regeneration") if hasattr(codec, "combine") else timer.wrap(codebook, "combine", "atom_regeneration")
    timer.wrap(anchors, "encode_anchor", "anchor_encode")
    timer.wrap(anchors, "decode_anchor", "anchor_decode")
    # codec.py binds anchor coding through its module alias; keep the patched functions visible there
    for name in ("encode_anchor", "decode_anchor"):
        for mod in (codec,):
            alias = getattr(mod, "anchor_codec", None)
            if alias is not None and alias is not anchors:
                timer.wrap(alias, name, f"anchor_{name.split('_')[0]}")


@contextmanager
def _cold_hash_cache():
    """A private, empty digest cache for this benchmark (its first encode per folder hashes the weights)."""
    old = os.environ.get("GVC_CACHE_DIR")
    with tempfile.TemporaryDirectory() as d:
        os.environ["GVC_CACHE_DIR"] = d
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("GVC_CACHE_DIR", None)
            else:
                os.environ["GVC_CACHE_DIR"] = old


def warm_digest(prior_dir: Path, a) -> float:
    """Hash the prior's weights once into the (private) digest cache, as a user's first command does; the
    timed runs then read the cache. Returns the seconds the hash took."""
    from gvc.priors import load_prior

    from gvc.kernels import adaln_triton, rope_triton

    prior = load_prior(str(prior_dir), device=a.device, dtype=a.dtype)
    t = time.perf_counter()
    prior.weights_sha256()
    seconds = time.perf_counter() - t
    cfg, dtype = prior.transformer.config, prior.transformer.dtype
    width = cfg.num_attention_heads * cfg.attention_head_dim
    x = torch.zeros(1, 8, width, dtype=dtype, device=a.device)
    if rope_triton.install(prior.transformer):  # JIT-compile the kernels before any timed run
        cos = torch.zeros(1, 8, 1, cfg.attention_head_dim, device=a.device)
        rope_triton.apply_rope(x, cos, cos, cfg.num_attention_heads)
    if adaln_triton.install(prior.transformer):
        vec = torch.zeros(1, 1, width, device=a.device)
        adaln_triton.gated_residual(x, adaln_triton.modulate(x.float(), vec, vec, dtype), vec)
    del prior
    return seconds


KERNELS = ("rope_triton", "adaln_triton")  # gvc.kernels modules WanPrior installs on CUDA
VARIANTS = {  # name -> (kernels left out, VAE dtype, codebook family); "fused" is the shipped path
    "fused": ((), None, None),
    "eager-rope": (("rope_triton",), None, None),  # diffusers' own RoPE
    "eager-adaln": (("adaln_triton",), None, None),  # diffusers' own modulations and gated residuals
    "eager-kernels": (KERNELS, None, None),  # diffusers' forward throughout
    "vae-fp32": ((), "fp32", None),  # the VAE in float32 (the default before autoencoder_dtype, bitstream v4)
    "gaussian": ((), None, "gaussian"),  # the paper's Gaussian codebook (the default before hadamard)
}


@contextmanager
def variant(name: str):
    """Run a case as variant ``name`` (VARIANTS); yields the settings it asks for (VAE dtype, codebook family)."""
    import importlib

    if name not in VARIANTS:
        raise SystemExit(f"unknown variant {name!r} ({', '.join(VARIANTS)})")
    left_out, vae_dtype, family = VARIANTS[name]
    modules = [importlib.import_module(f"gvc.kernels.{k}") for k in left_out]
    installs = [m.install for m in modules]
    for m in modules:
        m.install = lambda transformer: False
    try:
        yield {k: v for k, v in (("vae_dtype", vae_dtype), ("codebook_family", family)) if v is not None}
    finally:
        for m, install in zip(modules, installs):
            m.install = install


def run_case(mode: str, prior_dir: Path, frames, a, timer: StageTimer, work: Path, settings: dict | None = None) -> dict:
    from gvc.config import CodecConfig, DecodeConfig
    from gvc.pipeline import decode_stream, encode_stream

    cfg = CodecConfig(mode=mode, quality=a.quality, gop_length=len(frames), steps=a.steps, seed=1, prior=str(prior_dir),
                      device=a.device, dtype=a.dtype, **{"vae_dtype": a.vae_dtype, **(settings or {})}).validate()
    dcfg = DecodeConfig(prior=str(prior_dir), device=a.device)
    out = work / f"{mode}.gvc"
    res = {"mode": mode, "prior": str(prior_dir.name)}
    for label, fn in (
        ("encode", lambda: encode_stream(_Reader(frames), str(out), cfg, fmt="gvc")),
        ("decode", lambda: decode_stream(str(out), lambda h: _NullWriter(), dcfg)),
    ):
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
        timer.reset()
        t = time.perf_counter()
        r = fn()
        total = time.perf_counter() - t
        stages = {k: round(v, 4) for k, v in sorted(timer.seconds.items())}
        stages["other"] = round(total - sum(timer.seconds.values()), 4)
        entry = {"seconds": total, "stages": stages, "calls": dict(timer.calls)}
        if label == "encode":
            d = r.as_dict(out.stat().st_size)
            entry.update(bytes=d["bytes"], psnr=d["psnr"], compute_dtype=r.header.compute_dtype,
                         autoencoder_dtype=r.header.autoencoder_dtype, codebook_family=r.header.codebook_family)
        else:
            d = r.as_dict()
            entry.update(frames=d["frames"], problems=d["problems"], decode_matches_encoder=not d["problems"])
        if torch.cuda.is_available():
            entry["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        res[label] = entry
        print(json.dumps({mode: {label: entry}}), file=sys.stderr, flush=True)
    return res


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wan-config", default="1.3b", choices=sorted(WAN_CONFIGS))
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="auto", help="transformer arithmetic (gvc encode --dtype)")
    p.add_argument("--vae-dtype", default="auto", help="VAE arithmetic (gvc encode --vae-dtype) of variants that do not set it")
    p.add_argument("--modes", default="t2v,flf2v")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--frames", type=int, default=33)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--quality", type=int, default=64, help="M (64: K = 16,384, as in issue 15)")
    p.add_argument("--work", default=None, help="folder for the random weights (default: a temporary one)")
    p.add_argument("--variants", default="fused,eager-adaln,vae-fp32",
                   help=f"run side by side, alternating per mode: {', '.join(VARIANTS)} (fused: the shipped path; "
                        "eager-X: without the gvc.kernels.X kernel; vae-fp32: the VAE in float32; gaussian: the "
                        "Gaussian codebook family)")
    p.add_argument("--json", metavar="FILE")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    device = torch.device(a.device)
    import diffusers  # noqa: F401  (before any stub of av: diffusers probes for it)

    raw_anchors = _install_raw_anchors()
    work = Path(a.work or tempfile.mkdtemp(prefix="gvc-wan-bench-"))
    t = time.perf_counter()
    t2v = build_random_wan(work / "wan-t2v", a.wan_config, i2v_layout=False, device=device)
    flf = None
    if "flf2v" in a.modes:
        flf = build_random_wan(work / "wan-i2v", a.wan_config, i2v_layout=True, device=device, seed=1, vae_from=t2v / "vae")
    build_s = time.perf_counter() - t
    frames = synthetic_clip(a.frames, a.height, a.width)
    timer = StageTimer(device)
    _instrument(timer)
    res = {
        "bench": "wan", "wan_config": a.wan_config, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "torch": torch.__version__, "diffusers": diffusers.__version__, "python": platform.python_version(),
        "dtype": a.dtype, "vae_dtype": a.vae_dtype, "width": a.width, "height": a.height, "frames": a.frames, "steps": a.steps,
        "quality": a.quality, "build_weights_seconds": build_s, "anchors_raw": raw_anchors,
        "targets": {"encode_seconds": 25.9, "decode_seconds": 15.6},
        "note": "in-process gvc.pipeline encode_stream/decode_stream (the CLI minus video-file I/O); the weights "
                "are hashed once per folder first (cold_hash_seconds, a user's first command), so the timed runs "
                "read the digest cache; variants alternate per mode",
        "cold_hash_seconds": {},
        "runs": [],
    }
    try:
        with _cold_hash_cache():
            for mode in a.modes.split(","):
                prior_dir = t2v if mode == "t2v" else flf
                if prior_dir.name not in res["cold_hash_seconds"]:
                    res["cold_hash_seconds"][prior_dir.name] = warm_digest(prior_dir, a)
                for name in a.variants.split(","):
                    with variant(name) as settings:
                        res["runs"].append(dict(run_case(mode, prior_dir, frames, a, timer, work, settings), variant=name))
                    if a.json:  # written after each run, so a run cut short keeps what it measured
                        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    finally:
        timer.restore()
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
