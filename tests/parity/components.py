"""Tiny components shared by the Cosmos and Wan parity tests (no tokenizer files can be downloaded:
the T5 tokenizer is built here)."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan
from transformers import T5Config, T5EncoderModel, T5Tokenizer


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
