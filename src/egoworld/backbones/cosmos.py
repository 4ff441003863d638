"""Cosmos Predict2: `CosmosTransformer3DModel` (diffusers >= 0.34) with the Wan 2.1 VAE.

Where actions enter: `time_embed` returns `(temb, embedded_timestep)`; every block's AdaLN
projects `embedded_timestep` to its shift/scale/gate (P_m in Eq. 5) and adds the adaLN-LoRA term
`temb`. With the 5-D timestep [B, 1, T, 1, 1] both come out per latent frame ([B*T, D], then
broadcast to that frame's tokens), so a forward hook on `time_embed` adds e_a [B*T, D] to
`embedded_timestep`. A [B] timestep gives one embedding per clip, which cannot carry per-frame
actions: the wrapper expands it to [B, 1, T, 1, 1] (the same values, per frame).
The VAE compresses time by 4: F = 4(T-1)+1 video frames.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKLWan, CosmosTransformer3DModel

from egoworld.backbones.base import DiTAdapter, EmbeddingSource, Prepared, batch_timestep, pick_preset
from egoworld.backbones.wan import VAE_PRESETS as WAN_VAE_PRESETS


class CosmosAdapter(DiTAdapter):
    name = "cosmos"
    model_class = CosmosTransformer3DModel

    def prepare(self, model, arguments: dict[str, Any], num_video_frames: int) -> Prepared:
        x = self.video_latents(model, arguments, num_video_frames)  # [B, C, T, H, W]
        batch, frames = x.shape[0], x.shape[2]
        t = torch.as_tensor(arguments["timestep"], device=x.device)
        if t.ndim == 5:
            if tuple(t.shape) != (batch, 1, frames, 1, 1):
                raise ValueError(
                    f"Cosmos timestep of shape {tuple(t.shape)} cannot carry per-frame embeddings; "
                    f"expected [B, 1, T, 1, 1] = {(batch, 1, frames, 1, 1)} or [B]"
                )
        else:
            t = batch_timestep(t, batch, x.device)[:, None, None, None, None].expand(batch, 1, frames, 1, 1)
        arguments["timestep"] = t
        return Prepared(arguments, batch, frames)

    def install(self, model, source: EmbeddingSource):
        def add_action(module, args, output):
            e_a = source()  # [B, T, D]
            if e_a is None:
                return None
            temb, embedded_timestep = output  # [B*T, 3D], [B*T, D]
            if embedded_timestep.shape[0] != e_a.shape[0] * e_a.shape[1]:
                raise ValueError(
                    "Cosmos timestep layout carries one embedding per clip; per-frame actions need the "
                    "5-D timestep [B, 1, T, 1, 1]"
                )
            e_a = e_a.reshape(embedded_timestep.shape).to(embedded_timestep.dtype)
            return temb, embedded_timestep + e_a

        return [model.time_embed.register_forward_hook(add_action)]


# Presets ---------------------------------------------------------------------------------------

TRANSFORMER_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        in_channels=4 + 1,  # latents + the Video2World condition mask
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=16,
        num_layers=2,
        mlp_ratio=2.0,
        text_embed_dim=16,
        adaln_lora_dim=4,
        max_size=(16, 32, 32),
        patch_size=(1, 2, 2),
        rope_scale=(1.0, 1.0, 1.0),
        concat_padding_mask=True,
        extra_pos_embed_type=None,
    ),
    # A small DiT for the pixel codec (`model.codec: pixel`), trained from scratch on a CPU: 6 blocks
    # of width 128 (4 heads of 32); in/out channels are set by the codec.
    "small": dict(
        in_channels=4 + 1,
        out_channels=4,
        num_attention_heads=4,
        attention_head_dim=32,
        num_layers=6,
        mlp_ratio=4.0,
        text_embed_dim=16,
        adaln_lora_dim=32,
        max_size=(16, 64, 64),
        patch_size=(1, 2, 2),
        rope_scale=(1.0, 1.0, 1.0),
        concat_padding_mask=True,
        extra_pos_embed_type=None,
    ),
    # Cosmos-Predict2-2B-Video2World (the EgoWM Cosmos variant).
    "cosmos-predict2-2b": dict(
        in_channels=16 + 1,
        out_channels=16,
        num_attention_heads=16,
        attention_head_dim=128,
        num_layers=28,
        mlp_ratio=4.0,
        text_embed_dim=1024,
        adaln_lora_dim=256,
        max_size=(128, 240, 240),
        patch_size=(1, 2, 2),
        rope_scale=(1.0, 3.0, 3.0),
        concat_padding_mask=True,
        extra_pos_embed_type=None,
    ),
}

# Cosmos Predict2 uses the Wan 2.1 VAE (16 latent channels, 4x time, 8x space).
VAE_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": WAN_VAE_PRESETS["tiny"],
    "cosmos-predict2-2b": WAN_VAE_PRESETS["wan2.1"],
}


def build_transformer(preset: str = "tiny", **overrides) -> CosmosTransformer3DModel:
    """A randomly initialised Cosmos DiT of a named size (real weights load with `from_pretrained`)."""
    return CosmosTransformer3DModel(**{**pick_preset(TRANSFORMER_PRESETS, preset), **overrides})


def build_vae(preset: str = "tiny", **overrides) -> AutoencoderKLWan:
    return AutoencoderKLWan(**{**pick_preset(VAE_PRESETS, preset), **overrides})
