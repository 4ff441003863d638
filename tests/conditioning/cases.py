"""Tiny backbones and their dummy inputs, one case per supported family/layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from egoworld.backbones import cosmos, svd, wan


@dataclass
class Case:
    name: str
    model: torch.nn.Module
    inputs: dict[str, Any]
    num_video_frames: int
    out_key: str = "sample"


def _svd(batch: int = 2, frames: int = 4) -> Case:
    torch.manual_seed(0)
    model = svd.build_unet("tiny").eval()
    c = model.config
    inputs = dict(
        sample=torch.randn(batch, frames, c.in_channels, 8, 8),
        timestep=torch.tensor([0.5] * batch),
        encoder_hidden_states=torch.randn(batch, 1, c.cross_attention_dim),
        added_time_ids=torch.randn(batch, 3),
    )
    return Case("svd", model, inputs, frames)


def _cosmos(batch: int = 2, latent_frames: int = 3) -> Case:
    torch.manual_seed(0)
    model = cosmos.build_transformer("tiny").eval()
    c = model.config
    inputs = dict(
        hidden_states=torch.randn(batch, c.in_channels - 1, latent_frames, 8, 8),
        timestep=torch.tensor([0.3] * batch),
        encoder_hidden_states=torch.randn(batch, 5, c.text_embed_dim),
        condition_mask=torch.zeros(batch, 1, latent_frames, 8, 8),
        padding_mask=torch.zeros(1, 1, 8, 8),
    )
    return Case("cosmos", model, inputs, 4 * (latent_frames - 1) + 1)


def _wan(batch: int = 2, latent_frames: int = 3, preset: str = "tiny") -> Case:
    torch.manual_seed(0)
    model = wan.build_transformer(preset).eval()
    c = model.config
    inputs = dict(
        hidden_states=torch.randn(batch, c.in_channels, latent_frames, 8, 8),
        timestep=torch.tensor([300.0] * batch),
        encoder_hidden_states=torch.randn(batch, 5, c.text_dim),
    )
    if c.image_dim:
        inputs["encoder_hidden_states_image"] = torch.randn(batch, 4, c.image_dim)
    return Case("wan-i2v" if c.image_dim else "wan", model, inputs, 4 * (latent_frames - 1) + 1)


CASES = {"svd": _svd, "cosmos": _cosmos, "wan": _wan, "wan-i2v": lambda: _wan(preset="tiny-i2v")}


def per_frame_timestep(case: Case) -> dict[str, Any]:
    """The same inputs with the timestep expanded to the layout that carries per-frame embeddings."""
    inputs = dict(case.inputs)
    t = inputs["timestep"]
    if case.name == "cosmos":
        frames = inputs["hidden_states"].shape[2]
        inputs["timestep"] = t[:, None, None, None, None].expand(-1, 1, frames, 1, 1)
    elif case.name.startswith("wan"):
        x = inputs["hidden_states"]
        seq = x.shape[2] * (x.shape[3] // 2) * (x.shape[4] // 2)
        inputs["timestep"] = t[:, None].expand(-1, seq)
    return inputs


def output(result) -> torch.Tensor:
    return result[0] if isinstance(result, tuple) else result.sample
