"""Flow-based mask tracking: masks follow a known image motion; bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest

from egoworld.metrics.flow_tracking import origin_maps, track_masks_by_flow
from egoworld.metrics.scs import scs_by_horizon


def _texture(size: int, seed: int = 0) -> np.ndarray:
    """A smooth random colour image uint8 [size, size, 3] (enough texture for optical flow)."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size // 4, size // 4, 3)).astype(np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC), (3, 3), 0)


def _shifted_video(frames: int = 9, size: int = 32, step: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A camera panning right by `step` px a frame over a big texture, and a square's true masks."""
    world = _texture(size * 3)
    video = np.stack([world[20 : 20 + size, 20 + step * t : 20 + step * t + size] for t in range(frames)])
    masks = np.zeros((frames, 1, size, size), bool)
    for t in range(frames):
        x0 = 12 - step * t  # the content moves left as the camera pans right
        masks[t, 0, 10:20, max(0, x0) : max(0, x0 + 10)] = True
    return video, masks


def test_tracked_masks_follow_the_shift():
    video, truth = _shifted_video()
    tracked = track_masks_by_flow(video, truth[0])
    assert tracked.shape == truth.shape and tracked.dtype == bool
    assert np.array_equal(tracked[0], truth[0])
    scs = scs_by_horizon(tracked, truth, (2, 4, 8))
    assert min(scs["2"], scs["4"], scs["8"]) > 85.0
    # a static (copied) video keeps the square in place, so it scores far lower at frame 8
    static = track_masks_by_flow(np.repeat(video[:1], len(video), axis=0), truth[0])
    assert scs_by_horizon(static, truth, (8,))["8"] < 40.0


def test_origin_maps_recover_the_pan():
    video, _ = _shifted_video(frames=5, step=2)
    maps = origin_maps(video)  # [T, H, W, 2]
    centre = maps[:, 8:24, 8:24]
    dx = centre[..., 0].mean(axis=(1, 2)) - np.arange(8, 24).mean()
    assert np.allclose(dx, 2 * np.arange(5), atol=0.5)  # frame t pixel came from x + 2t in frame 0


def test_outside_modes():
    video, truth = _shifted_video(frames=9, step=3)
    wall = np.zeros((1, 32, 32), bool)
    wall[0, :, 28:] = True  # touches the right border: the camera pans towards unseen content
    rep = track_masks_by_flow(video, wall, outside="replicate")
    empty = track_masks_by_flow(video, wall, outside="empty")
    assert rep[-1].sum() > empty[-1].sum()  # replicate extends it into the entering region
    assert not (empty[-1] & ~rep[-1]).any()


def test_bad_inputs():
    video, truth = _shifted_video(frames=3)
    with pytest.raises(ValueError, match="outside="):
        track_masks_by_flow(video, truth[0], outside="wrap")
    with pytest.raises(ValueError, match=r"masks0 must be \[K, H, W\]"):
        track_masks_by_flow(video, truth[0, 0])
    with pytest.raises(ValueError, match="uint8"):
        origin_maps(video.astype(np.float32))
    with pytest.raises(ValueError, match="unknown optical flow method"):
        track_masks_by_flow(video, truth[0], method="lk")
