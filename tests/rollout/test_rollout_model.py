"""Rollouts from saved models and arbitrary images: same frames for a seed after save -> load."""

from __future__ import annotations

import numpy as np
import torch

from egoworld.rollout import load_actions, load_image
from egoworld.world_model import WorldModel

from .conftest import tiny_config


def test_save_load_rollout_reproduces_the_frames(tmp_path, images):
    torch.manual_seed(0)
    model = WorldModel.build(tiny_config(num_inference_steps=2)).eval()
    image = load_image(images["jpg"], 32, 32)
    actions = load_actions("forward 0.5m x4; turn_left 15deg x2", model, spacing=0.25)  # [7, 3]
    before = model.rollout(image, actions, seed=7)
    model.save_pretrained(tmp_path / "wm")
    after = WorldModel.from_pretrained(tmp_path / "wm").rollout(image, actions, seed=7)
    assert before.shape == (7, 32, 32, 3) and before.dtype == np.uint8
    np.testing.assert_array_equal(before, after)
    assert not np.array_equal(before, model.rollout(image, actions, seed=8))  # the seed matters


def test_rollout_from_odd_png_and_jpg(loaded_model, images):
    actions = load_actions("forward 0.3m x3", loaded_model)  # spacing from the model's statistics
    for kind in ("png", "jpg"):
        image = load_image(images[kind], 32, 32)
        frames = loaded_model.rollout(image, actions, seed=0)
        assert frames.shape == (4, 32, 32, 3) and frames.dtype == np.uint8
        assert np.abs(frames[0].astype(int) - image).max() <= 1  # frame 0 is the start image
