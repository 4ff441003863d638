"""Clips ↔ the observation model's tensors: uint8 frames in, [-1, 1] video batches out, and back.

The observation model trains through the one trainer (`egoworld.train`, with the parts of
`egoworld.sim.observe_trainer`), which stacks clips with `batch_from_clips`.
"""

from __future__ import annotations

from typing import Any

import torch


def to_model_video(frames_THWC: Any) -> torch.Tensor:
    """uint8 `[T, H, W, 3]` (numpy) → float `[1, T, 3, H, W]` in [-1, 1].

    Computed as diffusers' `VaeImageProcessor` does (x / 255, then 2x − 1), so a frame reaches the
    VAE with the same float values as through `WanImageToVideoPipeline`.
    """
    x = torch.as_tensor(frames_THWC)
    return (x.permute(0, 3, 1, 2).float() / 255.0 * 2.0 - 1.0)[None]


def to_uint8_video(video_BFCHW: torch.Tensor) -> Any:
    """float `[1, F, 3, H, W]` in [-1, 1] → uint8 `[F, H, W, 3]` (numpy)."""
    x = ((video_BFCHW[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def batch_from_clips(clips: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack clips of uint8 `target`/`scene`/`skeleton` `[T, H, W, 3]` and bool `mask` `[T, H, W]`
    (e.g. `egoworld.sim.loop.observation_clip`) into a model batch (`[B, F, 3, H, W]` in [-1, 1],
    mask `[B, F, 1, H, W]`)."""
    if not clips:
        raise ValueError("no clips; expected at least one")
    batch = {k: torch.cat([to_model_video(c[k]) for c in clips]) for k in ("target", "scene", "skeleton")}
    batch["mask"] = torch.stack([torch.as_tensor(c["mask"]) for c in clips])[:, :, None].float()
    return batch
