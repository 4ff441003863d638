"""Video codecs: the base model's own diffusers VAE, between pixels and the backbone's latent layout.

Pixels cross this boundary as `video_BFCHW` float in [-1, 1] (F video frames).
- `SVDCodec` (AutoencoderKLTemporalDecoder): per-frame 2D latents `[B, F, C, h, w]`, scaled by
  `scaling_factor` for the diffusion targets. `encode_condition` returns the *unscaled* mode of the
  first frame, as the SVD pipeline concatenates it (training and sampling must agree on this).
- `WanCodec` (AutoencoderKLWan, also Cosmos Predict2's VAE): causal 3D latents `[B, C, T, h, w]`
  with T = (F-1)/4 + 1, normalised per channel with the VAE's `latents_mean` / `latents_std`.
- `PixelCodec`: the identity, for small models trained here in pixel space (a randomly initialised
  VAE is not an autoencoder, so small models that cannot load a pretrained VAE work on pixels).
- `PackedPixelCodec`: pixels in the Wan latent layout `[B, C, T, h, w]` (4 frames and s x s pixels
  packed into the channels), the same for the DiT families (Cosmos, Wan) and EgoSim's tiny models.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLTemporalDecoder, AutoencoderKLWan
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torch import nn


def _encode_in_chunks(vae: nn.Module, x: torch.Tensor, chunk: int | None) -> DiagonalGaussianDistribution:
    """The VAE posterior of `x` [N, ...], encoded `chunk` items per call to bound activation memory.

    The posteriors' parameters are concatenated before sampling, so a sample draws the same noise
    from the generator as an unchunked encode (only kernel rounding can differ between batch sizes).
    """
    x = x.to(vae.dtype)
    if chunk is None or chunk >= x.shape[0]:
        return vae.encode(x).latent_dist
    if chunk < 1:
        raise ValueError(f"encode_chunk={chunk}; expected a positive number of items per VAE call")
    params = [vae.encode(part).latent_dist.parameters for part in x.split(chunk)]
    return DiagonalGaussianDistribution(torch.cat(params))


class SVDCodec(nn.Module):
    """Stable Video Diffusion's VAE: frames are encoded one by one, decoded with temporal layers."""

    temporal_compression = 1

    def __init__(self, vae: AutoencoderKLTemporalDecoder, encode_chunk: int | None = None):
        super().__init__()
        self.vae = vae
        self.encode_chunk = encode_chunk  # frames per VAE call when encoding (None: all at once)

    @property
    def spatial_compression(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return self.vae.config.latent_channels

    def encode(self, video_BFCHW: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, f = video_BFCHW.shape[:2]
        dist = _encode_in_chunks(self.vae, video_BFCHW.flatten(0, 1), self.encode_chunk)
        z = dist.sample(generator) * self.vae.config.scaling_factor
        return z.unflatten(0, (b, f))  # [B, F, C, h, w]

    def encode_condition(self, image_BCHW: torch.Tensor) -> torch.Tensor:
        """The conditioning latent exactly as the SVD pipeline makes it: the mode, not scaled."""
        return self.vae.encode(image_BCHW.to(self.vae.dtype)).latent_dist.mode()  # [B, C, h, w]

    def decode(self, latents_BFChw: torch.Tensor) -> torch.Tensor:
        b, f = latents_BFChw.shape[:2]
        z = latents_BFChw.flatten(0, 1) / self.vae.config.scaling_factor
        frames = self.vae.decode(z.to(self.vae.dtype), num_frames=f).sample
        return frames.unflatten(0, (b, f)).float().clamp(-1, 1)  # [B, F, 3, H, W]


class WanCodec(nn.Module):
    """The Wan 2.1 VAE (Wan and Cosmos Predict2): 4x in time (causal), 8x in space."""

    temporal_compression = 4

    def __init__(self, vae: AutoencoderKLWan, encode_chunk: int | None = None):
        super().__init__()
        self.vae = vae
        self.encode_chunk = encode_chunk  # clips per VAE call when encoding (None: all at once)
        c = vae.config
        self.register_buffer("mean", torch.tensor(c.latents_mean).view(1, -1, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(c.latents_std).view(1, -1, 1, 1, 1), persistent=False)

    @property
    def spatial_compression(self) -> int:
        return self.vae.config.scale_factor_spatial

    @property
    def latent_channels(self) -> int:
        return self.vae.config.z_dim

    def encode(self, video_BFCHW: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = video_BFCHW.transpose(1, 2)  # [B, 3, F, H, W]
        z = _encode_in_chunks(self.vae, x, self.encode_chunk).sample(generator)
        return (z.float() - self.mean) / self.std  # [B, C, T, h, w]

    def encode_condition(self, video_BFCHW: torch.Tensor) -> torch.Tensor:
        x = video_BFCHW.transpose(1, 2).to(self.vae.dtype)
        return (self.vae.encode(x).latent_dist.mode().float() - self.mean) / self.std

    def decode(self, latents_BCThw: torch.Tensor) -> torch.Tensor:
        z = latents_BCThw * self.std + self.mean
        frames = self.vae.decode(z.to(self.vae.dtype)).sample  # [B, 3, F, H, W]
        return frames.transpose(1, 2).float().clamp(-1, 1)  # [B, F, 3, H, W]


class PixelCodec(nn.Module):
    """Pixel space: "latents" are the frames themselves, `[B, F, 3, H, W]` in [-1, 1] (SVD layout)."""

    temporal_compression = 1
    spatial_compression = 1
    latent_channels = 3
    vae = None

    def encode(self, video_BFCHW: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return video_BFCHW.float()

    def encode_condition(self, image_BCHW: torch.Tensor) -> torch.Tensor:
        return image_BCHW.float()

    def decode(self, latents_BFChw: torch.Tensor) -> torch.Tensor:
        return latents_BFChw.float().clamp(-1, 1)


class PackedPixelCodec(nn.Module):
    """A lossless pixel-space codec in the Wan latent layout, for small DiTs trained on a CPU.

    Latent frame 0 holds video frame 0 (repeated 4×), latent frame k the video frames 4k−3 … 4k,
    each pixel-unshuffled by `downscale`: `[B, F, 3, H, W]` → `[B, 4·3·s², T, H/s, W/s]`,
    T = (F − 1)/4 + 1. Decoding is the exact inverse (frame 0 is the mean of its copies). It stands
    in for the Wan VAE where no pretrained VAE is at hand and training one is out of reach: the
    small Cosmos / Wan world models (`model.codec: pixel`) and EgoSim's tiny observation models.

    residual: None, or a scale s: every frame after the first is stored as s * (frame - first frame)
    (`model.pixel_residual`). A world model conditioned on the first frame then predicts only what
    changed, so "nothing moves" is the zero latent and the denoiser does not first have to learn to
    copy the conditioning frame through attention (docs/results.md measures why that matters).
    `encode_condition` (conditioning videos: Wan's [first frame, zeros...]) never subtracts.
    """

    temporal_compression = 4

    def __init__(self, downscale: int = 4, residual: float | None = None):
        super().__init__()
        if residual is not None and not residual > 0:
            raise ValueError(f"residual={residual!r}; expected None or a positive scale")
        self.downscale = int(downscale)
        self.residual = residual
        self.vae = None

    @property
    def spatial_compression(self) -> int:
        return self.downscale

    @property
    def latent_channels(self) -> int:
        return 4 * 3 * self.downscale**2

    def encode(self, video_BFCHW: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.residual is not None:
            first = video_BFCHW[:, :1]
            video_BFCHW = torch.cat([first, self.residual * (video_BFCHW[:, 1:] - first)], 1)
        return self._pack(video_BFCHW)

    def encode_condition(self, video_BFCHW: torch.Tensor) -> torch.Tensor:
        return self._pack(video_BFCHW)

    def _pack(self, video_BFCHW: torch.Tensor) -> torch.Tensor:
        b, f, c, h, w = video_BFCHW.shape
        frames = torch.cat([video_BFCHW[:, :1].expand(b, 4, c, h, w), video_BFCHW[:, 1:]], 1)
        t = frames.shape[1] // 4
        x = F.pixel_unshuffle(frames.reshape(b * t * 4, c, h, w).float(), self.downscale)
        x = x.reshape(b, t, 4 * x.shape[1], x.shape[2], x.shape[3])
        return x.transpose(1, 2).contiguous()  # [B, C, T, h, w]

    def decode(self, latents_BCThw: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = latents_BCThw.shape
        x = latents_BCThw.transpose(1, 2).reshape(b * t * 4, c // 4, h, w)
        frames = F.pixel_shuffle(x, self.downscale).reshape(b, t, 4, 3, h * self.downscale, -1)
        first = frames[:, 0].mean(1, keepdim=True)  # [B, 1, 3, H, W]
        rest = frames[:, 1:].flatten(1, 2)
        if self.residual is not None:
            rest = first + rest / self.residual
        return torch.cat([first, rest], 1).clamp(-1, 1)  # [B, F, 3, H, W]
