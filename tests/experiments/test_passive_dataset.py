"""PassiveVideoDataset: windows of unlabeled mp4s with zero actions, and the "passive" data format."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from egoworld.data.factory import build_datasets, fit_normalizer
from egoworld.data.passive import PassiveVideoDataset, find_videos, zero_action_normalizer
from egoworld.data.video import write_video


def _video(frames: int, size: int, seed: int) -> np.ndarray:
    """A moving gradient with a frame counter in the red channel: uint8 [T, size, size, 3]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    out = np.zeros((frames, size, size, 3), np.uint8)
    for t in range(frames):
        out[t, ..., 0] = 10 * t
        out[t, ..., 1] = ((xx + 2 * t) * 4) % 256
        out[t, ..., 2] = rng.integers(100, 140)
    return out


@pytest.fixture
def passive_root(tmp_path):
    for i, n in enumerate((12, 9)):
        write_video(tmp_path / "videos" / f"video_{i:05d}.mp4", _video(n, 32, i), fps=30, crf=0)
    (tmp_path / "videos" / "notes.txt").write_text("not a video")
    return tmp_path


def test_windows_shapes_and_zero_actions(passive_root):
    ds = PassiveVideoDataset(passive_root, horizon=4, resolution=16, action_dim=3)
    assert len(find_videos(passive_root)) == 2
    assert len(ds) == (12 - 5 + 1) + (9 - 5 + 1)
    item = ds[0]
    assert item["frames"].shape == (5, 3, 16, 16)  # [T, 3, H, W]
    assert item["frames"].dtype == torch.float32
    assert -1.0 <= float(item["frames"].min()) and float(item["frames"].max()) <= 1.0
    assert item["actions"].shape == (5, 3) and not item["actions"].any()
    # consecutive frames: the red channel counts frames (10 per frame, lossless-ish encoding)
    red = (item["frames"][:, 0].mean(dim=(1, 2)) + 1) * 127.5
    assert np.allclose(np.diff(red.numpy()), 10, atol=3)


def test_frame_step_stride_and_no_cache_agree(passive_root):
    cached = PassiveVideoDataset(passive_root, horizon=2, frame_step=2, stride=2, resolution=16)
    fresh = PassiveVideoDataset(passive_root, horizon=2, frame_step=2, stride=2, resolution=16, cache=False)
    assert len(cached) == len(fresh) == 2 + 2  # starts every 4 raw frames; a window spans 5
    clip = cached.get_clip(1)
    assert clip.frame_indices.tolist() == [4, 6, 8]
    assert np.array_equal(clip.frames, fresh.get_clip(1).frames)


def test_bad_inputs(tmp_path, passive_root):
    with pytest.raises(FileNotFoundError, match="not found"):
        PassiveVideoDataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no videos"):
        PassiveVideoDataset(tmp_path / "empty")
    with pytest.raises(ValueError, match="action_dim=0"):
        PassiveVideoDataset(passive_root, action_dim=0)
    with pytest.raises(IndexError):
        PassiveVideoDataset(passive_root, horizon=4)[1000]


def test_factory_passive_format(passive_root):
    data_cfg = SimpleNamespace(
        format="passive", path=str(passive_root), stride=1, frame_step=1, val_fraction=0.0, seed=0
    )
    model_cfg = SimpleNamespace(height=16, width=16, num_frames=5, action_dim=3, state_dim=None)
    norm = fit_normalizer(data_cfg, model_cfg)
    assert norm.to_dict() == zero_action_normalizer(3).to_dict()
    assert np.allclose(norm.normalize(np.ones((2, 3))), 1.0)  # identity statistics
    train, val = build_datasets(data_cfg, model_cfg, norm)
    assert val is None and len(train) == 13
    assert train[0]["actions"].shape == (5, 3)
