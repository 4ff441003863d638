"""A saved image encoder reloads as the class that was saved (Wan i2v ships a plain CLIPVisionModel)."""

from __future__ import annotations

import torch
from transformers import CLIPVisionModel

from egoworld.world_model import WorldModel, WorldModelConfig


def test_plain_clip_vision_model_round_trips(tmp_path):
    torch.manual_seed(0)
    wm = WorldModel.build(WorldModelConfig(family="wan", num_frames=5, height=32, width=32, hidden_dim=32))
    plain = CLIPVisionModel(wm.image_encoder.clip.config)
    wm.image_encoder.clip = plain
    wm.save_pretrained(tmp_path / "wm")
    loaded = WorldModel.from_pretrained(tmp_path / "wm")
    assert type(loaded.image_encoder.clip) is CLIPVisionModel
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(wm.image_encoder.penultimate(x), loaded.image_encoder.penultimate(x))
