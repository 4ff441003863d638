"""Wan 2.1 / 2.2: `WanTransformer3DModel` (t2v 16 channels; i2v and Fun-InP 36 channels) + Wan VAE.

Where actions enter: `condition_embedder.time_embedder` turns the sinusoidal timestep into
`temb`; `time_proj(silu(temb))` gives the six modulation vectors of every block and `temb`
itself shifts/scales the output norm. With the per-token timestep [B, S] (Wan 2.2's layout,
S = T*H'*W' tokens) `temb` is [B, S, D], so a forward hook on `time_embedder` adds e_a,
repeated over each latent frame's H'*W' tokens, before both uses. A [B] timestep is expanded to
[B, S] by the wrapper. The i2v / InP layout (noisy latents 16 + mask 4 + condition latents 16 =
36 input channels) is unchanged: it only widens `patch_embedding`.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel

from egoworld.backbones.base import DiTAdapter, EmbeddingSource, Prepared, batch_timestep, pick_preset


class WanAdapter(DiTAdapter):
    name = "wan"
    model_class = WanTransformer3DModel

    def prepare(self, model, arguments: dict[str, Any], num_video_frames: int) -> Prepared:
        x = self.video_latents(model, arguments, num_video_frames)  # [B, C, T, H, W]
        _, p_h, p_w = model.config.patch_size
        batch, frames = x.shape[0], x.shape[2]
        tokens_per_frame = (x.shape[3] // p_h) * (x.shape[4] // p_w)
        seq_len = frames * tokens_per_frame
        t = torch.as_tensor(arguments["timestep"], device=x.device)
        if t.ndim == 2:
            if tuple(t.shape) != (batch, seq_len):
                raise ValueError(
                    f"Wan timestep of shape {tuple(t.shape)} cannot carry per-frame embeddings; "
                    f"expected per-token [B, S] = {(batch, seq_len)} or [B]"
                )
        else:
            t = batch_timestep(t, batch, x.device)[:, None].expand(batch, seq_len)
        arguments["timestep"] = t
        return Prepared(arguments, batch, frames, extra={"tokens_per_frame": tokens_per_frame})

    def install(self, model, source: EmbeddingSource):
        def add_action(module, args, temb):
            e_a = source()  # [B, T, D]
            if e_a is None:
                return None
            if temb.ndim != 3:
                raise ValueError(
                    "Wan timestep layout carries one embedding per clip; per-frame actions need the "
                    "per-token timestep [B, S]"
                )
            tokens_per_frame = temb.shape[1] // e_a.shape[1]
            e_tokens = e_a.repeat_interleave(tokens_per_frame, dim=1)  # [B, S, D]
            return temb + e_tokens.to(temb.dtype)

        return [model.condition_embedder.time_embedder.register_forward_hook(add_action)]


# Presets ---------------------------------------------------------------------------------------

_WAN_TINY = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=16,
    in_channels=4,
    out_channels=4,
    text_dim=16,
    freq_dim=32,
    ffn_dim=64,
    num_layers=2,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    rope_max_seq_len=32,
)

TRANSFORMER_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": _WAN_TINY,
    # i2v / Fun-InP layout: noisy 4 + mask 4 + condition latents 4 (the real model: 16 + 4 + 16 = 36)
    "tiny-i2v": {**_WAN_TINY, "in_channels": 12, "image_dim": 16},
    "wan2.1-t2v-1.3b": dict(
        num_attention_heads=12,
        attention_head_dim=128,
        ffn_dim=8960,
        num_layers=30,
        text_dim=4096,
        freq_dim=256,
    ),
    "wan2.1-t2v-14b": dict(
        num_attention_heads=40,
        attention_head_dim=128,
        ffn_dim=13824,
        num_layers=40,
        text_dim=4096,
        freq_dim=256,
    ),
    "wan2.1-fun-1.3b-inp": dict(
        in_channels=36,
        num_attention_heads=12,
        attention_head_dim=128,
        ffn_dim=8960,
        num_layers=30,
        image_dim=1280,
        added_kv_proj_dim=1536,
    ),
    "wan2.1-i2v-14b": dict(
        in_channels=36,
        num_attention_heads=40,
        attention_head_dim=128,
        ffn_dim=13824,
        num_layers=40,
        image_dim=1280,
        added_kv_proj_dim=5120,
    ),
}

VAE_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        base_dim=8,
        z_dim=4,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.0] * 4,
        latents_std=[1.0] * 4,
    ),
    "wan2.1": dict(),  # the diffusers defaults are the Wan 2.1 VAE
}


def build_transformer(preset: str = "tiny", **overrides) -> WanTransformer3DModel:
    """A randomly initialised Wan DiT of a named size (real weights load with `from_pretrained`)."""
    return WanTransformer3DModel(**{**pick_preset(TRANSFORMER_PRESETS, preset), **overrides})


def build_vae(preset: str = "tiny", **overrides) -> AutoencoderKLWan:
    return AutoencoderKLWan(**{**pick_preset(VAE_PRESETS, preset), **overrides})
