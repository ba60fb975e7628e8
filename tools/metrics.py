"""Quality metrics between a reference video and a distorted one, both y4m files of equal size and frame count.

* ``psnr-rgb``: mean over frames of the 8-bit RGB PSNR (``gvc.metrics.psnr``; frames read with
  ``VideoReader``, i.e. BT.601 limited-range YUV -> full-range RGB).
* ``psnr-y``: mean over frames of the luma PSNR, from ffmpeg's ``psnr`` filter on the YUV planes themselves.
* ``ms-ssim``: mean over frames of the 5-scale MS-SSIM (Wang, Simoncelli, Bovik 2003: weights 0.0448, 0.2856,
  0.3001, 0.2363, 0.1333; 11-tap Gaussian window, sigma 1.5; K1 0.01, K2 0.03; 2x2 average-pool
  downsampling) computed on **RGB** (each channel separately, then averaged), as CompressAI and
  pytorch-msssim do. Where a scale is smaller than the window (e.g. the 5th scale of a 144-line clip is 9
  lines) the window shrinks to that size, its sigma scaled in proportion.
* ``vmaf``: ffmpeg's ``libvmaf`` filter, built-in model (``vmaf_v0.6.1``), mean over frames.
* ``lpips``: only from a local TorchScript file (``LpipsModel``); never downloaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ffmpeg_bridge.ffmpeg import run_ffmpeg
from gvc.metrics import psnr
from gvc.errors import InputError

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
PSNR_CAP = 100.0  # same cap as gvc.metrics.psnr for identical frames


def read_rgb(path: str | os.PathLike) -> list[np.ndarray]:
    from ffmpeg_bridge.video_io import VideoReader

    with VideoReader(str(path)) as r:
        return list(r)


def mean_psnr_rgb(reference: list[np.ndarray], distorted: list[np.ndarray]) -> float:
    return float(np.mean([psnr(a, b) for a, b in zip(reference, distorted)]))


# -- MS-SSIM ---------------------------------------------------------------------------------------------

def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filter of [N, C, H, W], channel by channel."""
    n, c, h, w = x.shape
    k = window.to(x.dtype)
    x = F.conv2d(x.reshape(n * c, 1, h, w), k.view(1, 1, 1, -1))
    x = F.conv2d(x, k.view(1, 1, -1, 1))
    return x.reshape(n, c, *x.shape[-2:])


def _ssim_and_cs(x: torch.Tensor, y: torch.Tensor, data_range: float, window_size: int = 11, sigma: float = 1.5):
    """Per-image, per-channel mean SSIM and contrast-structure term, each [N, C]."""
    size = min(window_size, x.shape[-2], x.shape[-1])
    window = _gaussian_window(size, sigma * size / window_size)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = _blur(x, window), _blur(y, window)
    var_x = _blur(x * x, window) - mu_x**2
    var_y = _blur(y * y, window) - mu_y**2
    cov = _blur(x * y, window) - mu_x * mu_y
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    ssim = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs
    return ssim.mean(dim=(-2, -1)), cs.mean(dim=(-2, -1))


def ms_ssim_per_frame(reference: list[np.ndarray], distorted: list[np.ndarray], batch: int = 16) -> list[float]:
    """MS-SSIM of each frame pair (RGB uint8 [H, W, 3]), channel-averaged."""
    out: list[float] = []
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=torch.float64)
    for i in range(0, len(reference), batch):
        x = torch.from_numpy(np.stack(reference[i:i + batch])).permute(0, 3, 1, 2).double()
        y = torch.from_numpy(np.stack(distorted[i:i + batch])).permute(0, 3, 1, 2).double()
        terms = []
        for scale in range(len(MS_SSIM_WEIGHTS)):
            ssim, cs = _ssim_and_cs(x, y, 255.0)
            terms.append(ssim if scale == len(MS_SSIM_WEIGHTS) - 1 else cs)
            if scale < len(MS_SSIM_WEIGHTS) - 1:
                pad = (x.shape[-2] % 2, x.shape[-1] % 2)
                x, y = F.avg_pool2d(x, 2, padding=pad), F.avg_pool2d(y, 2, padding=pad)
        stacked = torch.relu(torch.stack(terms, dim=-1))  # [N, C, scales]
        per_channel = torch.prod(stacked ** weights, dim=-1)
        out += per_channel.mean(dim=1).tolist()
    return out


def mean_ms_ssim(reference: list[np.ndarray], distorted: list[np.ndarray]) -> float:
    return float(np.mean(ms_ssim_per_frame(reference, distorted)))


# -- ffmpeg filters --------------------------------------------------------------------------------------

def _filter_path(path: Path) -> str:
    """A file name quoted for an ffmpeg filter option."""
    return "'" + str(path).replace("\\", "\\\\").replace("'", "'\\''").replace(":", "\\:") + "'"


# Both inputs get the same timestamps (frame index, time base 1 s): frames are paired by position even when
# a raw elementary stream was decoded at ffmpeg's default 25 fps.
_ALIGN = "settb=1,setpts=N"


def _compare(distorted: Path, reference: Path, metric_filter: str) -> None:
    graph = f"[0:v]{_ALIGN}[d];[1:v]{_ALIGN}[r];[d][r]{metric_filter}"
    run_ffmpeg(["-i", str(distorted), "-i", str(reference), "-lavfi", graph, "-f", "null", "-"])


def mean_psnr_y(distorted: Path, reference: Path, work: Path) -> float:
    """Mean of ffmpeg's per-frame ``psnr_y`` (identical frames count as PSNR_CAP)."""
    log = work / "psnr.log"
    _compare(distorted, reference, f"psnr=stats_file={_filter_path(log)}")
    values = []
    for line in log.read_text().splitlines():
        fields = dict(kv.split(":", 1) for kv in line.split() if ":" in kv)
        if "psnr_y" in fields:
            v = float(fields["psnr_y"])  # "inf" parses to inf
            values.append(min(v, PSNR_CAP))
    if not values:
        raise InputError("ffmpeg psnr filter wrote no per-frame values")
    return float(np.mean(values))


def mean_vmaf(distorted: Path, reference: Path, work: Path, threads: int | None = None) -> float:
    """VMAF (libvmaf's built-in vmaf_v0.6.1 model), mean over frames."""
    log = work / "vmaf.json"
    n = threads or os.cpu_count() or 1
    _compare(distorted, reference, f"libvmaf=log_path={_filter_path(log)}:log_fmt=json:n_threads={n}")
    data = json.loads(log.read_text())
    return float(data["pooled_metrics"]["vmaf"]["mean"])


# -- LPIPS -----------------------------------------------------------------------------------------------

class LpipsModel:
    """LPIPS from a local TorchScript file: ``model(x, y)`` on RGB tensors [N, 3, H, W] in [-1, 1] returning
    one distance per image (the convention of the ``lpips`` package's ``LPIPS`` module, saved with
    ``torch.jit.script``/``trace``), e.g. made once where the lpips package and its AlexNet weights are local:
    ``torch.jit.trace(lpips.LPIPS(net="alex").eval(), (x, y)).save("lpips_alex.pt")``. Nothing is downloaded."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu"):
        if not Path(path).is_file():
            raise InputError(f"LPIPS weights not found: {path}")
        self.device = device
        self.model = torch.jit.load(str(path), map_location=device).eval()

    @torch.no_grad()
    def mean(self, reference: list[np.ndarray], distorted: list[np.ndarray], batch: int = 8) -> float:
        values = []
        for i in range(0, len(reference), batch):
            x, y = (torch.from_numpy(np.stack(f[i:i + batch])).permute(0, 3, 1, 2).float().div(127.5).sub(1)
                    .to(self.device) for f in (reference, distorted))
            values += self.model(x, y).reshape(-1).tolist()
        return float(np.mean(values))
