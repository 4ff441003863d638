"""The CLIP image encoder SVD and Wan i2v condition on (transformers' CLIPVisionModelWithProjection)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def tiny_clip(projection_dim: int, hidden_size: int = 32) -> CLIPVisionModelWithProjection:
    """A randomly initialised CLIP vision tower small enough for CPU tests."""
    config = CLIPVisionConfig(
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        projection_dim=projection_dim,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    return CLIPVisionModelWithProjection(config)


class ImageEncoder(nn.Module):
    """Resize + normalise an image in [-1, 1] the CLIP way, then embed it."""

    def __init__(self, clip: CLIPVisionModelWithProjection):
        super().__init__()
        self.clip = clip
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def _pixels(self, image_BCHW: torch.Tensor) -> torch.Tensor:
        size = self.clip.config.image_size
        x = F.interpolate(
            image_BCHW.float(), size=(size, size), mode="bicubic", antialias=True, align_corners=False
        )
        x = ((x + 1) / 2).clamp(0, 1)
        return ((x - self.mean) / self.std).to(self.clip.dtype)

    def embeds(self, image_BCHW: torch.Tensor) -> torch.Tensor:
        """Projected image embedding [B, 1, projection_dim] (SVD's encoder_hidden_states)."""
        return self.clip(pixel_values=self._pixels(image_BCHW)).image_embeds[:, None]

    def penultimate(self, image_BCHW: torch.Tensor) -> torch.Tensor:
        """Penultimate hidden states [B, N, hidden] (Wan i2v's encoder_hidden_states_image)."""
        out = self.clip(pixel_values=self._pixels(image_BCHW), output_hidden_states=True)
        return out.hidden_states[-2]
