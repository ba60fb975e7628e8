"""Would sampling several GOPs as one batch pay (issue 15.5)? Times a Wan transformer forward of two GOPs as two
batch-1 calls and as one batch-2 call, side by side, at several picture sizes, and says whether each GOP's output
is bit-identical either way (the decoder of one GOP, seeking or gvc-dist, runs batch 1).

    python -m tools.bench_gop_batch [--wan-config 1.3b] [--sizes 720p,480p,cif] [--json F.json --plot F.png]

Random weights with the configuration of tools.bench_wan (never saved), cast and fused as WanPrior runs them
(bf16 transformer, fused RoPE and AdaLN kernels), one latent of 9 frames per GOP (33 video frames), the null prompt.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from tools.bench_wan import WAN_CONFIGS
from tools import emit_json


LATENT_SIZES = {"720p": (90, 160), "480p": (60, 104), "cif": (36, 44)}  # latent h, w (VAE stride 8)


def _timed(fn, device, repeats: int):
    fn()
    torch.cuda.synchronize(device) if device.type == "cuda" else None
    t = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    torch.cuda.synchronize(device) if device.type == "cuda" else None
    return (time.perf_counter() - t) / repeats, out


def build(config: str, device: torch.device):
    from diffusers import WanTransformer3DModel

    from gvc.kernels import adaln_triton, rope_triton
    from gvc.priors.wan import _cast_model

    torch.manual_seed(0)
    with torch.device(device):
        t = WanTransformer3DModel(**WAN_CONFIGS[config]).eval()
    _cast_model(t, torch.bfloat16 if device.type == "cuda" else torch.float32, device)
    return t, {"rope_triton": rope_triton.install(t), "adaln_triton": adaln_triton.install(t)}


def measure(t, size: str, device: torch.device, repeats: int) -> dict:
    h, w = LATENT_SIZES[size]
    cfg = t.config
    x = torch.randn(2, cfg.in_channels, 9, h, w, device=device, generator=torch.Generator(device).manual_seed(1))
    x = x.to(t.dtype)
    ctx = torch.zeros(1, 1, cfg.text_dim, device=device, dtype=t.dtype)

    def forward(batch):
        n = batch.shape[0]
        with torch.no_grad():
            return t(hidden_states=batch, timestep=torch.full((n,), 700.0, device=device),
                     encoder_hidden_states=ctx.expand(n, -1, -1), return_dict=False)[0]

    single, a = _timed(lambda: torch.cat([forward(x[:1]), forward(x[1:])]), device, repeats)
    batched, b = _timed(lambda: forward(x), device, repeats)
    return {"size": size, "latent": [9, h, w], "two_batch1_seconds": single, "one_batch2_seconds": batched,
            "speedup": single / batched, "bit_identical": bool(torch.equal(a, b)),
            "max_abs_diff": (a.float() - b.float()).abs().max().item()}


def plot(res: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["runs"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([r["size"] for r in rows], [r["speedup"] for r in rows], color="tab:blue")
    ax.axhline(1.0, color="grey", lw=1)
    ax.set_ylabel("speed-up of batch 2 over 2 x batch 1")
    ax.set_title(f"GOP batching, Wan-{res['wan_config']} transformer, {res['device_name']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wan-config", default="1.3b", choices=sorted(WAN_CONFIGS))
    p.add_argument("--device", default="cuda")
    p.add_argument("--sizes", default="720p,480p,cif", help=f"of {', '.join(LATENT_SIZES)}")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--plot", metavar="FILE.png")
    a = p.parse_args(argv)
    device = torch.device(a.device)
    t, kernels = build(a.wan_config, device)
    res = {"bench": "gop_batch", "wan_config": a.wan_config, "device": str(device),
           "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "torch": torch.__version__, "dtype": str(t.dtype).removeprefix("torch."), "kernels": kernels,
           "runs": [measure(t, s, device, a.repeats) for s in a.sizes.split(",")]}
    emit_json(res, a.json)
    if a.plot:
        plot(res, a.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
