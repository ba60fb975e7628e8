"""Tiny, randomly initialised Wan2.1 components saved in the Diffusers folder layout.

``build_tiny_wan(out_dir, mode=...)`` writes ``transformer/``, ``vae/`` and optionally ``text_encoder/`` +
``tokenizer/`` and ``image_encoder/`` + ``image_processor/`` under ``out_dir``, like the real
Wan2.1-{T2V,I2V,FLF2V}-*-Diffusers repositories, so :meth:`gvc.priors.wan.WanPrior.from_pretrained` can load
them offline. Everything is built on CPU in a second or two; nothing is downloaded.

Sizes: frames must be multiples of 16 pixels (VAE stride 8 x transformer patch 2); 64x64 gives an 8x8 latent
grid. The CLIP vision tower works on 32x32 crops (4 patches + class token = 5 tokens per image).
"""

from __future__ import annotations

from pathlib import Path

import torch

# Configs that run on CPU in milliseconds (see shared/notes/matroska-and-pipes.md, "diffusers Wan offline").
TINY_VAE = dict(
    base_dim=3,
    z_dim=16,
    dim_mult=[1, 1, 1, 1],
    num_res_blocks=1,
    temperal_downsample=[False, True, True],
)
TINY_TRANSFORMER = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=12,
    in_channels=16,
    out_channels=16,
    text_dim=32,
    freq_dim=256,
    ffn_dim=32,
    num_layers=2,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    rope_max_seq_len=32,
)
TINY_UMT5 = dict(
    vocab_size=64,
    d_model=32,
    d_kv=8,
    d_ff=64,
    num_layers=2,
    num_heads=4,
    relative_attention_num_buckets=8,
    relative_attention_max_distance=16,
)
TINY_CLIP = dict(
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=32,
    patch_size=16,
    num_channels=3,
)

_WORDS = (
    "a the video of cat dog car city street tree sky water person walking running red blue green "
    "bright dark night day camera slow fast close wide shot moving standing sitting house road"
).split()


def _build_tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for w in _WORDS:
        vocab.setdefault(w, len(vocab))
    assert len(vocab) <= TINY_UMT5["vocab_size"]
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()
    # T5 appends </s> to every sequence; so does this one.
    tok.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=512,
    )


def build_tiny_wan(
    out_dir,
    *,
    mode: str = "t2v",
    with_text_encoder: bool = True,
    with_image_encoder: bool = False,
    seed: int = 0,
) -> Path:
    """Save a tiny random Wan2.1 model in the Diffusers layout under ``out_dir`` and return its path.

    mode: "t2v" (transformer in_channels 16), "i2v" (36) or "flf2v" (36; with an image encoder the
    transformer also gets ``pos_embed_seq_len = 2 * (num_patches + 1)`` like Wan2.1-FLF2V-14B).
    with_image_encoder (i2v/flf2v only): adds a CLIP vision tower + processor and sets the transformer's
    ``image_dim`` / ``added_kv_proj_dim`` as the Wan2.1 I2V/FLF2V models do.
    """
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    if mode not in ("t2v", "i2v", "flf2v"):
        raise ValueError(f"mode must be t2v, i2v or flf2v, not {mode!r}")
    if with_image_encoder and mode == "t2v":
        raise ValueError("a T2V model has no image encoder")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)

    vae = AutoencoderKLWan(**TINY_VAE)
    vae.save_pretrained(out / "vae", safe_serialization=True)

    tcfg = dict(TINY_TRANSFORMER)
    if mode != "t2v":
        z = TINY_VAE["z_dim"]
        tcfg["in_channels"] = 2 * z + 2 ** sum(TINY_VAE["temperal_downsample"])  # 16 + 4 + 16 = 36
        if with_image_encoder:
            tcfg["image_dim"] = TINY_CLIP["hidden_size"]
            tcfg["added_kv_proj_dim"] = tcfg["num_attention_heads"] * tcfg["attention_head_dim"]
            if mode == "flf2v":
                tokens = (TINY_CLIP["image_size"] // TINY_CLIP["patch_size"]) ** 2 + 1
                tcfg["pos_embed_seq_len"] = 2 * tokens
    transformer = WanTransformer3DModel(**tcfg)
    transformer.save_pretrained(out / "transformer", safe_serialization=True)

    if with_text_encoder:
        text_encoder = UMT5EncoderModel(UMT5Config(**TINY_UMT5))
        text_encoder.save_pretrained(out / "text_encoder", safe_serialization=True)
        _build_tokenizer().save_pretrained(out / "tokenizer")

    if with_image_encoder:
        image_encoder = CLIPVisionModel(CLIPVisionConfig(**TINY_CLIP))
        image_encoder.save_pretrained(out / "image_encoder", safe_serialization=True)
        size = TINY_CLIP["image_size"]
        import transformers

        proc_cls = getattr(transformers, "CLIPImageProcessorPil", None) or CLIPImageProcessor  # no torchvision
        proc = proc_cls(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
        proc.save_pretrained(out / "image_processor")  # saved as image_processor_type "CLIPImageProcessor"
    return out
