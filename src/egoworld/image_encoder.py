"""The CLIP image encoder SVD and Wan i2v condition on (transformers' CLIPVisionModelWithProjection)."""

from __future__ import annotations

import torch
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
    """Resize + normalise an image in [-1, 1] the way the pipelines do, then embed it with CLIP.

    `embeds` follows `StableVideoDiffusionPipeline._encode_image` for an image given as a picture:
    the SVD pipeline's own anti-aliased resize (Gaussian blur, then bicubic) of the [-1, 1] image to
    CLIP's input size, back to [0, 1], then the feature extractor's mean/std (no clamping).
    `mean`/`std` default to OpenAI CLIP's; an imported pipeline passes its feature extractor's.
    """

    def __init__(
        self,
        clip: CLIPVisionModelWithProjection,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
    ):
        super().__init__()
        self.clip = clip
        self.register_buffer("mean", torch.tensor(mean or CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std or CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def _pixels(self, image_BCHW: torch.Tensor) -> torch.Tensor:
        from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
            _resize_with_antialiasing,  # the reference resize, imported rather than re-written
        )

        size = self.clip.config.image_size
        # the pipeline resizes to 224, CLIP's input size for every published SVD; tiny CLIPs are smaller
        x = (_resize_with_antialiasing(image_BCHW.float(), (size, size)) + 1) / 2
        return ((x - self.mean) / self.std).to(self.clip.dtype)

    def embeds(self, image_BCHW: torch.Tensor) -> torch.Tensor:
        """Projected image embedding [B, 1, projection_dim] (SVD's encoder_hidden_states)."""
        return self.clip(pixel_values=self._pixels(image_BCHW)).image_embeds[:, None]

    def penultimate(self, image_BCHW: torch.Tensor, processor=None) -> torch.Tensor:
        """Penultimate hidden states [B, N, hidden] (Wan i2v's encoder_hidden_states_image).

        processor: the pipeline's image processor (transformers `CLIPImageProcessor`), or None. With it the
        image goes the way `WanImageToVideoPipeline.encode_image` takes a picture: as 8-bit RGB (what a PIL
        image holds; [-1, 1] -> round(127.5 (x + 1))), through the processor's resize, crop, rescale and
        normalisation. Without it, `_pixels` (the resize of models built without a pipeline).
        """
        pixels = self._pixels(image_BCHW) if processor is None else self._processed(image_BCHW, processor)
        out = self.clip(pixel_values=pixels, output_hidden_states=True)
        return out.hidden_states[-2]

    def _processed(self, image_BCHW: torch.Tensor, processor) -> torch.Tensor:
        """[-1, 1] [B, 3, H, W] -> uint8 [H, W, 3] pictures -> the processor's pixel_values [B, 3, S, S]."""
        u8 = ((image_BCHW.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        pictures = list(u8.permute(0, 2, 3, 1).cpu().numpy())
        pixels = processor(images=pictures, return_tensors="pt").pixel_values
        return pixels.to(device=image_BCHW.device, dtype=self.clip.dtype)
