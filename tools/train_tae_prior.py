"""Train the flow model of GVC's v2 default prior in the TAEF2 latent space (python -m tools.train_tae_prior).

    python -m tools.train_tae_prior train --taef2 DIR --videos DIR [--photos DIR] [--holdout CLIP ...] \\
        --run RUN [--minutes 8] [--resume | --init-from gvc/zoo/gvc_tae_small]
    python -m tools.train_tae_prior export --run RUN --taef2 DIR --to gvc/zoo/gvc_tae_small
    python -m tools.train_tae_prior plot --run RUN --to docs/img/prior_v2_loss.png

The autoencoder is TAEF2, frozen (its encode→decode ceiling already clears the targets; see docs/models.md).
Only the ``WanTransformer3DModel`` is trained, by flow matching (x_t = (1−t)x0 + tε, target u = ε − x0, t from the
codec's shifted schedule), with the conditioning dropped at random to none / first / first+last frame and built
by :func:`gvc.priors.tae.anchor_inputs`, the function the codec uses.

Data, all encoded once at the start into latents on the device:
- every video in ``--videos`` at its own scale (short side ≤ 288) and squashed to 352×288, each also mirrored;
  windows of 33 frames at temporal stride 1 or 2 and random 352×288 crops (36×44 latents);
- every photo in ``--photos`` as synthetic camera motion: 33-frame pans, zooms and small rotations over the photo
  at several scales (and one still window per photo: a one-frame clip repeated).
The training loop, checkpoints (safetensors: weights, Adam moments, step), resumption and the GPU-seconds log
are those of :mod:`tools.train_prior`.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gvc.priors import taef2
from gvc.priors.tae import anchor_inputs
from tools.train_prior import (RunState, _resize, flow_loss, load_checkpoint, read_clip, run_stage,
                               save_checkpoint)

TRANSFORMER_CONFIG = dict(
    patch_size=[1, 4, 4], num_attention_heads=4, attention_head_dim=64, in_channels=65, out_channels=32,
    text_dim=32, freq_dim=256, ffn_dim=1024, num_layers=6, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
    eps=1e-6, image_dim=None, added_kv_proj_dim=None, rope_max_seq_len=1024,
)
FRAMES = 33
CIF = (288, 352)
LAT = (CIF[0] // 8, CIF[1] // 8)
CONDITION_DROP = {"none": 0.2, "first": 0.4, "first_last": 0.4}


def load_taef2(folder: Path, device):
    from safetensors.torch import load_file

    enc, dec = taef2.encoder(), taef2.decoder()
    for m, n in ((enc, "encoder"), (dec, "decoder")):
        m.load_state_dict({k: v.float() for k, v in load_file(str(folder / f"taef2_{n}.safetensors")).items()})
    return enc.to(device).eval(), dec.to(device).eval()


@torch.no_grad()
def encode_frames(enc, frames: torch.Tensor) -> torch.Tensor:
    """uint8 [F, H, W, 3] on the device -> raw latents bf16 [F, 32, H/8, W/8]."""
    out = []
    for c in frames.split(64):
        out.append(enc(c.permute(0, 3, 1, 2).float() / 255.0).to(torch.bfloat16))
    return torch.cat(out)


def read_photo(path: Path) -> torch.Tensor:
    """A photo as uint8 [H, W, 3] (Pillow)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB")).copy())


def video_scales(v: torch.Tensor) -> list[torch.Tensor]:
    """A clip at its own scale (short side <= 288, when that still holds a 352x288 crop) and squashed to CIF."""
    f, h, w, _ = v.shape
    out = [_resize(v, *CIF)]
    s = min(1.0, 288 / min(h, w))
    oh, ow = int(round(h * s / 8)) * 8, int(round(w * s / 8)) * 8
    if oh >= CIF[0] and ow >= CIF[1] and (oh, ow) != CIF:
        out.append(_resize(v, oh, ow) if s < 1 else v)
    return out


def camera_motion(photo: torch.Tensor, rng: random.Random, still: bool = False) -> torch.Tensor:
    """A 33-frame 288x352 window moving over a photo (float [3, H, W] in [0, 1]) -> uint8 [33, 288, 352, 3]."""
    _, h, w = photo.shape
    aspect = CIF[1] / CIF[0]
    base = rng.uniform(0.35, 1.0)  # window height as a fraction of what fits
    fit = min(h, w / aspect) / h
    zoom = 1.0 if still else math.exp(rng.uniform(-0.25, 0.25))
    rot = 0.0 if still else rng.uniform(-0.08, 0.08)
    travel = 0.0 if still else rng.uniform(0.0, 0.6)
    ang = rng.uniform(0, 2 * math.pi)
    t = torch.linspace(0, 1, FRAMES, device=photo.device)
    sh = base * fit * zoom ** t  # window height in units of photo height (normalised grid spans 2)
    sw = sh * aspect * h / w
    room_y, room_x = (1 - sh.max().item()), (1 - sw.max().item())
    cy0, cx0 = rng.uniform(-room_y, room_y), rng.uniform(-room_x, room_x)
    cy = (cy0 + travel * room_y * math.sin(ang) * (t - 0.5)).clamp(-room_y, room_y)
    cx = (cx0 + travel * room_x * math.cos(ang) * (t - 0.5)).clamp(-room_x, room_x)
    a = rot * t
    theta = torch.zeros(FRAMES, 2, 3, device=photo.device)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = sw * torch.cos(a), -sw * torch.sin(a) * h / w, cx
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = sh * torch.sin(a) * w / h, sh * torch.cos(a), cy
    grid = F.affine_grid(theta, [FRAMES, 3, *CIF], align_corners=False)
    x = F.grid_sample(photo[None].expand(FRAMES, -1, -1, -1), grid, mode="bicubic", padding_mode="reflection",
                      align_corners=False)
    if rng.random() < 0.5:
        x = x.flip(3)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


class LatentData:
    """Raw latents of every training source on the device; draws normalised 33-frame 36x44 windows."""

    def __init__(self, enc, videos: list[Path], photos: list[Path], windows_per_photo: int, device, seed: int,
                 length: int = FRAMES, cif_only: bool = False, max_frames: int | None = None, flip: bool = True):
        rng = random.Random(seed)
        self.length = length  # frames per training window (33 = the codec's GOP)
        self.videos: list[torch.Tensor] = []
        self.pictures: list[torch.Tensor] = []  # uint8 [F, H, W, 3] frames, for the decoder fine-tune
        for p in videos:
            for v in video_scales(read_clip(p)[:max_frames].to(device))[:1 if cif_only else None]:
                if v.shape[0] >= length:
                    self.videos += [encode_frames(enc, v)] + ([encode_frames(enc, v.flip(2))] if flip else [])
                    self.pictures.append(v)
        self.windows: list[torch.Tensor] = []
        for p in photos:
            self.pictures.append(read_photo(p).to(device)[None])
            im = self.pictures[-1][0].permute(2, 0, 1).float() / 255.0
            for i in range(windows_per_photo):
                self.windows.append(encode_frames(enc, camera_motion(im, rng, still=i == 0)))
        self.frames = sum(v.shape[0] for v in self.videos) + FRAMES * len(self.windows)
        parts = [v[::7] for v in self.videos] + [w[::11] for w in self.windows]
        z = torch.cat([p.float().transpose(0, 1).reshape(p.shape[1], -1) for p in parts], dim=1)  # [32, N]
        self.mean = z.mean(1)
        self.std = z.std(1).clamp_min(1e-3)

    def window(self, rng: random.Random, video_share: float) -> torch.Tensor:
        if self.windows and (not self.videos or rng.random() > video_share):
            t0 = rng.randrange(FRAMES - self.length + 1)
            return self.windows[rng.randrange(len(self.windows))][t0:t0 + self.length]
        while True:
            v = self.videos[rng.randrange(len(self.videos))]
            stride = rng.choice((1, 1, 2))
            span = (self.length - 1) * stride + 1
            if v.shape[0] >= span:
                break
        t0 = rng.randrange(v.shape[0] - span + 1)
        y0, x0 = rng.randrange(v.shape[2] - LAT[0] + 1), rng.randrange(v.shape[3] - LAT[1] + 1)
        return v[t0:t0 + span:stride, :, y0:y0 + LAT[0], x0:x0 + LAT[1]]

    def batch(self, n: int, rng: random.Random, video_share: float = 0.6) -> tuple[torch.Tensor, torch.Tensor]:
        """x0 [n, 32, 33, 36, 44] normalised, and the conditioning inputs y [n, 33, 33, 36, 44]."""
        x0s, ys = [], []
        for _ in range(n):
            z = (self.window(rng, video_share).float() - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)
            x0 = z.permute(1, 0, 2, 3)
            kind = rng.choices(list(CONDITION_DROP), weights=list(CONDITION_DROP.values()))[0]
            if kind == "none":
                y = torch.zeros(1 + x0.shape[0], *x0.shape[1:], device=x0.device)
            else:
                y = anchor_inputs(x0[:, 0], x0[:, -1] if kind == "first_last" else None, x0.shape[1])
            x0s.append(x0)
            ys.append(y)
        return torch.stack(x0s), torch.stack(ys)


def picture_batch(pictures: list[torch.Tensor], n: int, crop: int, rng: random.Random) -> torch.Tensor:
    """n random crops [n, 3, crop, crop] in [0, 1] of random frames (randomly mirrored)."""
    out = []
    while len(out) < n:
        v = pictures[rng.randrange(len(pictures))]
        f, h, w, _ = v.shape
        if h < crop or w < crop:
            continue
        t, y, x = rng.randrange(f), rng.randrange(h - crop + 1), rng.randrange(w - crop + 1)
        im = v[t, y:y + crop, x:x + crop].permute(2, 0, 1).float() / 255.0
        out.append(im.flip(2) if rng.random() < 0.5 else im)
    return torch.stack(out)


def finetune_decoder(a, enc, data: "LatentData", device, state: RunState) -> None:
    """Fine-tune TAEF2's decoder for MSE on the training pictures; the encoder (the latent space) stays frozen,
    so the flow model's data do not change. Saved as RUN/taef2_decoder.safetensors (float32)."""
    from safetensors.torch import load_file

    _, dec = load_taef2(a.taef2, device)
    ckpt = a.run / "taef2_decoder.safetensors"
    rng = random.Random(a.seed + 17)
    dec.train()
    opt = torch.optim.AdamW(dec.parameters(), lr=a.decoder_lr, weight_decay=0.0, betas=(0.9, 0.99))
    if not ckpt.exists() and a.init_from:  # continue from the exported (already fine-tuned) decoder
        sd = load_file(str(a.init_from / "autoencoder" / "taef2_decoder.safetensors"))
        dec.load_state_dict({k: v.float() for k, v in sd.items()})
        save_checkpoint(ckpt, dec, opt, 0)

    def loss_fn(step):
        x = picture_batch(data.pictures, a.decoder_batch, 256, rng)
        with torch.no_grad():
            z = enc(x)
        y = dec(z)
        mse = F.mse_loss(y.float(), x)
        return mse + 0.1 * (y.float() - x).abs().mean(), {"psnr": 10 * math.log10(1.0 / max(mse.item(), 1e-10))}

    args = argparse.Namespace(**dict(vars(a), init_from=None, resume=ckpt.exists()))
    run_stage("decoder", dec, opt, args, a.run, device, state, minutes=a.decoder_minutes, lr=a.decoder_lr,
              warmup_s=10.0, loss_fn=loss_fn, log_every=100, ckpt=ckpt)


@torch.no_grad()
def validation_loss(transformer, val: LatentData, device) -> float:
    transformer.eval()
    gen, rng = torch.Generator().manual_seed(0), random.Random(0)  # the same windows, t and noise every time
    losses = []
    for _ in range(4):
        x0, y = val.batch(8, rng)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            losses.append(flow_loss(transformer, x0, y, gen).item())
    transformer.train()
    return sum(losses) / len(losses)


def build_transformer():
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(**TRANSFORMER_CONFIG)


def train(a) -> int:
    device = torch.device(a.device)
    torch.manual_seed(a.seed)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    a.run.mkdir(parents=True, exist_ok=True)
    enc, _ = load_taef2(a.taef2, device)
    t0 = time.time()
    videos = sorted(p for p in a.videos.iterdir() if p.suffix in (".mp4", ".webm", ".mkv", ".y4m"))
    photos = sorted(p for p in a.photos.iterdir() if p.suffix in (".jpg", ".png")) if a.photos else []
    data = LatentData(enc, videos, photos, a.windows_per_photo, device, a.seed, a.window, a.cif_only,
                      a.max_video_frames, not a.no_flip)
    stats_file = a.run / "latent_stats.json"
    if a.init_from and not stats_file.exists():  # continue with the normalisation the weights were trained with
        cfg = json.loads((a.init_from / "autoencoder" / "config.json").read_text())
        stats_file.write_text(json.dumps({"mean": cfg["latents_mean"], "std": cfg["latents_std"]}))
    if stats_file.exists():
        stats = json.loads(stats_file.read_text())
        data.mean, data.std = (torch.tensor(stats[k], device=device) for k in ("mean", "std"))
    else:
        stats_file.write_text(json.dumps({"mean": data.mean.tolist(), "std": data.std.tolist()}))
    val = None
    if a.holdout:
        val = LatentData(enc, a.holdout, [], 0, device, 1, a.window, True)
        val.mean, val.std = data.mean, data.std
    print(f"data: {len(data.videos)} video latents, {len(data.windows)} photo windows, {data.frames} frames, "
          f"encoded in {time.time() - t0:.0f}s", flush=True)
    (a.run / "config.json").write_text(json.dumps({"transformer": TRANSFORMER_CONFIG,
                                                    "args": {k: str(v) for k, v in vars(a).items()}}, indent=2))
    state = RunState(a.run)
    if a.decoder_minutes > 0 or a.init_from:
        finetune_decoder(a, enc, data, device, state)
    transformer = build_transformer().to(device).train()
    opt = torch.optim.AdamW(transformer.parameters(), lr=a.lr, weight_decay=0.01, betas=(0.9, 0.99))
    runs = state.data.get("flow", {}).get("runs", 0)  # each run of a resumed training draws new data
    gen = torch.Generator(device).manual_seed(a.seed * 1000 + runs)
    rng = random.Random(a.seed * 1000 + runs)

    def loss_fn(step):
        x0, y = data.batch(a.batch, rng)
        return flow_loss(transformer, x0, y, gen), {}

    def on_log(step):
        return {"val_loss": validation_loss(transformer, val, device)} if val is not None and step % 500 == 0 else {}

    run_stage("flow", transformer, opt, a, a.run, device, state, minutes=a.minutes, lr=a.lr, warmup_s=20.0,
              loss_fn=loss_fn, log_every=100, on_log=on_log)
    print(json.dumps(state.data), flush=True)
    return 0


def export(run: Path, taef2_dir: Path, to: Path, name: str) -> None:
    """RUN's checkpoint -> the prior folder (autoencoder/ with TAEF2 and its licence, transformer/, card)."""
    from safetensors.torch import save_file

    stats = json.loads((run / "latent_stats.json").read_text())
    ae = to / "autoencoder"
    ae.mkdir(parents=True, exist_ok=True)
    for f in ("taef2_encoder.safetensors", "taef2_decoder.safetensors", "LICENSE"):
        shutil.copyfile(taef2_dir / f, ae / f)
    if (run / "taef2_decoder.safetensors").exists():  # the fine-tuned decoder replaces the released one
        dec = taef2.decoder()
        load_checkpoint(run / "taef2_decoder.safetensors", dec, None)
        save_file({k: v.detach().to(torch.float16).contiguous() for k, v in dec.state_dict().items()},
                  str(ae / "taef2_decoder.safetensors"))
    (ae / "config.json").write_text(json.dumps({"architecture": "TAEF2", "latents_mean": stats["mean"],
                                                "latents_std": stats["std"]}, indent=2) + "\n")
    TRANSFORMER_CONFIG.update(json.loads((run / "config.json").read_text())["transformer"])
    model = build_transformer()
    load_checkpoint(run / "transformer.safetensors", model, None)
    out = to / "transformer"
    out.mkdir(parents=True, exist_ok=True)
    model.save_config(out)
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(out / "diffusion_pytorch_model.safetensors"))
    state = json.loads((run / "state.json").read_text()) if (run / "state.json").exists() else {}
    card = {"name": name, "conditioning": ["none", "first", "first_last"], "text": "null-embedding",
            "autoencoder": "taef2", "training": state}
    (to / "gvc_prior.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"exported {name} to {to}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.train_tae_prior", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train (or resume) the flow model")
    t.add_argument("--taef2", type=Path, required=True, help="folder with taef2_{encoder,decoder}.safetensors")
    t.add_argument("--videos", type=Path, required=True, help="folder of training videos (held-out clips left out)")
    t.add_argument("--photos", type=Path, help="folder of training photos (jpg/png) for synthetic camera motion")
    t.add_argument("--holdout", type=Path, nargs="*", default=[], help="clips for the validation loss only")
    t.add_argument("--run", type=Path, required=True, help="run folder: checkpoint, log.jsonl, state.json")
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint in --run")
    t.add_argument("--init-from", type=Path, help="start from an exported prior folder's transformer weights")
    t.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--minutes", type=float, default=8.0)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--lr", type=float, default=4e-4)
    t.add_argument("--windows-per-photo", type=int, default=16)
    t.add_argument("--decoder-minutes", type=float, default=0.0, help="fine-tune TAEF2's decoder first (MSE)")
    t.add_argument("--decoder-batch", type=int, default=16)
    t.add_argument("--decoder-lr", type=float, default=1e-4)
    t.add_argument("--window", type=int, default=FRAMES, help="frames per training window (default 33, the GOP)")
    t.add_argument("--max-video-frames", type=int, help="use at most this many frames of each video")
    t.add_argument("--no-flip", action="store_true", help="no mirrored copies of the videos")
    t.add_argument("--cif-only", action="store_true", help="videos only squashed to 352x288 (less to encode)")
    t.add_argument("--transformer-config", type=json.loads, default=None, help=argparse.SUPPRESS)  # tests
    e = sub.add_parser("export", help="write the prior folder of a run")
    e.add_argument("--run", type=Path, required=True)
    e.add_argument("--taef2", type=Path, required=True)
    e.add_argument("--to", type=Path, required=True)
    e.add_argument("--name", default="gvc-tae-small-v2")
    a = p.parse_args(argv)
    if a.cmd == "export":
        export(a.run, a.taef2, a.to, a.name)
        return 0
    if a.transformer_config:
        TRANSFORMER_CONFIG.update(a.transformer_config)
    return train(a)


if __name__ == "__main__":
    sys.exit(main())
