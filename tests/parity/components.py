"""Tiny components shared by the Cosmos, Wan and EgoSim InP parity tests (no tokenizer files can be
downloaded: the T5 tokenizer is built here)."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan, WanImageToVideoPipeline, WanTransformer3DModel
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
    UMT5Config,
    UMT5EncoderModel,
)


def tiny_t5() -> tuple[T5EncoderModel, T5Tokenizer]:
    """A tiny T5 encoder (d_model 32 = the transformers' text width) and a 12-piece T5 tokenizer."""
    words = "a the robot walks turns left right forward".split()
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(f"▁{w}", -3.0 - i) for i, w in enumerate(words)]
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0)
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(vocab),
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
    )
    return T5EncoderModel(config).eval(), tokenizer


def tiny_wan_vae() -> AutoencoderKLWan:
    """The Wan 2.1 VAE (also Cosmos Predict2's) at the size diffusers' fast tests use, seeded."""
    torch.manual_seed(0)
    return AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )


def tiny_umt5() -> tuple[UMT5EncoderModel, T5Tokenizer]:
    """A tiny UMT5 encoder (Wan's text encoder class) of `tiny_t5`'s size, with the same tokenizer."""
    _, tokenizer = tiny_t5()
    torch.manual_seed(0)
    config = UMT5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
    )
    return UMT5EncoderModel(config).eval(), tokenizer


def tiny_wan_i2v_transformer() -> WanTransformer3DModel:
    """The 36-channel Wan 2.1 i2v transformer of diffusers' Wan image-to-video fast tests, seeded."""
    torch.manual_seed(0)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=36,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        image_dim=4,
    ).eval()


def tiny_wan_clip() -> tuple[CLIPVisionModelWithProjection, CLIPImageProcessor]:
    """The CLIP vision tower and image processor of diffusers' Wan image-to-video fast tests, seeded."""
    torch.manual_seed(0)
    clip = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=4,
            projection_dim=4,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            intermediate_size=16,
            patch_size=1,
        )
    )
    return clip.eval(), CLIPImageProcessor(crop_size=32, size=32)


def tiny_wan_i2v_pipeline(scheduler) -> WanImageToVideoPipeline:
    """A tiny `WanImageToVideoPipeline` as diffusers' fast tests build it, with Wan's UMT5 text encoder
    class (the fast tests' T5 checkpoint cannot be downloaded) and the given scheduler."""
    text_encoder, tokenizer = tiny_umt5()
    clip, processor = tiny_wan_clip()
    return WanImageToVideoPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=tiny_wan_vae().eval(),
        scheduler=scheduler,
        image_processor=processor,
        image_encoder=clip,
        transformer=tiny_wan_i2v_transformer(),
    )
