"""A lossless pixel-space codec in the Wan latent layout (tiny observation models trained on a CPU)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PixelCodec(nn.Module):
    """A lossless pixel-space codec in the Wan latent layout, for tiny models trained on a CPU.

    Latent frame 0 holds video frame 0 (repeated 4×), latent frame k the video frames 4k−3 … 4k,
    each pixel-unshuffled by `downscale`: `[B, F, 3, H, W]` → `[B, 4·3·s², T, H/s, W/s]`,
    T = (F − 1)/4 + 1. Decoding is the exact inverse (frame 0 is the mean of its copies). It stands
    in for the Wan VAE where no pretrained VAE is at hand and training one is out of reach.
    """

    temporal_compression = 4

    def __init__(self, downscale: int = 4):
        super().__init__()
        self.downscale = int(downscale)
        self.vae = None

    @property
    def spatial_compression(self) -> int:
        return self.downscale

    @property
    def latent_channels(self) -> int:
        return 4 * 3 * self.downscale**2

    def encode(self, video_BFCHW: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, f, c, h, w = video_BFCHW.shape
        frames = torch.cat([video_BFCHW[:, :1].expand(b, 4, c, h, w), video_BFCHW[:, 1:]], 1)
        t = frames.shape[1] // 4
        x = F.pixel_unshuffle(frames.reshape(b * t * 4, c, h, w).float(), self.downscale)
        x = x.reshape(b, t, 4 * x.shape[1], x.shape[2], x.shape[3])
        return x.transpose(1, 2).contiguous()  # [B, C, T, h, w]

    def encode_condition(self, video_BFCHW: torch.Tensor) -> torch.Tensor:
        return self.encode(video_BFCHW)

    def decode(self, latents_BCThw: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = latents_BCThw.shape
        x = latents_BCThw.transpose(1, 2).reshape(b * t * 4, c // 4, h, w)
        frames = F.pixel_shuffle(x, self.downscale).reshape(b, t, 4, 3, h * self.downscale, -1)
        first = frames[:, 0].mean(1, keepdim=True)  # [B, 1, 3, H, W]
        rest = frames[:, 1:].flatten(1, 2)
        return torch.cat([first, rest], 1).clamp(-1, 1)  # [B, F, 3, H, W]
