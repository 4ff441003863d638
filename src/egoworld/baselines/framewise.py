"""A frame-wise autoregressive conditional DiT: the NWM-style baseline for rollout latency.

One call of the denoiser predicts ONE future frame from the latents of the last 4 frames:

    noisy target latents [B, C, h, w] --PatchEmbed--> tokens [B, N, D]     (2D sin-cos positions)
    4 clean context latents [B, K, C, h, w] --PatchEmbed + slot embedding--> context [B, K*N, D]
    c = TimestepEmbedding(t) + MLP(action)                                  [B, D]
    blocks: adaLN-Zero(c) self-attention -> cross-attention to the context -> adaLN-Zero(c) MLP
    AdaLayerNormContinuous(c) -> linear -> unpatchify -> velocity [B, C, h, w]

Sampling is rectified flow with diffusers' `FlowMatchEulerDiscreteScheduler`: every future frame runs
its own `num_inference_steps` denoiser calls, so an N-frame rollout costs (N-1) x steps calls,
against ceil((N-1)/(F-1)) x steps for a chunked video model. Frames are encoded and decoded with a
2D `AutoencoderKL` (NWM uses Stable Diffusion's VAE at 224x224). Built from diffusers blocks
(`Attention`, `FeedForward`, `AdaLayerNormZero`, `PatchEmbed`, `Timesteps`); sizes are configurable
so that the parameter count can be matched to a backbone (`match_parameter_count`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import PatchEmbed, TimestepEmbedding, Timesteps
from diffusers.models.normalization import AdaLayerNormContinuous, AdaLayerNormZero
from torch import nn

logger = logging.getLogger(__name__)

# 2D VAE configs: "tiny" for CPU tests (4x spatial), "sd" = Stable Diffusion's VAE (8x, as NWM).
VAE_PRESETS: dict[str, dict] = {
    "tiny": dict(
        block_out_channels=(32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
    ),
    "sd": dict(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        scaling_factor=0.18215,
    ),
}


@dataclass
class FramewiseConfig:
    """Size and sampling of the frame-wise baseline.

    Args:
        height, width: frame size in pixels (NWM: 224x224).
        vae: "tiny" or "sd" (`VAE_PRESETS`).
        patch_size: latent pixels per token side.
        hidden_dim: token width D (a multiple of `num_heads`).
        depth: number of transformer blocks.
        num_heads: attention heads.
        mlp_ratio: feed-forward width / D.
        context_frames: K past frames each prediction attends to (NWM: 4).
        action_dim: width of one action (3 for navigation).
        num_inference_steps: sampler steps per generated frame.
        flow_shift: shift of the flow-matching sigma schedule.
    """

    height: int = 32
    width: int = 32
    vae: str = "tiny"
    patch_size: int = 2
    hidden_dim: int = 64
    depth: int = 2
    num_heads: int = 2
    mlp_ratio: float = 4.0
    context_frames: int = 4
    action_dim: int = 3
    num_inference_steps: int = 10
    flow_shift: float = 1.0

    def validate(self) -> None:
        if self.vae not in VAE_PRESETS:
            raise ValueError(f"vae={self.vae!r}; expected one of {sorted(VAE_PRESETS)}")
        comp = spatial_compression(self.vae)
        for name, size in (("height", self.height), ("width", self.width)):
            if size % (comp * self.patch_size):
                raise ValueError(
                    f"{name}={size}; expected a multiple of {comp * self.patch_size} "
                    f"(VAE x{comp} times patch {self.patch_size})"
                )
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim={self.hidden_dim} is not divisible by num_heads={self.num_heads}")
        if self.context_frames < 1 or self.depth < 1:
            raise ValueError(f"context_frames={self.context_frames}, depth={self.depth}; expected both >= 1")


def spatial_compression(vae: str) -> int:
    return 2 ** (len(VAE_PRESETS[vae]["block_out_channels"]) - 1)


class CDiTBlock(nn.Module):
    """adaLN-Zero self-attention, cross-attention to the context frames, adaLN-Zero feed-forward."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        head_dim = dim // num_heads
        self.norm1 = AdaLayerNormZero(dim)  # shift/scale/gate for attention and for the MLP
        self.attn = Attention(query_dim=dim, heads=num_heads, dim_head=head_dim, bias=True, out_bias=True)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.cross = Attention(
            query_dim=dim, cross_attention_dim=dim, heads=num_heads, dim_head=head_dim, bias=True
        )
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ff = FeedForward(dim, mult=mlp_ratio, activation_fn="gelu-approximate")

    def forward(self, x: torch.Tensor, context: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x [B, N, D], context [B, K*N, D], c [B, D] -> [B, N, D]."""
        h, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.norm1(x, emb=c)
        x = x + gate_msa[:, None] * self.attn(h)
        x = x + self.cross(self.norm2(x), encoder_hidden_states=context)
        h = self.norm3(x) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
        return x + gate_mlp[:, None] * self.ff(h)


class FramewiseDiT(nn.Module):
    """The denoiser: velocity of one future frame's latents given 4 context frames and an action."""

    def __init__(self, config: FramewiseConfig):
        super().__init__()
        config.validate()
        self.config = config
        c, d, p = config, config.hidden_dim, config.patch_size
        comp = spatial_compression(c.vae)
        channels = VAE_PRESETS[c.vae]["latent_channels"]
        self.latent_shape = (channels, c.height // comp, c.width // comp)  # (C, h, w)
        h, w = self.latent_shape[1:]
        grid = max(h, w) // p

        def patches() -> PatchEmbed:
            return PatchEmbed(h, w, p, channels, d, pos_embed_type="sincos", pos_embed_max_size=grid)

        self.x_embed, self.context_embed = patches(), patches()
        self.context_slot = nn.Parameter(torch.zeros(c.context_frames, d))  # which past frame
        self.time_proj = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(256, d)
        self.action_embed = nn.Sequential(nn.Linear(c.action_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(CDiTBlock(d, c.num_heads, c.mlp_ratio) for _ in range(c.depth))
        self.norm_out = AdaLayerNormContinuous(d, d, elementwise_affine=False, eps=1e-6)
        self.proj_out = nn.Linear(d, p * p * channels)
        self._init_weights()

    def _init_weights(self) -> None:
        """DiT's initialisation: adaLN-Zero modulation and the output layer start at zero."""
        nn.init.normal_(self.context_slot, std=0.02)
        for block in self.blocks:
            nn.init.zeros_(block.norm1.linear.weight)
            nn.init.zeros_(block.norm1.linear.bias)
        for layer in (self.norm_out.linear, self.proj_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @property
    def dtype(self) -> torch.dtype:
        return self.proj_out.weight.dtype

    def forward(
        self,
        latents_BChw: torch.Tensor,
        timestep_B: torch.Tensor,
        context_BKChw: torch.Tensor,
        actions_BD: torch.Tensor,
    ) -> torch.Tensor:
        """Velocity [B, C, h, w] for noisy latents at flow time `timestep_B` (in [0, 1000])."""
        b, k = context_BKChw.shape[:2]
        if k != self.config.context_frames:
            raise ValueError(f"{k} context frames; expected {self.config.context_frames}")
        x = self.x_embed(latents_BChw)  # [B, N, D]
        ctx = self.context_embed(context_BKChw.flatten(0, 1)).unflatten(0, (b, k))  # [B, K, N, D]
        ctx = (ctx + self.context_slot[None, :, None].to(ctx.dtype)).flatten(1, 2)  # [B, K*N, D]
        t = self.time_embed(self.time_proj(timestep_B).to(x.dtype))  # [B, D]
        cond = t + self.action_embed(actions_BD.to(x.dtype))  # [B, D]
        for block in self.blocks:
            x = block(x, ctx, cond)
        x = self.proj_out(self.norm_out(x, cond))  # [B, N, p*p*C]
        return self._unpatchify(x)

    def _unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        ch, h, w = self.latent_shape
        p = self.config.patch_size
        x = x.reshape(x.shape[0], h // p, w // p, p, p, ch)
        return torch.einsum("bhwpqc->bchpwq", x).reshape(x.shape[0], ch, h, w)


class FramewiseWorldModel(nn.Module):
    """VAE + `FramewiseDiT` + flow sampler: rolls out one frame per denoising loop (NWM-style)."""

    def __init__(self, config: FramewiseConfig, denoiser: FramewiseDiT | None = None, vae=None):
        super().__init__()
        config.validate()
        self.config = config
        self.denoiser = denoiser if denoiser is not None else FramewiseDiT(config)
        self.vae = vae if vae is not None else AutoencoderKL(**VAE_PRESETS[config.vae]).requires_grad_(False)
        self.scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=config.flow_shift)

    @property
    def device(self) -> torch.device:
        return self.denoiser.proj_out.weight.device

    def num_parameters(self) -> int:
        """Parameters of the denoiser (the part matched to a backbone; the VAE is not counted)."""
        return sum(p.numel() for p in self.denoiser.parameters())

    def encode(self, image_BCHW: torch.Tensor) -> torch.Tensor:
        z = self.vae.encode(image_BCHW.to(self.vae.dtype)).latent_dist.mode()
        return z.float() * self.vae.config.scaling_factor  # [B, C, h, w]

    def decode(self, latents_BChw: torch.Tensor, batch: int = 16) -> torch.Tensor:
        out = []
        for z in latents_BChw.split(batch):
            x = self.vae.decode((z / self.vae.config.scaling_factor).to(self.vae.dtype)).sample
            out.append(x.float().clamp(-1, 1))
        return torch.cat(out)  # [B, 3, H, W]

    @torch.no_grad()
    def sample_frame(
        self,
        context_BKChw: torch.Tensor,
        action_BD: torch.Tensor,
        num_inference_steps: int,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """One future frame's latents [B, C, h, w]: a full flow-sampling loop of its own."""
        b = context_BKChw.shape[0]
        noise = torch.randn((b, *self.denoiser.latent_shape), generator=generator)
        latents = noise.to(self.device)
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        dtype = self.denoiser.dtype
        ctx, act = context_BKChw.to(dtype), action_BD.to(dtype)
        for i, timestep in enumerate(self.scheduler.timesteps):
            t = (self.scheduler.sigmas[i] * 1000).to(self.device).expand(b)
            v = self.denoiser(latents.to(dtype), t, ctx, act).float()
            latents = self.scheduler.step(v, timestep, latents).prev_sample
        return latents

    @torch.no_grad()
    def rollout(
        self,
        image: np.ndarray,
        actions: np.ndarray | torch.Tensor,
        *,
        num_inference_steps: int | None = None,
        seed: int = 0,
        progress: bool = False,
    ) -> np.ndarray:
        """Autoregressive rollout: uint8 image [H, W, 3] + actions [N, D] -> uint8 frames [N, H, W, 3].

        actions[i] moves frame i-1 to frame i (row 0 belongs to the start frame, as in
        `WorldModel.rollout`). Before 4 frames exist, the context repeats the start frame.
        """
        c = self.config
        a = torch.as_tensor(np.asarray(actions, dtype=np.float32))
        shape = tuple(np.asarray(image).shape)
        if shape != (c.height, c.width, 3):
            raise ValueError(f"image has shape {shape}; expected ({c.height}, {c.width}, 3) uint8")
        if a.ndim != 2 or a.shape[1] != c.action_dim or a.shape[0] < 2:
            raise ValueError(f"actions have shape {tuple(a.shape)}; expected [N >= 2, {c.action_dim}]")
        if not torch.isfinite(a).all():
            raise ValueError("actions contain NaN or Inf; expected finite values")
        steps = num_inference_steps or c.num_inference_steps
        generator = torch.Generator(device="cpu").manual_seed(seed)
        img = torch.as_tensor(np.asarray(image)).permute(2, 0, 1)[None].float().div(127.5).sub(1)
        z0 = self.encode(img.to(self.device))  # [1, C, h, w]
        history = [z0] * c.context_frames
        a = a.to(self.device)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=a.shape[0] - 1, desc="frame-wise rollout", unit="frame")
        for i in range(1, a.shape[0]):
            context = torch.stack(history[-c.context_frames :], dim=1)  # [1, K, C, h, w]
            history.append(self.sample_frame(context, a[i : i + 1], steps, generator))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        frames = self.decode(torch.cat(history[c.context_frames :]))  # [N-1, 3, H, W]
        frames = ((frames + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()
        return np.concatenate([np.asarray(image, dtype=np.uint8)[None], frames])


def count_denoiser_parameters(config: FramewiseConfig) -> int:
    """Parameters of `FramewiseDiT(config)`, counted on the meta device (no memory)."""
    with torch.device("meta"):
        return sum(p.numel() for p in FramewiseDiT(config).parameters())


def match_parameter_count(
    target: int, config: FramewiseConfig, head_dim: int | None = None
) -> FramewiseConfig:
    """`config` with the width whose denoiser parameter count is closest to `target`.

    The depth stays; the width moves in steps of one attention head (`head_dim`, default the
    config's), so heads = width / head_dim.
    """
    if target <= 0:
        raise ValueError(f"target parameter count {target}; expected > 0")
    head_dim = head_dim or config.hidden_dim // config.num_heads

    def sized(heads: int) -> FramewiseConfig:
        return dataclasses.replace(config, hidden_dim=heads * head_dim, num_heads=heads)

    lo, hi = 1, 1
    while count_denoiser_parameters(sized(hi)) < target:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # counts grow monotonically with the width
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count_denoiser_parameters(sized(mid)) < target else (lo, mid)
    best = min((lo, hi), key=lambda h: abs(count_denoiser_parameters(sized(h)) - target))
    out = sized(best)
    logger.info(
        "frame-wise baseline: width %d, %d heads, depth %d -> %d parameters (target %d)",
        out.hidden_dim,
        out.num_heads,
        out.depth,
        count_denoiser_parameters(out),
        target,
    )
    return out
