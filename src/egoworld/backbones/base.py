"""What every backbone family tells the action-conditioning wrapper.

A `BackboneAdapter` knows, for one diffusers denoiser class, where the timestep embedding
reaches the modulation sites, how wide it is, how video frames map to latent frames, and
which timestep layout carries per-frame embeddings. It never copies the model's `forward`:
it installs hooks that add the current action embedding on the existing path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

# Returns the embedding to add, per latent frame [B, T, D], or None when no action is active
# (then the hooks leave the base model untouched).
EmbeddingSource = Callable[[], "torch.Tensor | None"]


@dataclass
class Prepared:
    """The base model's bound arguments after the adapter checked them and set the timestep layout."""

    arguments: dict[str, Any]
    batch_size: int
    num_latent_frames: int
    extra: dict[str, Any] = field(default_factory=dict)


class BackboneAdapter:
    """Family-specific glue; subclasses set `name`, `model_class`, `temporal_compression`."""

    name: str = ""
    model_class: type[nn.Module] = nn.Module
    temporal_compression: int = 1
    sample_arg: str = "hidden_states"

    def embed_dim(self, model: nn.Module) -> int:
        raise NotImplementedError

    def prepare(self, model: nn.Module, arguments: dict[str, Any], num_video_frames: int) -> Prepared:
        """Check the frame count against the latents and put the timestep in a per-frame layout."""
        raise NotImplementedError

    def install(self, model: nn.Module, source: EmbeddingSource) -> list[torch.utils.hooks.RemovableHandle]:
        raise NotImplementedError

    def expected_video_frames(self, num_latent_frames: int) -> int:
        if self.temporal_compression == 1:
            return num_latent_frames
        return self.temporal_compression * (num_latent_frames - 1) + 1

    def check_frames(self, num_video_frames: int, num_latent_frames: int) -> None:
        expected = self.expected_video_frames(num_latent_frames)
        if num_video_frames != expected:
            rule = (
                "F = T"
                if self.temporal_compression == 1
                else f"F = {self.temporal_compression}(T-1)+1, i.e. {self.temporal_compression}k+1"
            )
            raise ValueError(
                f"actions cover {num_video_frames} video frames but the {self.name} latents have "
                f"T={num_latent_frames} frames; expected F={expected} ({rule})"
            )


class DiTAdapter(BackboneAdapter):
    """Shared by the video DiTs (Cosmos, Wan): latents [B, C, T, H, W], 4x causal VAE, patch (1, p, p)."""

    temporal_compression = 4
    sample_arg = "hidden_states"

    def embed_dim(self, model: nn.Module) -> int:
        return model.config.num_attention_heads * model.config.attention_head_dim

    def video_latents(
        self, model: nn.Module, arguments: dict[str, Any], num_video_frames: int
    ) -> torch.Tensor:
        """The checked `hidden_states` [B, C, T, H, W] whose T matches the video frame count."""
        x = arguments["hidden_states"]
        if x.ndim != 5:
            raise ValueError(f"{self.name} hidden_states must be [B, C, T, H, W]; got shape {tuple(x.shape)}")
        if model.config.patch_size[0] != 1:
            raise ValueError(
                f"per-frame actions need a temporal patch size of 1; got {model.config.patch_size}"
            )
        self.check_frames(num_video_frames, x.shape[2])
        return x


def batch_timestep(timestep: Any, batch_size: int, device: torch.device) -> torch.Tensor:
    """A python number, a 0-D or a [B] tensor -> a [B] tensor (the layout every base model accepts)."""
    t = torch.as_tensor(timestep, device=device)
    if t.ndim == 0:
        return t.reshape(1).expand(batch_size)
    if t.ndim == 1 and t.shape[0] in (1, batch_size):
        return t.expand(batch_size)
    raise ValueError(f"timestep of shape {tuple(t.shape)} cannot be read as a [B={batch_size}] timestep")


def pick_preset(table: dict[str, dict], name: str) -> dict:
    """A copy of the named preset's config, or a clear error listing the known names."""
    if name not in table:
        raise ValueError(f"preset {name!r} is not known; expected one of {sorted(table)}")
    return dict(table[name])
