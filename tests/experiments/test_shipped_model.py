"""The model shipped in egoworld/assets/demo-nav loads and rolls out (what `egoworld demo` uses)."""

from __future__ import annotations

import numpy as np
import pytest

from egoworld.demo import SHIPPED_MODEL, load_demo_model
from egoworld.world_model import CONFIG_NAME

pytestmark = pytest.mark.skipif(
    not (SHIPPED_MODEL / CONFIG_NAME).is_file(), reason="no model shipped in egoworld/assets/demo-nav"
)


def test_shipped_files_are_small_safetensors_with_statistics():
    files = [p for p in SHIPPED_MODEL.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 50 * 2**20
    weights = [p for p in files if p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt")]
    assert weights and all(p.suffix == ".safetensors" for p in weights)
    assert (SHIPPED_MODEL / "normalization.json").is_file()


def test_shipped_model_rolls_out_nine_frames():
    model, what = load_demo_model()
    assert "shipped" in what
    c = model.config
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (c.height, c.width, 3), dtype=np.uint8)
    actions = np.tile(np.array([[1.0, 0.0, 0.1]], np.float32), (9, 1))  # forward, turning left
    video = model.rollout(image, actions, seed=0, num_inference_steps=3)
    assert video.shape == (9, c.height, c.width, 3) and video.dtype == np.uint8
    assert np.array_equal(video[0], image)
    assert video[1:].std() > 1.0  # not a blank video
