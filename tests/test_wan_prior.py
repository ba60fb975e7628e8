"""WanPrior on tiny random Wan2.1 models saved in the Diffusers layout (CPU, offline, a few seconds each)."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wan_tiny import build_tiny_wan  # noqa: E402

from gvc.errors import ParameterError  # noqa: E402
from gvc.kernels import rope_triton  # noqa: E402
from gvc.priors.base import Conditioning, FlowPrior, LatentGeometry  # noqa: E402
from gvc.priors.wan import TEXT_LEN, WanPrior, _vae_cpu_convs  # noqa: E402

H = W = 32  # frames: multiple of 16 (VAE stride 8 x patch 2); 32x32 -> 4x4 latents, 2x2 tokens per frame


def _frames(n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # 8-bit values, as decoded anchors are
    return torch.randint(0, 256, (n, 3, H, W), generator=g).float() / 255


_KINDS = {
    "t2v": dict(mode="t2v"),
    "t2v_notext": dict(mode="t2v", with_text_encoder=False),
    "i2v": dict(mode="i2v"),
    "i2v_clip": dict(mode="i2v", with_image_encoder=True),
    "flf2v_clip": dict(mode="flf2v", with_image_encoder=True),
}


class _Models:
    """Tiny model folders, built on first use (a test run of a subset builds only what it needs)."""

    def __init__(self, root: Path):
        self.root = root
        self._built: dict[str, Path] = {}

    def __getitem__(self, kind: str) -> Path:
        if kind not in self._built:
            name = "Wan2.1-T2V-tiny-Diffusers" if kind == "t2v" else kind
            self._built[kind] = build_tiny_wan(self.root / name, **_KINDS[kind])
        return self._built[kind]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return _Models(tmp_path_factory.mktemp("wan"))


@pytest.fixture(scope="module")
def t2v(models):
    return WanPrior.from_pretrained(models["t2v"])


def test_geometry_and_identity(t2v, models):
    assert isinstance(t2v, FlowPrior)
    g = t2v.geometry
    assert isinstance(g, LatentGeometry)
    assert (g.channels, g.spatial_stride, g.temporal_stride) == (16, 16, 4)  # 8 (VAE) x 2 (patch)
    assert g.vae_stride == 8
    assert g.latent_shape(9, 64, 48) == (16, 3, 8, 6)
    assert t2v.mode == "t2v" and not t2v.is_i2v
    assert t2v.name == "wan2.1:Wan2.1-T2V-tiny-Diffusers"[:32]
    assert len(t2v.name.encode("ascii")) <= 32
    digest = t2v.weights_sha256()
    assert isinstance(digest, bytes) and len(digest) == 32
    assert t2v.weights_sha256() is digest  # cached
    assert t2v.to("cpu") is t2v


@pytest.mark.parametrize("frames", [5, 9])
def test_encode_decode_shapes(t2v, frames):
    x = _frames(frames)
    z = t2v.encode(x)
    assert z.shape == t2v.geometry.latent_shape(frames, H, W) == (16, (frames - 1) // 4 + 1, H // 8, W // 8)
    assert z.dtype == torch.float32 and torch.isfinite(z).all()
    y = t2v.decode(z)
    assert y.shape == (frames, 3, H, W) and y.dtype == torch.float32
    assert y.min() >= 0 and y.max() <= 1


def test_encode_normalisation_and_determinism(t2v):
    x = _frames(5)
    z1, z2 = t2v.encode(x), t2v.encode(x.clone())
    assert torch.equal(z1, z2)
    # normalised latents = (posterior mean - latents_mean) / latents_std
    vae = t2v.vae
    with torch.no_grad():
        raw = vae.encode(x.permute(1, 0, 2, 3)[None] * 2 - 1).latent_dist.mean[0]
    mean = torch.tensor(vae.config.latents_mean).view(-1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(-1, 1, 1, 1)
    torch.testing.assert_close(z1, (raw - mean) / std, rtol=1e-5, atol=1e-5)


def test_encode_rejects_bad_sizes(t2v):
    with pytest.raises(ParameterError):
        t2v.encode(_frames(6))
    with pytest.raises(ParameterError):
        t2v.encode(torch.rand(5, 3, 36, 32))


def test_velocity_shape_determinism_prompt_cache(t2v):
    shape = t2v.geometry.latent_shape(9, H, W)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    cond = t2v.condition(Conditioning(prompt="a cat walking"), shape)
    pe = cond.extra["wan"]["prompt_embeds"]
    assert pe.shape == (1, TEXT_LEN, t2v.text_dim)
    assert pe[0, 4:].abs().sum() == 0 and pe[0, :4].abs().sum() > 0  # 3 words + </s>, zero padding after
    assert t2v.prompt_embeds("a  cat walking ") is pe  # cleaned + cached per prompt
    u1 = t2v.velocity(x, 0.6, cond)
    u2 = t2v.velocity(x.clone(), 0.6, Conditioning(prompt="a cat walking"))  # conditions lazily
    assert u1.shape == x.shape and u1.dtype == torch.float32 and torch.isfinite(u1).all()
    assert torch.equal(u1, u2)
    assert not torch.equal(u1, t2v.velocity(x, 0.3, cond))  # the timestep matters
    assert not torch.equal(u1, t2v.velocity(x, 0.6, Conditioning(prompt="")))  # the prompt matters


def test_t2v_refuses_anchors(t2v):
    cond = Conditioning(first_frame=_frames(1)[0])
    with pytest.raises(ParameterError, match="cannot condition on anchors"):
        t2v.condition(cond, t2v.geometry.latent_shape(5, H, W))


def test_euler_sampling_loop(t2v):
    """4 plain Euler steps x <- x - u dt from t=1 to t=0: the prior plugs into a sampler."""
    shape = t2v.geometry.latent_shape(5, H, W)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(7))
    cond = t2v.condition(Conditioning(prompt=""), shape)
    ts = torch.linspace(1, 0, 5).tolist()
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x - t2v.velocity(x, t, cond) * (t - t_next)
    assert torch.isfinite(x).all()
    video = t2v.decode(x)
    assert video.shape == (5, 3, H, W) and torch.isfinite(video).all()


def test_null_text_embedding(models):
    prior = WanPrior.from_pretrained(models["t2v_notext"])
    assert prior.text_encoder is None
    shape = prior.geometry.latent_shape(5, H, W)
    cond = prior.condition(Conditioning(prompt="ignored"), shape)
    pe = cond.extra["wan"]["prompt_embeds"]
    assert pe.shape == (1, 1, prior.text_dim) and pe.abs().sum() == 0  # one token: see null_text_embedding
    x = torch.randn(shape)
    u = prior.velocity(x, 0.5, cond)
    assert u.shape == shape and torch.isfinite(u).all()
    # what the pipelines' 512 zero tokens give, up to the rounding of their 512-term attention sums
    cond.extra["wan"]["prompt_embeds"] = torch.zeros(1, TEXT_LEN, prior.text_dim)
    u512 = prior.velocity(x, 0.5, cond)
    assert not torch.equal(u, u512)
    torch.testing.assert_close(u, u512, rtol=1e-5, atol=1e-5)


def test_cpu_vae_convs_run_onednn_as_aten_does(t2v):
    """On the CPU the VAE's Conv3d layers run oneDNN on channels-last weights (_vae_cpu_convs): the same
    convolutions as ATen's own kernels up to rounding, and the same bits every time."""
    convs = [m for m in t2v.vae.modules() if isinstance(m, torch.nn.Conv3d)]
    assert convs and all("_conv_forward" in m.__dict__ for m in convs)
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last_3d) for m in convs)
    x = _frames(9)
    z = t2v.encode(x)
    y = t2v.decode(z)
    _vae_cpu_convs(t2v.vae, False)
    try:
        assert not any("_conv_forward" in m.__dict__ for m in convs)
        z_aten = t2v.encode(x)
        y_aten = t2v.decode(z)
    finally:
        _vae_cpu_convs(t2v.vae, True)
    torch.testing.assert_close(z, z_aten, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(y, y_aten, rtol=1e-4, atol=1e-5)
    assert torch.equal(t2v.encode(x), z) and torch.equal(t2v.decode(z), y)


def test_i2v_and_flf2v_conditioning(models):
    prior = WanPrior.from_pretrained(models["i2v"])
    assert prior.is_i2v and prior.mode == "i2v" and prior.accepts_last_frame and not prior.needs_last_frame
    assert prior.transformer.config.in_channels == 36
    frames = _frames(9)
    shape = prior.geometry.latent_shape(9, H, W)
    x = torch.randn(shape)

    with pytest.raises(ParameterError):
        prior.condition(Conditioning(), shape)  # an I2V model needs a first frame

    i2v = prior.condition(Conditioning(first_frame=frames[0], frames=9), shape)
    y = i2v.extra["wan"]["y"]
    assert y.shape == (20, 3, H // 8, W // 8)
    mask = y[:4, :, 0, 0]  # [temporal_stride, F_lat]
    assert mask[:, 0].eq(1).all() and mask[:, 1:].eq(0).all()
    assert i2v.extra["wan"]["image_embeds"] is None
    u = prior.velocity(x, 0.5, i2v)
    assert u.shape == shape and torch.isfinite(u).all()

    flf = prior.condition(Conditioning(first_frame=frames[0], last_frame=frames[-1]), shape)
    y2 = flf.extra["wan"]["y"]
    assert y2.shape == (20, 3, H // 8, W // 8)
    m2 = y2[:4, :, 0, 0]
    # last pixel frame = entry 3 of the last latent frame's group of 4
    assert m2[:, 0].eq(1).all() and m2[:, 1].eq(0).all() and m2[:3, 2].eq(0).all() and m2[3, 2] == 1
    assert not torch.equal(y2[4:], y[4:])
    assert not torch.equal(u, prior.velocity(x, 0.5, flf))

    with pytest.raises(ParameterError):  # anchor of the wrong size
        prior.condition(Conditioning(first_frame=torch.rand(3, 16, 16)), shape)


def test_conditioning_matches_diffusers_pipeline(models):
    """y, CLIP features and prompt embeddings equal WanImageToVideoPipeline's for the same inputs."""
    import PIL.Image
    from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline
    from diffusers.pipelines.wan import pipeline_wan_i2v

    prior = WanPrior.from_pretrained(models["flf2v_clip"])
    assert prior.mode == "flf2v" and prior.uses_clip and prior.clip_pairs
    frames = _frames(5, seed=11)
    shape = prior.geometry.latent_shape(5, H, W)
    cond = prior.condition(Conditioning(first_frame=frames[0], last_frame=frames[-1], prompt="red car"), shape)
    prep = cond.extra["wan"]
    assert prep["y"].shape == (20, 2, H // 8, W // 8)
    assert prep["image_embeds"].shape == (2, 5, 32)  # both anchors' CLIP tokens (hidden_states[-2])
    u = prior.velocity(torch.randn(shape), 0.5, cond)
    assert u.shape == shape and torch.isfinite(u).all()

    pipe = WanImageToVideoPipeline(
        tokenizer=prior.tokenizer,
        text_encoder=prior.text_encoder,
        vae=prior.vae,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        image_processor=prior.image_processor,
        image_encoder=prior.image_encoder,
        transformer=prior.transformer,
    )
    pil = [
        PIL.Image.fromarray((f * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())
        for f in (frames[0], frames[-1])
    ]
    first, last = (pipe.video_processor.preprocess(p, height=H, width=W) for p in pil)
    with torch.no_grad():
        _, ref_y = pipe.prepare_latents(first, 1, 16, H, W, 5, torch.float32, torch.device("cpu"), last_image=last)
        ref_img = pipe.encode_image(pil, torch.device("cpu"))
        saved = getattr(pipeline_wan_i2v, "ftfy", None)
        pipeline_wan_i2v.ftfy = types.SimpleNamespace(fix_text=lambda s: s)  # ftfy may be absent
        try:
            ref_pe = pipe._get_t5_prompt_embeds("red car", max_sequence_length=TEXT_LEN, device=torch.device("cpu"))
        finally:
            if saved is None:
                del pipeline_wan_i2v.ftfy
            else:
                pipeline_wan_i2v.ftfy = saved
    assert torch.equal(prep["y"], ref_y[0])
    assert torch.equal(prep["image_embeds"], ref_img)
    assert torch.equal(prep["prompt_embeds"], ref_pe)

    # velocity = the pipeline's transformer call on [x_t, y] at timestep 1000 t, guidance 1
    x = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref_u = pipe.transformer(
            hidden_states=torch.cat([x[None], ref_y], dim=1),
            timestep=torch.tensor([250.0]),
            encoder_hidden_states=ref_pe,
            encoder_hidden_states_image=ref_img,
            return_dict=False,
        )[0][0]
    assert torch.equal(prior.velocity(x, 0.25, cond), ref_u)

    assert prior.accepts_last_frame and prior.needs_last_frame
    with pytest.raises(ParameterError):  # an FLF2V model with CLIP needs both anchors
        prior.condition(Conditioning(first_frame=frames[0]), shape)


def test_i2v_clip_first_frame_only(models):
    prior = WanPrior.from_pretrained(models["i2v_clip"])
    assert prior.mode == "i2v" and prior.uses_clip and not prior.clip_pairs
    assert not prior.accepts_last_frame and not prior.needs_last_frame
    frames = _frames(5)
    shape = prior.geometry.latent_shape(5, H, W)
    cond = prior.condition(Conditioning(first_frame=frames[0]), shape)
    assert cond.extra["wan"]["image_embeds"].shape == (1, 5, 32)
    assert torch.isfinite(prior.velocity(torch.randn(shape), 0.9, cond)).all()
    with pytest.raises(ParameterError):
        prior.condition(Conditioning(first_frame=frames[0], last_frame=frames[-1]), shape)


def test_weights_sha256_tracks_weights(models, tmp_path):
    from safetensors.torch import load_file, save_file

    copy = tmp_path / "copy"
    shutil.copytree(models["t2v"], copy)
    a = WanPrior.from_pretrained(models["t2v"]).weights_sha256()
    assert WanPrior.from_pretrained(copy).weights_sha256() == a  # same bytes, other folder: same digest
    f = copy / "transformer" / "diffusion_pytorch_model.safetensors"
    sd = load_file(str(f))
    key = sorted(sd)[0]
    sd[key] = sd[key] + 1e-3
    save_file(sd, str(f))
    changed = WanPrior.from_pretrained(copy)
    assert changed.weights_sha256() != a
    # without the text encoder the digest covers fewer files
    assert WanPrior.from_pretrained(models["t2v_notext"]).weights_sha256() != a


def test_missing_pieces_raise_parameter_error(models, tmp_path):
    with pytest.raises(ParameterError, match="not found"):
        WanPrior.from_pretrained(tmp_path / "nowhere")
    broken = tmp_path / "novae"
    shutil.copytree(models["t2v"], broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(ParameterError, match="vae"):
        WanPrior.from_pretrained(broken)
    notok = tmp_path / "notok"
    shutil.copytree(models["t2v"], notok)
    shutil.rmtree(notok / "tokenizer")
    with pytest.raises(ParameterError, match="tokenizer"):
        WanPrior.from_pretrained(notok)
    noclip = tmp_path / "noclip"
    shutil.copytree(models["i2v_clip"], noclip)
    shutil.rmtree(noclip / "image_encoder")
    with pytest.raises(ParameterError, match="image_encoder"):
        WanPrior.from_pretrained(noclip)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_transformer(models):
    cpu = WanPrior.from_pretrained(models["flf2v_clip"])
    gpu = WanPrior.from_pretrained(models["flf2v_clip"], device="cuda", bf16_transformer=True)
    assert gpu.transformer.dtype == torch.bfloat16 and gpu.vae.dtype == torch.float32
    assert gpu.transformer.scale_shift_table.dtype == torch.float32  # diffusers' keep-in-fp32 modules
    rope = gpu.transformer.rope
    assert isinstance(rope, rope_triton._TablesOnly)  # the fused RoPE, installed on CUDA, holds diffusers' module
    assert rope.inner.freqs_cos.dtype == cpu.transformer.rope.freqs_cos.dtype  # tables as diffusers builds them
    assert "forward" in gpu.transformer.blocks[0].__dict__  # the fused AdaLN block forward
    frames = _frames(5)
    shape = cpu.geometry.latent_shape(5, H, W)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    conds = [p.condition(Conditioning(first_frame=frames[0], last_frame=frames[-1]), shape) for p in (cpu, gpu)]
    torch.testing.assert_close(conds[1].extra["wan"]["y"], conds[0].extra["wan"]["y"], rtol=1e-3, atol=1e-3)
    u_cpu, u_gpu = cpu.velocity(x, 0.5, conds[0]), gpu.velocity(x.cuda(), 0.5, conds[1])
    assert u_gpu.is_cuda and u_gpu.dtype == torch.float32 and torch.isfinite(u_gpu).all()
    assert (u_gpu.cpu() - u_cpu).abs().max() < 0.1 * u_cpu.abs().max()
    z = gpu.encode(frames.cuda())
    assert z.is_cuda and gpu.decode(z).shape == (5, 3, H, W)
    # back on the CPU it runs in float32 again (with the bf16-rounded weights it was loaded with)
    assert gpu.to("cpu") is gpu and gpu.transformer.dtype == torch.float32
    u_back = gpu.velocity(x, 0.5, conds[0])
    assert not u_back.is_cuda and (u_back - u_cpu).abs().max() < 0.1 * u_cpu.abs().max()


def test_compute_dtype_bf16_on_cpu(models):
    """compute_dtype runs the transformer in bf16 on any device (keep-in-fp32 modules stay fp32); the VAE
    stays fp32; the velocity is close to the fp32 one and returned in fp32."""
    from gvc.priors import compute_dtype_of, load_prior

    fp32 = WanPrior.from_pretrained(models["t2v"])
    bf16 = WanPrior.from_pretrained(models["t2v"], compute_dtype="bf16")
    assert compute_dtype_of(fp32) == "fp32" and compute_dtype_of(bf16) == "bf16"
    assert bf16.transformer.dtype == torch.bfloat16 and bf16.vae.dtype == torch.float32
    assert bf16.transformer.scale_shift_table.dtype == torch.float32
    assert bf16.weights_sha256() == fp32.weights_sha256()  # same files: the dtype is a header field, not identity
    shape = fp32.geometry.latent_shape(5, H, W)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(4))
    u32 = fp32.velocity(x, 0.5, fp32.condition(Conditioning(prompt="x"), shape))
    u16 = bf16.velocity(x, 0.5, bf16.condition(Conditioning(prompt="x"), shape))
    assert u16.dtype == torch.float32 and not torch.equal(u16, u32)
    assert (u16 - u32).abs().max() < 0.1 * u32.abs().max()
    # the CLI's loader: auto is fp32 on the CPU; a header's recorded dtype wins over the asked one
    assert compute_dtype_of(load_prior(str(models["t2v"]), dtype="auto")) == "fp32"
    header = types.SimpleNamespace(compute_dtype=1, prior_id="x")
    assert compute_dtype_of(load_prior(str(models["t2v"]), dtype="fp32", header=header)) == "bf16"


def test_vae_dtype_is_recorded_and_replayed(models):
    """vae_dtype runs the VAE in bf16 (the transformer keeps its own dtype); streams record it as
    autoencoder_dtype and load_prior takes the header's value over the asked one; a prior in another
    arithmetic than the stream's is refused with a one-line error naming the network."""
    from gvc.codec import check_supported
    from gvc.errors import PriorMismatchError
    from gvc.priors import autoencoder_dtype_of, compute_dtype_of, load_prior

    fp32 = WanPrior.from_pretrained(models["t2v"])
    bf16 = WanPrior.from_pretrained(models["t2v"], vae_dtype="bf16")
    assert autoencoder_dtype_of(fp32) == "fp32" and autoencoder_dtype_of(bf16) == "bf16"
    assert bf16.vae.dtype == torch.bfloat16 and compute_dtype_of(bf16) == "fp32"
    frames = torch.rand(5, 3, H, W, generator=torch.Generator().manual_seed(5))
    z32, z16 = fp32.encode(frames), bf16.encode(frames)
    assert z16.dtype == torch.float32 and not torch.equal(z16, z32) and (z16 - z32).abs().max() < 0.1
    d32, d16 = fp32.decode(z32), bf16.decode(z32)
    assert d16.dtype == torch.float32 and 0 < (d16 - d32).abs().max() < 0.05
    header = types.SimpleNamespace(compute_dtype=0, autoencoder_dtype=1, prior_id="x")
    assert autoencoder_dtype_of(load_prior(str(models["t2v"]), vae_dtype="fp32", header=header)) == "bf16"
    assert autoencoder_dtype_of(load_prior(str(models["t2v"]), vae_dtype="auto")) == "fp32"  # auto on the CPU
    recorded = types.SimpleNamespace(compute_dtype="fp32", autoencoder_dtype="bf16")
    check_supported(recorded, bf16)
    with pytest.raises(PriorMismatchError, match="^stream needs bf16 autoencoder arithmetic; the prior computes in "
                                                 "fp32: load it with vae_dtype='bf16'$"):
        check_supported(recorded, fp32)


def test_compute_dtype_resolution():
    from gvc.priors.base import resolve_compute_dtype

    assert resolve_compute_dtype("auto", "cpu") == "fp32" and resolve_compute_dtype(None, "cpu") == "fp32"
    assert resolve_compute_dtype("bf16", "cpu") == "bf16"
    if not torch.cuda.is_available() or torch.cuda.is_bf16_supported():
        assert resolve_compute_dtype("auto", "cuda") == "bf16"
    with pytest.raises(ParameterError, match="dtype"):
        resolve_compute_dtype("int8", "cpu")
    with pytest.raises(ParameterError, match="compute_dtype"):
        WanPrior.__init__(object.__new__(WanPrior), root=Path("."), transformer=None, vae=None, compute_dtype="fp64")
