"""The Wan-2.1-Fun-InP input conventions: masked video, mask channels, CLIP input of the first frame.

What Fun-InP was trained on (VideoX-Fun's Wan 2.1 Fun training and inpaint pipeline) and what
diffusers' `WanImageToVideoPipeline` builds for its first-frame case, stated here once:

- **Masked video.** The clip in [-1, 1] with every unknown pixel set to **0** (mid grey, not -1),
  VAE-encoded (the posterior's mode) and normalised with the VAE's `latents_mean` / `latents_std`.
  The i2v pipeline's condition video — the image, then zeros — is the same thing for the mask
  "frame 0 known".
- **Mask channels** `[B, 4, T, h, w]`, **1 = known** (the pipelines take `1 - mask` of a mask that
  marks the pixels to generate). Per pixel, binarised at 0.5; frame 0 is repeated 4x (Wan's causal
  VAE gives frame 0 a latent frame of its own), then every 4 consecutive video frames are the 4
  channels of one latent frame: channel j of latent frame k is video frame 4k - 3 + j (k >= 1).
- **Resampling** to the latent grid: `F.interpolate(mode="trilinear", align_corners=False)` with
  the temporal size unchanged (so the time axis is untouched), i.e. bilinear in space without
  anti-aliasing: at 8x, latent pixel (i, j) is the mean of the centre 2x2 pixels of its 8x8 block.
  For a whole-frame mask (the i2v case) any resampling gives the same 0/1 values.
- **Nothing known.** A clip without a single known pixel gets all-zero mask and latent channels
  (Fun-InP's text-to-video input), not the latent of a grey video.
- **CLIP** features (penultimate hidden states) of the first frame: through the pipeline's
  `CLIPImageProcessor` ("processor", what `WanImageToVideoPipeline.encode_image` does) or a bicubic
  resize of the whole frame to the CLIP input size ("stretch", what the Fun-InP / original Wan code
  does); zeros when no first frame is given (Fun-InP's input without a reference image).

Shapes: video `[B, F, 3, H, W]` in [-1, 1]; `unknown_BF1HW` bool/float, 1 = unknown (to generate).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MASK_CHANNELS = 4  # one channel per video frame of a latent frame
CLIP_PREPROCESS = ("processor", "stretch")


def binarize(unknown_BF1HW: torch.Tensor) -> torch.Tensor:
    """The unknown-pixel mask as bool, thresholded at 0.5 (the pipelines' `do_binarize`)."""
    return unknown_BF1HW >= 0.5 if unknown_BF1HW.dtype != torch.bool else unknown_BF1HW


def masked_video(video_BFCHW: torch.Tensor, unknown_BF1HW: torch.Tensor) -> torch.Tensor:
    """The video with every unknown pixel set to 0 (in [-1, 1]): `video * (mask < 0.5)`."""
    unknown = binarize(unknown_BF1HW)
    return torch.where(unknown, torch.zeros_like(video_BFCHW), video_BFCHW)


def mask_latents(unknown_BF1HW: torch.Tensor, latent_hw: tuple[int, int]) -> torch.Tensor:
    """The InP mask channels `[B, 4, T, h, w]` (1 = known) of an unknown-pixel mask `[B, F, 1, H, W]`.

    Frame 0 repeated 4x, then 4 video frames per latent frame as channels, trilinear
    (align_corners=False, time unchanged) to `latent_hw`.
    """
    known = (~binarize(unknown_BF1HW)).float()
    b, f, _, hh, ww = known.shape
    if (f - 1) % 4:
        raise ValueError(f"mask of {f} frames; expected 4k + 1 (the Wan latent layout)")
    frames = torch.cat([known[:, :1].expand(b, 4, 1, hh, ww), known[:, 1:]], 1)  # [B, 4T, 1, H, W]
    t = frames.shape[1] // 4
    packed = frames.reshape(b, t, 4, hh, ww).transpose(1, 2)  # [B, 4, T, H, W]
    return F.interpolate(packed, size=(t, *latent_hw), mode="trilinear", align_corners=False)


def inp_condition(codec: nn.Module, video_BFCHW: torch.Tensor, unknown_BF1HW: torch.Tensor) -> torch.Tensor:
    """The InP conditioning channels `[B, 4 + C, T, h, w]`: mask (1 = known), then the masked video's
    latent; all zero for a clip with no known pixel."""
    unknown = binarize(unknown_BF1HW)
    z = codec.encode_condition(masked_video(video_BFCHW.float(), unknown))  # [B, C, T, h, w]
    mask = mask_latents(unknown, tuple(z.shape[-2:])).to(z)
    y = torch.cat([mask, z], 1)
    nothing_known = unknown.flatten(1).all(1)
    if nothing_known.any():
        y = torch.where(nothing_known.view(-1, 1, 1, 1, 1), torch.zeros_like(y), y)
    return y


def stretched_clip_pixels(image_BCHW: torch.Tensor, size: int, mean, std) -> torch.Tensor:
    """Fun-InP's CLIP input: bicubic resize of the [-1, 1] frame to `size` x `size` (no crop), to [0, 1],
    then CLIP's mean/std."""
    x = F.interpolate(image_BCHW.float(), size=(size, size), mode="bicubic", align_corners=False)
    m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return ((x * 0.5 + 0.5) - m) / s


def clip_features(image_encoder, image_BCHW: torch.Tensor, processor, mode: str) -> torch.Tensor:
    """Penultimate CLIP hidden states `[B, N, D]` of frames `[B, 3, H, W]` in [-1, 1].

    image_encoder: `egoworld.image_encoder.ImageEncoder`; processor: the pipeline's
    `CLIPImageProcessor` (required for mode "processor"; its mean/std are used by "stretch").
    """
    if mode not in CLIP_PREPROCESS:
        raise ValueError(f"clip_preprocess={mode!r}; expected one of {CLIP_PREPROCESS}")
    if mode == "processor":
        if processor is None:
            raise ValueError(
                "clip_preprocess='processor' needs the pipeline's image_processor/ (CLIPImageProcessor); "
                "none was loaded (or use clip_preprocess='stretch')"
            )
        return image_encoder.penultimate(image_BCHW, processor)
    clip = image_encoder.clip
    mean = getattr(processor, "image_mean", None) or image_encoder.mean.flatten().tolist()
    std = getattr(processor, "image_std", None) or image_encoder.std.flatten().tolist()
    pixels = stretched_clip_pixels(image_BCHW, int(clip.config.image_size), mean, std)
    out = clip(pixel_values=pixels.to(clip.dtype), output_hidden_states=True)
    return out.hidden_states[-2]
