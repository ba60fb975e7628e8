"""tools.train_prior on tiny models: training resumes from its checkpoints and exports a folder WanPrior loads."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from gvc.priors.base import Conditioning
from gvc.priors.wan import WanPrior
from tools import train_prior

TINY_VAE = {"base_dim": 4, "dim_mult": [1, 1, 1, 1]}
TINY_TRANSFORMER = {"num_layers": 1, "ffn_dim": 32, "attention_head_dim": 8, "num_attention_heads": 2, "freq_dim": 32}


@pytest.fixture(scope="module")
def clips(tmp_path_factory, clips_dir):
    src = clips_dir / "carphone_176x144.mp4"
    if not src.exists():
        pytest.skip("real clips not found")
    d = tmp_path_factory.mktemp("clips")
    shutil.copy(src, d / src.name)
    return d


def _train(clips, run, *extra):
    args = ["train", "--clips", str(clips), "--run", str(run), "--device", "cpu", "--vae-minutes", "0.02",
            "--vae-batch", "1", "--vae-frames", "5", "--vae-crop", "32", "--flow-minutes", "0.02",
            "--flow-examples", "2", "--flow-crop", "64", "--flow-batch", "1", "--stat-windows", "1",
            "--vae-config", json.dumps(TINY_VAE), "--transformer-config", json.dumps(TINY_TRANSFORMER), *extra]
    saved = dict(train_prior.VAE_CONFIG), dict(train_prior.TRANSFORMER_CONFIG)
    try:
        assert train_prior.main(args) == 0
    finally:  # main() updates the module's configs in place for the tiny models
        train_prior.VAE_CONFIG.clear(), train_prior.VAE_CONFIG.update(saved[0])
        train_prior.TRANSFORMER_CONFIG.clear(), train_prior.TRANSFORMER_CONFIG.update(saved[1])
    return json.loads((run / "state.json").read_text())


def test_training_resumes_and_exports(clips, tmp_path, monkeypatch):
    run = tmp_path / "run"
    first = _train(clips, run)
    assert first["vae"]["steps"] >= 1 and first["flow"]["steps"] >= 1
    second = _train(clips, run, "--resume")
    assert second["flow"]["runs"] == 2 and second["flow"]["steps"] > first["flow"]["steps"]
    assert second["vae"]["steps"] > first["vae"]["steps"]
    assert second["flow"]["seconds"] > first["flow"]["seconds"]
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in rows} == {"vae", "flow"}  # each run logs its last loss at least

    # the export is a Diffusers folder that the codec's Wan adapter loads, unconditional runs included
    monkeypatch.setattr(train_prior, "VAE_CONFIG", dict(train_prior.VAE_CONFIG, **TINY_VAE))
    monkeypatch.setattr(train_prior, "TRANSFORMER_CONFIG", dict(train_prior.TRANSFORMER_CONFIG, **TINY_TRANSFORMER))
    out = tmp_path / "model"
    train_prior.export(run, out, "tiny-test")
    prior = WanPrior.from_pretrained(out)
    assert prior.name == "tiny-test" and prior.unconditional
    stats = json.loads((run / "latent_stats.json").read_text())
    assert prior.vae.config.latents_mean == pytest.approx(stats["mean"])
    shape = prior.geometry.latent_shape(5, 32, 32)
    x = torch.randn(shape)
    u_none = prior.velocity(x, 0.5, prior.condition(Conditioning(frames=5), shape))
    first = torch.rand(3, 32, 32)
    u_first = prior.velocity(x, 0.5, prior.condition(Conditioning(first_frame=first, frames=5), shape))
    assert u_none.shape == shape and not torch.equal(u_none, u_first)
    # the hash covers the configs too: another latent scale is another prior
    cfg = json.loads((out / "vae" / "config.json").read_text())
    cfg["latents_std"] = [s * 2 for s in cfg["latents_std"]]
    sha = prior.weights_sha256()
    (out / "vae" / "config.json").write_text(json.dumps(cfg))
    assert WanPrior.from_pretrained(out).weights_sha256() != sha
