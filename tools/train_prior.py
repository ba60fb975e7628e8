"""Train GVC's embedded default prior: a small Wan2.1-architecture latent video model (python -m tools.train_prior).

    python -m tools.train_prior train --clips DIR --run RUN [--vae-minutes 3.5] [--flow-minutes 4.5] [--device cuda]
    python -m tools.train_prior export --run RUN --to gvc/zoo/gvc_wan_small
    python -m tools.train_prior plot --run RUN --to docs/img/prior_loss.png

Two stages, each resumable from the checkpoint in RUN (``--resume``; a stage whose budget is spent is skipped):

1. **VAE** — an ``AutoencoderKLWan`` (causal 3-D convolutions, spatial stride 8, temporal stride 4, 16 latent
   channels, as Wan2.1's) trained on random crops of 17-frame windows: L1 + MSE in [-1, 1] plus a small KL term.
   Its per-channel latent mean/std are then measured and written into its config (Wan's latents_mean/std).
2. **Flow** — a ``WanTransformer3DModel`` with Wan's I2V input layout (16 noisy + 4 mask + 16 conditioning
   latent channels = 36) trained by flow matching (x_t = (1−t)x0 + tε, target u = ε − x0) with t drawn from the
   codec's shifted schedule (t = s·τ/(1+(s−1)τ), τ ~ U(0,1), s = 3). Conditioning is dropped at random to none /
   first frame / first+last frame, built exactly as :class:`gvc.priors.wan.WanPrior` builds it at coding time
   (mask + VAE latents of [first, zeros…, last]), so one model serves T2V, I2V and FLF2V. The text input is Wan's
   null embedding (zeros, 512 tokens): GVC's default prior ignores prompts.

Data: every clip in ``--clips`` (the held-out evaluation clips are simply not given); each is used at its own
scale (short side ≤ 288) and squashed to 352×288 (the evaluation geometry), with random crops, horizontal flips
and temporal strides 1 and 2. Checkpoints (safetensors, never pickle) hold weights, Adam moments and the step;
``RUN/log.jsonl`` holds the loss curves and ``RUN/state.json`` the seconds of accelerator time used so far.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gvc.priors.wan import anchor_mask

VAE_CONFIG = dict(
    base_dim=16, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=1, attn_scales=[],
    temperal_downsample=[False, True, True], dropout=0.0,
    latents_mean=[0.0] * 16, latents_std=[1.0] * 16,
)
TRANSFORMER_CONFIG = dict(
    patch_size=[1, 2, 2], num_attention_heads=4, attention_head_dim=64, in_channels=36, out_channels=16,
    text_dim=32, freq_dim=256, ffn_dim=768, num_layers=4, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
    eps=1e-6, image_dim=None, added_kv_proj_dim=None, rope_max_seq_len=1024,
)
TEXT_LEN = 512
SHIFT = 3.0
CIF = (288, 352)  # (H, W)
CONDITION_DROP = {"none": 0.2, "first": 0.4, "first_last": 0.4}


# ------------------------------------------------------------------------------------------ data
def read_clip(path: Path) -> torch.Tensor:
    """All frames of a video file as uint8 [F, H, W, 3] (PyAV, else OpenCV)."""
    try:
        import av

        with av.open(str(path)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    except ImportError:
        import cv2

        cap, frames = cv2.VideoCapture(str(path)), []
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(bgr[:, :, ::-1].copy())
    if not frames:
        raise SystemExit(f"train_prior: no frames in {path}")
    import numpy as np

    return torch.from_numpy(np.stack(frames))


def _resize(video: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """uint8 [F, H, W, 3] -> uint8 [F, h, w, 3], bicubic with antialiasing, in chunks."""
    out = []
    for chunk in video.split(32):
        x = chunk.permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
        out.append(x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1))
    return torch.cat(out)


class ClipBank:
    """The training clips at their training scales, kept as uint8 on the training device."""

    def __init__(self, paths: list[Path], device):
        self.videos: list[torch.Tensor] = []
        self.names: list[str] = []
        for p in paths:
            v = read_clip(p)
            f, h, w, _ = v.shape
            scale = min(1.0, 288 / min(h, w))
            own = _resize(v, int(round(h * scale / 8)) * 8, int(round(w * scale / 8)) * 8) if scale < 1 else v
            for name, video in ((f"{p.stem}@own", own), (f"{p.stem}@cif", _resize(v, *CIF))):
                self.videos.append(video.to(device))
                self.names.append(name)
        self.device = device

    def window(self, frames: int, crop: int, rng: random.Random) -> torch.Tensor:
        """A random window [3, frames, crop, crop] in [-1, 1]: random clip, stride 1-2, crop and flip."""
        while True:
            v = self.videos[rng.randrange(len(self.videos))]
            f, h, w, _ = v.shape
            stride = rng.choice((1, 2))
            span = (frames - 1) * stride + 1
            if f >= span and h >= crop and w >= crop:
                break
        t0, y0, x0 = rng.randrange(f - span + 1), rng.randrange(h - crop + 1), rng.randrange(w - crop + 1)
        x = v[t0:t0 + span:stride, y0:y0 + crop, x0:x0 + crop]
        if rng.random() < 0.5:
            x = x.flip(2)
        return x.permute(3, 0, 1, 2).float() / 127.5 - 1.0

    def batch(self, n: int, frames: int, crop: int, rng: random.Random) -> torch.Tensor:
        return torch.stack([self.window(frames, crop, rng) for _ in range(n)])


# ------------------------------------------------------------------------------------------ checkpoints
def save_checkpoint(path: Path, model, opt, step: int, extra: dict | None = None) -> None:
    """Weights + Adam moments + step in one safetensors file (moments in bfloat16 to halve its size)."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p)
            if st:
                n = names[id(p)]
                tensors[f"adam.{n}.exp_avg"] = st["exp_avg"].detach().to(torch.bfloat16).cpu().contiguous()
                tensors[f"adam.{n}.exp_avg_sq"] = st["exp_avg_sq"].detach().to(torch.bfloat16).cpu().contiguous()
    meta = {"step": str(step), "extra": json.dumps(extra or {})}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)  # an interrupted save never leaves a half-written checkpoint


def load_checkpoint(path: Path, model, opt) -> tuple[int, dict]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    step = int(meta["step"])
    if opt is not None:
        for n, p in model.named_parameters():
            if f"adam.{n}.exp_avg" in tensors:
                opt.state[p] = {
                    "step": torch.tensor(float(step)),
                    "exp_avg": tensors[f"adam.{n}.exp_avg"].to(p.device, torch.float32),
                    "exp_avg_sq": tensors[f"adam.{n}.exp_avg_sq"].to(p.device, torch.float32),
                }
    return step, json.loads(meta.get("extra", "{}"))


def init_weights(model, folder: Path) -> None:
    """Start from an exported model's weights (e.g. the shipped one), with a fresh optimiser."""
    from safetensors.torch import load_file

    sd = load_file(str(folder / "diffusion_pytorch_model.safetensors"))
    model.load_state_dict({k: v.float() for k, v in sd.items()})
    print(f"initialised from {folder}", flush=True)


class RunState:
    """RUN/state.json: seconds of accelerator time and steps per stage, summed over every run."""

    def __init__(self, run: Path):
        self.path = run / "state.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {}

    def add(self, stage: str, seconds: float, steps: int, device: str) -> None:
        """Record one run of a stage: `steps` optimiser steps taken in this run."""
        s = self.data.setdefault(stage, {"seconds": 0.0, "steps": 0, "runs": 0, "devices": []})
        s["seconds"] += seconds
        s["steps"] += steps
        s["runs"] += 1
        if device not in s["devices"]:
            s["devices"].append(device)
        self.path.write_text(json.dumps(self.data, indent=2))


def log(run: Path, **row) -> None:
    with open(run / "log.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


def lr_at(elapsed: float, budget: float, base: float, warmup_s: float) -> float:
    """Linear warm-up, flat, then a linear decay to 10% over the last 30% of this run's time budget."""
    if elapsed < warmup_s:
        return base * max(elapsed / warmup_s, 0.05)
    frac = elapsed / budget
    return base * (1.0 if frac < 0.7 else max(0.1, 1.0 - (frac - 0.7) / 0.3 * 0.9))


# ------------------------------------------------------------------------------------------ stage 1: VAE
def build_vae(config: dict | None = None):
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan(**(config or VAE_CONFIG))


def vae_loss(vae, x: torch.Tensor, kl_weight: float) -> tuple[torch.Tensor, dict]:
    dist = vae.encode(x).latent_dist
    rec = vae.decode(dist.sample()).sample
    mse = F.mse_loss(rec.float(), x)
    l1 = (rec.float() - x).abs().mean()
    kl = 0.5 * (dist.mean.float() ** 2 + dist.var.float() - 1.0 - dist.logvar.float()).mean()
    psnr = 10 * math.log10(4.0 / max(mse.item(), 1e-10))
    return l1 + mse + kl_weight * kl, {"mse": mse.item(), "kl": kl.item(), "psnr": psnr}


def run_stage(stage: str, model, opt, args, run: Path, device, state: RunState, *, minutes: float, lr: float,
              warmup_s: float, loss_fn, log_every: int, on_log=None, ckpt: Path | None = None):
    """The training loop both stages share: resume or initialise, train for `minutes` of wall time with the
    schedule of :func:`lr_at`, log every `log_every` steps, checkpoint every 2 minutes and at the end.

    ``loss_fn(step)`` returns (loss, dict of floats to log); ``on_log(step)`` may add entries to a log row."""
    ckpt = ckpt or run / f"{'vae' if stage == 'vae' else 'transformer'}.safetensors"
    step = start = 0
    if args.resume and ckpt.exists():
        step = start = load_checkpoint(ckpt, model, opt)[0]
        print(f"{stage}: resumed at step {step}", flush=True)
    elif args.init_from:
        init_weights(model, args.init_from / ("vae" if stage == "vae" else "transformer"))
    budget = minutes * 60
    if budget <= 0:
        return model
    amp = device.type == "cuda"
    t0 = last_save = time.time()
    def report(elapsed, loss, parts):
        row = {"stage": stage, "step": step, "t": round(elapsed, 1), "loss": loss.item(), **parts,
               **(on_log(step) if on_log else {})}
        log(run, **row)
        print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)

    while (elapsed := time.time() - t0) < budget:
        for g in opt.param_groups:
            g["lr"] = lr_at(elapsed, budget, lr, min(warmup_s, budget * 0.1))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss, parts = loss_fn(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % log_every == 0:
            report(elapsed, loss, parts)
        if time.time() - last_save > 120:
            save_checkpoint(ckpt, model, opt, step)
            last_save = time.time()
    if step > start and step % log_every:
        report(elapsed, loss, parts)  # the stage's last loss is always in the log
    save_checkpoint(ckpt, model, opt, step)
    state.add(stage, time.time() - t0, step - start, str(device))
    return model


def train_vae(args, bank: ClipBank, run: Path, device, state: RunState):
    vae = build_vae().to(device).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, weight_decay=0.0, betas=(0.9, 0.99))
    rng = random.Random(args.seed * 7919 + args.resume)

    def loss_fn(step):
        return vae_loss(vae, bank.batch(args.vae_batch, args.vae_frames, args.vae_crop, rng), args.kl_weight)

    return run_stage("vae", vae, opt, args, run, device, state, minutes=args.vae_minutes, lr=args.vae_lr,
                     warmup_s=30.0, loss_fn=loss_fn, log_every=25)


@torch.no_grad()
def latent_statistics(vae, bank: ClipBank, rng: random.Random, n: int = 64) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the VAE posterior means over random 33-frame windows."""
    zs = []
    crop = 256 if min(min(v.shape[1:3]) for v in bank.videos) >= 256 else 128
    for _ in range(max(1, n // 8)):
        x = bank.batch(min(8, n), 33, crop, rng)
        zs.append(vae.encode(x).latent_dist.mode().float().transpose(0, 1).reshape(16, -1))
    z = torch.cat(zs, dim=1)
    return z.mean(1).tolist(), z.std(1).clamp_min(1e-3).tolist()


# ------------------------------------------------------------------------------------------ stage 2: flow
def build_transformer(config: dict | None = None):
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(**(config or TRANSFORMER_CONFIG))


class LatentBank:
    """Precomputed flow-training examples: x0 and the three conditioning variants' y, normalised."""

    def __init__(self, vae, bank: ClipBank, n: int, crop: int, mean, std, rng: random.Random, batch: int = 8):
        dev = bank.device
        self.mean = torch.tensor(mean, device=dev).view(1, -1, 1, 1, 1)
        self.inv_std = 1.0 / torch.tensor(std, device=dev).view(1, -1, 1, 1, 1)
        x0s, firsts, fls = [], [], []
        with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            for i in range(0, n, batch):
                x = bank.batch(min(batch, n - i), 33, crop, rng)
                cf = torch.zeros_like(x)
                cf[:, :, 0] = x[:, :, 0]
                cfl = cf.clone()
                cfl[:, :, -1] = x[:, :, -1]
                x0s.append(self.encode(vae, x))
                firsts.append(self.encode(vae, cf))
                fls.append(self.encode(vae, cfl))
            self.none = self.encode(vae, torch.zeros_like(x[:1]))[0]
        self.x0, self.first, self.first_last = torch.cat(x0s), torch.cat(firsts), torch.cat(fls)
        h, w = self.x0.shape[-2:]
        # the mask exactly as the codec builds it at coding time
        self.masks = {k: anchor_mask(33, h, w, k != "none", k == "first_last", 4).to(dev)
                      for k in CONDITION_DROP}

    def encode(self, vae, x: torch.Tensor) -> torch.Tensor:
        z = vae.encode(x).latent_dist.mode().float()
        return ((z - self.mean) * self.inv_std).to(torch.bfloat16)

    def batch(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, self.x0.shape[0], (n,), generator=gen, device="cpu").tolist()
        kinds = random.Random(int(torch.randint(0, 2**31, (1,), generator=gen))).choices(
            list(CONDITION_DROP), weights=list(CONDITION_DROP.values()), k=n)
        x0 = self.x0[idx].float()
        ys = []
        for i, k in zip(idx, kinds):
            lat = {"none": self.none, "first": self.first[i], "first_last": self.first_last[i]}[k].float()
            ys.append(torch.cat([self.masks[k], lat], dim=0))
        return x0, torch.stack(ys)


def shifted_t(n: int, gen: torch.Generator, device, shift: float = SHIFT) -> torch.Tensor:
    tau = torch.rand(n, generator=gen, device=gen.device).clamp(1e-4, 1.0)
    return (shift * tau / (1.0 + (shift - 1.0) * tau)).to(device)


def flow_loss(transformer, x0: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = x0.shape[0]
    t = shifted_t(n, gen, x0.device)
    eps = torch.randn(x0.shape, generator=gen, device=gen.device).to(x0.device)  # on the GPU: CPU noise was the bottleneck
    tt = t.view(-1, 1, 1, 1, 1)
    xt = (1 - tt) * x0 + tt * eps
    text = torch.zeros(n, TEXT_LEN, transformer.config.text_dim, device=x0.device)
    pred = transformer(hidden_states=torch.cat([xt, y], 1), timestep=1000.0 * t, encoder_hidden_states=text,
                       return_dict=False)[0]
    return F.mse_loss(pred.float(), eps - x0)


def train_flow(args, vae, bank: ClipBank, holdout: ClipBank | None, run: Path, device, state: RunState):
    mean, std = json.loads((run / "latent_stats.json").read_text()).values()
    rng = random.Random(args.seed * 104729)
    vae.eval()
    t_enc = time.time()
    data = LatentBank(vae, bank, args.flow_examples, args.flow_crop, mean, std, rng)
    val = LatentBank(vae, holdout, args.val_examples, args.flow_crop, mean, std, random.Random(1)) if holdout else None
    print(f"flow: {data.x0.shape[0]} examples {tuple(data.x0.shape[1:])} encoded in {time.time() - t_enc:.0f}s", flush=True)
    transformer = build_transformer().to(device).train()
    opt = torch.optim.AdamW(transformer.parameters(), lr=args.flow_lr, weight_decay=0.01, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(args.seed + args.resume)
    amp = device.type == "cuda"

    def loss_fn(step):
        x0, y = data.batch(args.flow_batch, gen)
        return flow_loss(transformer, x0, y, gen), {}

    def on_log(step):
        return {"val_loss": validation_loss(transformer, val, amp, device)} if val is not None and step % 250 == 0 else {}

    return run_stage("flow", transformer, opt, args, run, device, state, minutes=args.flow_minutes, lr=args.flow_lr,
                     warmup_s=20.0, loss_fn=loss_fn, log_every=50, on_log=on_log)


@torch.no_grad()
def validation_loss(transformer, val: LatentBank, amp: bool, device) -> float:
    transformer.eval()
    gen = torch.Generator().manual_seed(0)  # the same t, noise and conditioning every time
    losses = []
    for _ in range(4):
        x0, y = val.batch(8, gen)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            losses.append(flow_loss(transformer, x0, y, gen).item())
    transformer.train()
    return sum(losses) / len(losses)


# ------------------------------------------------------------------------------------------ export / plot
def export(run: Path, to: Path, name: str) -> None:
    """RUN's checkpoints -> a Diffusers folder (vae/, transformer/: config.json + float16 safetensors)."""
    from safetensors.torch import save_file

    stats = json.loads((run / "latent_stats.json").read_text())
    vae_cfg = dict(VAE_CONFIG, latents_mean=stats["mean"], latents_std=stats["std"])
    for sub, model, ckpt in (("vae", build_vae(vae_cfg), "vae.safetensors"),
                             ("transformer", build_transformer(), "transformer.safetensors")):
        load_checkpoint(run / ckpt, model, None)
        out = to / sub
        out.mkdir(parents=True, exist_ok=True)
        model.save_config(out)
        sd = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
        save_file(sd, str(out / "diffusion_pytorch_model.safetensors"))
    state = json.loads((run / "state.json").read_text()) if (run / "state.json").exists() else {}
    card = {"name": name, "conditioning": ["none", "first", "first_last"], "text": "null-embedding",
            "training": state}
    (to / "gvc_prior.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"exported {name} to {to}")


def plot(run: Path, to: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    vae = [r for r in rows if r["stage"] == "vae"]
    flow = [r for r in rows if r["stage"] == "flow"]
    if vae:
        axes[0].plot([r["step"] for r in vae], [r["psnr"] for r in vae], lw=0.8)
        axes[0].set(title="VAE reconstruction (training crops)", xlabel="step", ylabel="PSNR dB")
    if flow:
        axes[1].plot([r["step"] for r in flow], [r["loss"] for r in flow], lw=0.8, label="train")
        v = [r for r in flow if "val_loss" in r]
        if v:
            axes[1].plot([r["step"] for r in v], [r["val_loss"] for r in v], "o-", ms=3, label="held-out clips")
        axes[1].set(title="Flow-matching loss", xlabel="step", ylabel="MSE of velocity", yscale="log")
        axes[1].legend()
    fig.tight_layout()
    to.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(to, dpi=110)
    print(f"wrote {to}")


# ------------------------------------------------------------------------------------------ CLI
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.train_prior", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train (or resume) both stages")
    t.add_argument("--clips", type=Path, required=True, help="folder of training clips (held-out clips left out)")
    t.add_argument("--holdout", type=Path, nargs="*", default=[], help="clips for the validation loss only")
    t.add_argument("--run", type=Path, required=True, help="run folder: checkpoints, log.jsonl, state.json")
    t.add_argument("--resume", action="store_true", help="continue from the checkpoints in --run")
    t.add_argument("--init-from", type=Path, help="start from the weights of an exported folder (no checkpoint)")
    t.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--vae-minutes", type=float, default=3.5)
    t.add_argument("--vae-batch", type=int, default=8)
    t.add_argument("--vae-frames", type=int, default=17)
    t.add_argument("--vae-crop", type=int, default=128)
    t.add_argument("--vae-lr", type=float, default=3e-4)
    t.add_argument("--kl-weight", type=float, default=1e-4)
    t.add_argument("--flow-minutes", type=float, default=4.5)
    t.add_argument("--flow-examples", type=int, default=1024)
    t.add_argument("--flow-crop", type=int, default=256)
    t.add_argument("--flow-batch", type=int, default=16)
    t.add_argument("--flow-lr", type=float, default=4e-4)
    t.add_argument("--val-examples", type=int, default=32, help="held-out windows for the validation loss")
    t.add_argument("--stat-windows", type=int, default=64, help="windows for the latent mean/std")
    t.add_argument("--vae-config", type=json.loads, default=None, help=argparse.SUPPRESS)  # tests: tiny models
    t.add_argument("--transformer-config", type=json.loads, default=None, help=argparse.SUPPRESS)
    e = sub.add_parser("export", help="write the Diffusers folder of a run")
    e.add_argument("--run", type=Path, required=True)
    e.add_argument("--to", type=Path, required=True)
    e.add_argument("--name", default="gvc-wan-small-v1")
    g = sub.add_parser("plot", help="loss curves of a run as PNG")
    g.add_argument("--run", type=Path, required=True)
    g.add_argument("--to", type=Path, required=True)
    a = p.parse_args(argv)
    if a.cmd == "export":
        export(a.run, a.to, a.name)
        return 0
    if a.cmd == "plot":
        plot(a.run, a.to)
        return 0
    if a.vae_config:
        VAE_CONFIG.update(a.vae_config)
    if a.transformer_config:
        TRANSFORMER_CONFIG.update(a.transformer_config)
    clips = sorted(a.clips.glob("*.mp4")) + sorted(a.clips.glob("*.y4m"))
    if not clips:
        print(f"train_prior: no clips in {a.clips}", file=sys.stderr)
        return 1
    device = torch.device(a.device)
    torch.manual_seed(a.seed)
    a.run.mkdir(parents=True, exist_ok=True)
    (a.run / "config.json").write_text(json.dumps({"vae": VAE_CONFIG, "transformer": TRANSFORMER_CONFIG,
                                                    "args": {k: str(v) for k, v in vars(a).items()}}, indent=2))
    bank = ClipBank(clips, device)
    holdout = ClipBank(a.holdout, device) if a.holdout else None
    print(f"data: {', '.join(f'{n} {tuple(v.shape)}' for n, v in zip(bank.names, bank.videos))}", flush=True)
    state = RunState(a.run)
    vae = train_vae(a, bank, a.run, device, state)
    if a.vae_minutes > 0 or not (a.run / "latent_stats.json").exists():
        mean, std = latent_statistics(vae.eval(), bank, random.Random(a.seed), a.stat_windows)
        (a.run / "latent_stats.json").write_text(json.dumps({"mean": mean, "std": std}))
    train_flow(a, vae, bank, holdout, a.run, device, state)
    print(json.dumps(state.data), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
