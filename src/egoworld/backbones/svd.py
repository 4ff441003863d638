"""Stable Video Diffusion: `UNetSpatioTemporalConditionModel` + `AutoencoderKLTemporalDecoder`.

Where actions enter: the UNet computes one embedding per clip, `emb = time_embedding(t) +
add_embedding(added_time_ids)` [B, D], repeats it per frame to `temb` [B*F, D], and hands it to
every down/mid/up block, where both the spatial and the temporal res-blocks project it to their
scale/shift. A forward pre-hook on each block adds e_a [B*F, D] to that `temb` (Eq. 5), so every
modulation site sees e_t + e_a for its own frame. No temporal compression: F = T.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel

from egoworld.backbones.base import BackboneAdapter, EmbeddingSource, Prepared, pick_preset


class SVDAdapter(BackboneAdapter):
    name = "svd"
    model_class = UNetSpatioTemporalConditionModel
    temporal_compression = 1
    sample_arg = "sample"

    def embed_dim(self, model) -> int:
        return model.time_embedding.linear_2.out_features

    def prepare(self, model, arguments: dict[str, Any], num_video_frames: int) -> Prepared:
        sample = arguments["sample"]  # [B, F, C, H, W]
        if sample.ndim != 5:
            raise ValueError(f"SVD sample must be [B, F, C, H, W]; got shape {tuple(sample.shape)}")
        batch, frames = sample.shape[:2]
        self.check_frames(num_video_frames, frames)
        return Prepared(arguments, batch, frames)

    def install(self, model, source: EmbeddingSource):
        def add_action(module, args, kwargs):
            e_a = source()  # [B, F, D]
            if e_a is None:
                return None
            temb = kwargs["temb"]  # [B*F, D]
            kwargs["temb"] = temb + e_a.reshape(temb.shape).to(temb.dtype)
            return args, kwargs

        blocks = [*model.down_blocks, model.mid_block, *model.up_blocks]
        return [b.register_forward_pre_hook(add_action, with_kwargs=True) for b in blocks]


# Presets ---------------------------------------------------------------------------------------

UNET_PRESETS: dict[str, dict[str, Any]] = {
    # Runs forward+backward on 2 CPU cores in well under a second at 32x32 latents, 8 frames.
    "tiny": dict(
        sample_size=8,
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        block_out_channels=(32, 64),
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=24,
        layers_per_block=1,
        cross_attention_dim=32,
        num_attention_heads=(2, 4),
        num_frames=8,
    ),
    # Small enough to train on a CPU in pixel space at 32-64 px: attention only at the coarse levels.
    "small": dict(
        sample_size=16,
        in_channels=8,
        out_channels=4,
        down_block_types=(
            "DownBlockSpatioTemporal",
            "CrossAttnDownBlockSpatioTemporal",
            "CrossAttnDownBlockSpatioTemporal",
        ),
        up_block_types=(
            "CrossAttnUpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
            "UpBlockSpatioTemporal",
        ),
        block_out_channels=(32, 64, 128),
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=24,
        layers_per_block=1,
        cross_attention_dim=32,
        num_attention_heads=(2, 4, 8),
        num_frames=8,
    ),
    # Stable Video Diffusion XT (1.5B): the diffusers defaults are SVD's config.
    "svd-xt": dict(sample_size=96, num_frames=25),
}

VAE_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        block_out_channels=(32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 3,
        latent_channels=4,
        layers_per_block=1,
    ),
    "svd-xt": dict(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
    ),
}


def set_norm_groups(unet: UNetSpatioTemporalConditionModel, groups: int | None) -> None:
    """Set every GroupNorm of the UNet to `groups` groups, in place (None: the groups it was built with).

    The class has no option for it (its blocks fix 32); `nn.GroupNorm` reads `num_groups` at each call
    and its affine parameters are per channel, so the weights are the same tensors and only the grouping
    changes. ValueError when a layer's channels do not divide into `groups`.
    """
    norms = [(name, m) for name, m in unet.named_modules() if isinstance(m, torch.nn.GroupNorm)]
    for name, m in norms:
        if groups is not None and m.num_channels % groups:
            raise ValueError(
                f"norm_groups={groups}: {name} has {m.num_channels} channels, not a multiple of {groups}"
            )
    for _, m in norms:
        built = m.__dict__.setdefault("egoworld_built_groups", m.num_groups)
        m.num_groups = built if groups is None else int(groups)


def build_unet(preset: str = "tiny", **overrides) -> UNetSpatioTemporalConditionModel:
    """A randomly initialised SVD UNet of a named size (real weights load with `from_pretrained`)."""
    return UNetSpatioTemporalConditionModel(**{**pick_preset(UNET_PRESETS, preset), **overrides})


def build_vae(preset: str = "tiny", **overrides) -> AutoencoderKLTemporalDecoder:
    return AutoencoderKLTemporalDecoder(**{**pick_preset(VAE_PRESETS, preset), **overrides})
