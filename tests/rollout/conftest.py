"""Shared fixtures: one tiny saved SVD world model (32x32, 4-frame chunks) and odd-sized images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from egoworld.actions.normalization import ActionNormalizer
from egoworld.world_model import WorldModel, WorldModelConfig

SPACING = 0.25  # metres per action unit stored in the model's statistics (RECON's)


def tiny_config(**kw) -> WorldModelConfig:
    base = dict(family="svd", num_frames=4, height=32, width=32, hidden_dim=32, num_inference_steps=1)
    return WorldModelConfig(**{**base, **kw})


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A saved tiny world model whose statistics say spacing=0.25, action_mode=delta."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    normalizer = ActionNormalizer.fit(
        [rng.normal(size=(64, 3))], meta={"dataset": "recon", "spacing": SPACING, "action_mode": "delta"}
    )
    directory = tmp_path_factory.mktemp("models") / "tiny-svd"
    WorldModel.build(tiny_config(), normalizer=normalizer).eval().save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def loaded_model(model_dir):
    return WorldModel.from_pretrained(model_dir)


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    """{"png": odd-sized RGBA PNG 45x71, "jpg": odd-sized JPEG 77x39, "gray": 33x33 grayscale PNG}."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(1)
    paths = {"png": folder / "odd.png", "jpg": folder / "painting.jpg", "gray": folder / "gray.png"}
    Image.fromarray(rng.integers(0, 256, (71, 45, 4), dtype=np.uint8), "RGBA").save(paths["png"])
    Image.fromarray(rng.integers(0, 256, (39, 77, 3), dtype=np.uint8)).save(paths["jpg"], quality=90)
    Image.fromarray(rng.integers(0, 256, (33, 33), dtype=np.uint8), "L").save(paths["gray"])
    return paths
